// Addresses of the local cluster that `leaderd local` starts (node i of up to 5 uses
// client port 7000+i, peer port 7100+i and metrics port 7200+i); the client commands default to them.
export const LOCAL_MAX_NODES = 5;

export function localClientAddress(i: number): string {
  return `127.0.0.1:${7000 + i}`;
}

export function localPeerAddress(i: number): string {
  return `127.0.0.1:${7100 + i}`;
}

export function localMetricsAddress(i: number): string {
  return `127.0.0.1:${7200 + i}`;
}

export const LOCAL_CLIENT_ENDPOINTS = Array.from({ length: LOCAL_MAX_NODES }, (_, i) => localClientAddress(i + 1));

// Addresses of the local cluster that `leaderd local` starts: node i (of up to 5) uses
// client port base+i, peer port base+100+i and metrics port base+200+i, base 7000 unless --base-port says
// otherwise. The client commands default to the client ports of base 7000.
import { createServer } from 'node:net';

export const LOCAL_MAX_NODES = 5;
export const LOCAL_DEFAULT_BASE_PORT = 7000;

export function localClientAddress(i: number, base = LOCAL_DEFAULT_BASE_PORT): string {
  return `127.0.0.1:${base + i}`;
}

export function localPeerAddress(i: number, base = LOCAL_DEFAULT_BASE_PORT): string {
  return `127.0.0.1:${base + 100 + i}`;
}

export function localMetricsAddress(i: number, base = LOCAL_DEFAULT_BASE_PORT): string {
  return `127.0.0.1:${base + 200 + i}`;
}

export const LOCAL_CLIENT_ENDPOINTS = Array.from({ length: LOCAL_MAX_NODES }, (_, i) => localClientAddress(i + 1));

/** Whether host:port can be bound right now: the error code when not (EADDRINUSE, EACCES, ...). */
export function bindProblem(address: string): Promise<string | null> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.listen(Number(address.slice(i + 1)), address.slice(0, i).replace(/^\[|\]$/g, ''), () => s.close(() => resolve(null)));
  });
}

// Defaults of the client commands, kept apart from client-context.ts so that building the
// command line (main.ts) does not load gRPC.

/** Environment variable holding the endpoints when --endpoints is not given. */
export const ENDPOINTS_ENV = 'LEADERD_ENDPOINTS';
/** Deadline of each client call, retries on other endpoints included (like etcdctl's --command-timeout). */
export const DEFAULT_TIMEOUT_MS = 5000;

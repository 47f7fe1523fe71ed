// The old name of the cluster client, kept so code written against it keeps working:
// there is one client, LeaderdClient (one leader watch, one backoff, one set of types).
import { LeaderdClient } from './leaderd-client.js';
import type { ClientSecurity } from '../security/client-credentials.js';

export type { LeaderInfo, NodeStatus, Member } from './leaderd-client.js';

export interface ClusterClientOptions {
  /** Deadline of each call, ms; default 2000. */
  readonly timeoutMs?: number;
  /** TLS and token for secured nodes. */
  readonly security?: ClientSecurity;
}

/**
 * @deprecated Use `new LeaderdClient({ endpoints, timeoutMs, security })`: ClusterClient
 * is LeaderdClient with the old constructor.
 */
export class ClusterClient extends LeaderdClient {
  constructor(endpoints: readonly string[], opts: ClusterClientOptions = {}) {
    super({ endpoints, timeoutMs: opts.timeoutMs ?? 2000, ...(opts.security ? { security: opts.security } : {}) });
  }
}

// Deadlines and expiry of leases and of exactly-once sessions. The leader alone decides
// that a lease (or an idle session) expired, on its monotonic clock, and replicates the
// decision as a command (leaseExpire, sessionExpire), so every node deletes the lease's
// keys, or ends the session, at the same index.
//
// Why a lease never expires early, seen from its holder: the holder counts its lease
// from when it *sent* the last acknowledged keep-alive; the leader counts from when it
// received it, later. A leader answers keep-alives only while its own Raft lease is
// valid, so a deposed or paused leader cannot extend anything. A new leader does not know
// when the last keep-alive arrived at its predecessor, so it restarts every deadline at
// a full TTL plus one election timeout from the moment it took over (thesis §6.4's lease
// reasoning, as etcd does on promotion).
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { LeaderdNode } from './node.js';

export type ExpirableChange =
  | { readonly type: 'granted'; readonly id: number; readonly ttlMs: number }
  /** Activity that renews it (a session's applied write). */
  | { readonly type: 'renewed'; readonly id: number }
  | { readonly type: 'ended'; readonly id: number };

/** What the keeper watches: the leases, or the sessions, of the replicated store. */
export interface Expirables {
  /** 'lease' or 'session', for logs. */
  readonly what: string;
  list(): { id: number; ttlMs: number }[];
  /** The TTL of a live one, null once it ended. */
  ttlOf(id: number): number | null;
  onChange(listener: (c: ExpirableChange) => void): () => void;
}

export interface ExpiryKeeperOptions {
  readonly electionTimeoutMs: number;
  readonly logger: Logger;
  /** Propose the expiry (the leader's decision). */
  readonly expire: (id: number) => Promise<void>;
  /** How often the leader looks for expired ones; default 25 ms. */
  readonly checkEveryMs?: number;
}

export class ExpiryKeeper {
  private readonly deadlines = new Map<number, { deadline: number; ttlMs: number }>();
  private readonly expiring = new Set<number>();
  private readonly timer: NodeJS.Timeout;
  private readonly offItems: () => void;
  private readonly offLeader: () => void;
  private wasLeader = false;

  constructor(
    private readonly node: LeaderdNode,
    private readonly items: Expirables,
    private readonly opts: ExpiryKeeperOptions,
  ) {
    for (const l of items.list()) this.deadlines.set(l.id, { deadline: this.now() + l.ttlMs + opts.electionTimeoutMs, ttlMs: l.ttlMs });
    this.offItems = items.onChange((c) => {
      if (c.type === 'granted') this.deadlines.set(c.id, { deadline: this.now() + c.ttlMs, ttlMs: c.ttlMs });
      else if (c.type === 'renewed') {
        // Renewed only while not already being expired: the expiry in flight wins.
        const d = this.deadlines.get(c.id);
        if (d && !this.expiring.has(c.id))
          this.deadlines.set(c.id, { deadline: Math.max(d.deadline, this.now() + d.ttlMs), ttlMs: d.ttlMs });
      } else {
        this.deadlines.delete(c.id);
        this.expiring.delete(c.id);
      }
    });
    this.offLeader = node.onLeaderChange((l) => {
      const leading = l.leaderId === node.id;
      if (leading && !this.wasLeader) this.extendAll();
      this.wasLeader = leading;
    });
    this.timer = setInterval(() => this.check(), opts.checkEveryMs ?? 25);
    this.timer.unref();
  }

  private now(): number {
    return performance.now();
  }

  private extendAll(): void {
    const base = this.now() + this.opts.electionTimeoutMs;
    for (const [id, d] of this.deadlines) this.deadlines.set(id, { deadline: base + d.ttlMs, ttlMs: d.ttlMs });
  }

  /** Renew for the full TTL; returns the TTL granted, 0 if it does not exist. Leader only. */
  keepAlive(id: number): number {
    const ttlMs = this.items.ttlOf(id);
    if (ttlMs === null || this.expiring.has(id)) return 0;
    this.deadlines.set(id, { deadline: this.now() + ttlMs, ttlMs });
    return ttlMs;
  }

  remainingMs(id: number): number {
    const d = this.deadlines.get(id);
    return d ? Math.max(0, Math.round(d.deadline - this.now())) : -1;
  }

  private check(): void {
    if (this.deadlines.size === 0 || !this.node.isLeaderCaughtUp()) return;
    const now = this.now();
    for (const [id, d] of this.deadlines) {
      if (d.deadline > now || this.expiring.has(id)) continue;
      this.expiring.add(id);
      this.opts.logger.info({ node: this.node.id, [this.items.what]: id, ttlMs: d.ttlMs }, `${this.items.what} expired`);
      this.opts.expire(id).catch((err) => {
        // Not committed (lost leadership?): the next leader decides again.
        this.expiring.delete(id);
        this.opts.logger.debug(
          { node: this.node.id, [this.items.what]: id, err: (err as Error).message },
          `${this.items.what} expiry not committed`,
        );
      });
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.offItems();
    this.offLeader();
  }
}

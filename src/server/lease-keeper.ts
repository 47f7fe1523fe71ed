// Lease deadlines and expiry. The leader alone decides that a lease expired, on its
// monotonic clock, and replicates the decision as a leaseExpire command, so every node
// deletes the lease's keys at the same revision.
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
import type { KvStore } from '../statemachine/kv-store.js';

export interface LeaseKeeperOptions {
  readonly electionTimeoutMs: number;
  readonly logger: Logger;
  /** Propose the expiry of a lease (the leader's decision). */
  readonly expire: (id: number) => Promise<void>;
  /** How often the leader looks for expired leases; default 25 ms. */
  readonly checkEveryMs?: number;
}

export class LeaseKeeper {
  private readonly deadlines = new Map<number, { deadline: number; ttlMs: number }>();
  private readonly expiring = new Set<number>();
  private readonly timer: NodeJS.Timeout;
  private readonly offLease: () => void;
  private readonly offLeader: () => void;
  private wasLeader = false;

  constructor(
    private readonly node: LeaderdNode,
    private readonly store: KvStore,
    private readonly opts: LeaseKeeperOptions,
  ) {
    for (const l of store.leaseIds()) this.deadlines.set(l.id, { deadline: this.now() + l.ttlMs + opts.electionTimeoutMs, ttlMs: l.ttlMs });
    this.offLease = store.onLeaseChange((c) => {
      if (c.type === 'granted') this.deadlines.set(c.id, { deadline: this.now() + c.ttlMs, ttlMs: c.ttlMs });
      else {
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

  /** Renew a lease for its full TTL; returns the TTL granted, 0 if the lease does not exist. Leader only. */
  keepAlive(id: number): number {
    const info = this.store.leaseInfo(id);
    if (!info || this.expiring.has(id)) return 0;
    this.deadlines.set(id, { deadline: this.now() + info.ttlMs, ttlMs: info.ttlMs });
    return info.ttlMs;
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
      this.opts.logger.info({ node: this.node.id, lease: id, ttlMs: d.ttlMs }, 'lease expired');
      this.opts.expire(id).catch((err) => {
        // Not committed (lost leadership?): the next leader decides again.
        this.expiring.delete(id);
        this.opts.logger.debug({ node: this.node.id, lease: id, err: (err as Error).message }, 'lease expiry not committed');
      });
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.offLease();
    this.offLeader();
  }
}

// leaderd.v1.Election for LeaderdClient: campaign, observe, leadership handles whose
// signal follows what the client can prove, and runWhileLeader.
import type { LeaderResponse__Output } from '../gen/leaderd/v1/LeaderResponse.js';
import type { LeaderKey } from '../gen/leaderd/v1/LeaderKey.js';
import { LeaderdError, LeadershipLostError, LeaseLostError, type LeadershipLostReason } from './errors.js';
import { type LeaseHandle } from './lease-handle.js';
import { asyncDispose } from './dispose.js';
import type { ElectionLeader } from './types.js';
import { LeaseApi } from './lease-api.js';
import { DEFAULT_LEASE_TTL_MS, toBuffer, once } from './invoker.js';
import { toKeyValue } from './kv-api.js';
import type { Leadership } from './leaderd-client.js';

function toElectionLeader(r: LeaderResponse__Output): ElectionLeader {
  const kv = r.found && r.kv ? toKeyValue(r.kv) : null;
  return { found: r.found, key: kv?.key ?? '', value: kv?.value ?? Buffer.alloc(0), token: r.fencingToken, revision: r.revision, kv };
}

export abstract class ElectionApi extends LeaseApi {
  /** The current holder of election `name`, as the cluster sees it (linearizable unless serializable). */
  async electionLeader(name: string, opts: { signal?: AbortSignal } = {}): Promise<ElectionLeader> {
    const res = await this.read<LeaderResponse__Output>((s, o, cb) => s.election.Leader({ name }, o, cb), opts);
    return toElectionLeader(res);
  }

  /**
   * The holder of election `name` now, then every change. A broken stream continues on
   * another endpoint; an answer identical to the last one yielded is skipped.
   */
  async *observe(name: string, signal?: AbortSignal): AsyncGenerator<ElectionLeader> {
    const sig = this.linked(signal);
    let last: string | undefined;
    // After a re-open, the same key at the same mod revision means one holder throughout,
    // so nothing was missed; anything else is a resync.
    for await (const { message: r, reopened } of this.resumableStream<LeaderResponse__Output>({
      open: (s) => s.election.Observe({ name }),
      signal: sig,
      // A stream that cannot continue where it was (a snapshot install, a client too
      // slow) is re-opened: an observer wants the current holder, said to be a resync.
      resumes: (e) => e.retryable || ['internal', 'cancelled', 'out-of-range', 'resource-exhausted'].includes(e.kind),
    })) {
      const l = toElectionLeader(r);
      const k = l.found ? `${l.key}@${l.kv?.modRevision ?? 0}` : 'none';
      const resynced = reopened || r.resync;
      if (k === last) continue;
      last = k;
      yield resynced ? { ...l, resynced } : l;
    }
  }

  /**
   * Campaign in election `name` with `value`: grants a lease (ttlMs, default 5000; the
   * server's minimum is 500), then waits until elected, across failovers (a retried
   * Campaign with the same lease reuses that lease's key). Rejects if `signal` aborts or
   * the lease is lost while waiting (the lease is then revoked).
   */
  async campaign(name: string, value: string | Uint8Array, opts: { ttlMs?: number; signal?: AbortSignal } = {}): Promise<Leadership> {
    const lease = await this.lease(opts.ttlMs ?? DEFAULT_LEASE_TTL_MS, opts.signal ? { signal: opts.signal } : {});
    try {
      const res = await this.blockingUntilGranted<{ leader: LeaderKey | null; fencingToken: number }>(
        (s, o, cb) => s.election.Campaign({ name, lease: lease.id, value: toBuffer(value) }, o, cb),
        lease,
        opts.signal,
      );
      const key = res.leader?.key ?? '';
      const leaderKey: LeaderKey = res.leader ?? { name, key, rev: res.fencingToken, lease: lease.id };
      return this.makeLeadership(name, key, res.fencingToken, leaderKey, lease);
    } catch (err) {
      await this.dropLease(lease);
      throw err;
    }
  }

  /**
   * Campaign in election `name` with `value`, and run `work` each time this client is
   * elected, with a signal that aborts when the leadership ends (lease lost, another
   * holder seen) or `opts.signal` aborts, and the fencing token; the client-side twin of the embedded node's
   * runWhileLeader. When `work` returns while still leading, the leadership is held until
   * lost, then the client campaigns again. Resolves (after resigning) when `opts.signal`
   * aborts; rejects with `work`'s error if it throws while still leading (after resigning).
   */
  async runWhileLeader(
    name: string,
    value: string | Uint8Array,
    work: (signal: AbortSignal, fencingToken: number, leadership: Leadership) => Promise<void>,
    opts: { ttlMs?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    const outer = this.linked(opts.signal);
    while (!outer.aborted) {
      let leadership: Leadership;
      try {
        leadership = await this.campaign(name, value, { ...(opts.ttlMs !== undefined ? { ttlMs: opts.ttlMs } : {}), signal: outer });
      } catch (err) {
        if (outer.aborted) return;
        // The lease was lost while waiting (a partition, a failover too slow): campaign anew.
        if (err instanceof LeaseLostError) continue;
        throw err;
      }
      const both = AbortSignal.any([leadership.signal, outer]);
      try {
        await work(both, leadership.token, leadership);
      } catch (err) {
        if (!leadership.signal.aborted) {
          await leadership.resign().catch(() => {});
          if (!outer.aborted) throw err;
        }
      }
      if (!both.aborted) await new Promise<void>((resolve) => both.addEventListener('abort', () => resolve(), { once: true }));
      if (outer.aborted && !leadership.signal.aborted) await leadership.resign().catch(() => {});
    }
  }

  protected makeLeadership(name: string, key: string, token: number, leaderKey: LeaderKey, lease: LeaseHandle): Leadership {
    const controller = new AbortController();
    const observer = new AbortController();
    const abort = (reason: LeadershipLostReason, msg: string, cause?: unknown) => {
      observer.abort();
      if (!controller.signal.aborted) controller.abort(new LeadershipLostError(reason, key, token, msg, { cause }));
    };
    const onLeaseLost = () => abort('lease-lost', `election ${name}: ${(lease.signal.reason as Error).message}`, lease.signal.reason);
    if (lease.signal.aborted) onLeaseLost();
    else lease.signal.addEventListener('abort', onLeaseLost, { once: true });
    this.closer.signal.addEventListener('abort', () => abort('closed', `election ${name}: client closed`), {
      once: true,
      signal: observer.signal,
    });

    // Watch for another holder. A lagging node may still show the previous holder for
    // a while, so only an answer at a revision after one that showed us counts, or a
    // holder whose key was created after ours (then ours was certainly deleted).
    void (async () => {
      let selfSeenAt = Infinity;
      try {
        for await (const l of this.observe(name, observer.signal)) {
          const isSelf = l.found && l.key === key;
          if (isSelf) selfSeenAt = Math.min(selfSeenAt, l.revision);
          else if ((l.found && l.token > token) || l.revision > selfSeenAt) {
            abort(
              'superseded',
              `election ${name}: ${l.found ? `${l.key} (token ${l.token})` : 'nobody'} holds it now, not ${key} (token ${token})`,
            );
            return;
          }
        }
      } catch (err) {
        // Observe failing for good (not transiently) leaves only the lease to go by; it still bounds the leadership.
        void err;
      }
    })();

    const resign = once(async () => {
      abort('resigned', `election ${name}: resigned`);
      try {
        await this.write((s, o, cb) => s.election.Resign({ leader: leaderKey }, o, cb));
      } finally {
        await lease.revoke();
      }
    });
    return {
      name,
      key,
      token,
      lease,
      signal: controller.signal,
      valid: () => lease.valid() && !controller.signal.aborted,
      proclaim: async (value) => {
        if (!lease.valid() || controller.signal.aborted) throw controller.signal.reason ?? lease.signal.reason;
        try {
          const { res } = await this.write<{ revision: number }>((s, o, cb) =>
            s.election.Proclaim({ leader: leaderKey, value: toBuffer(value) }, o, cb),
          );
          return res.revision;
        } catch (err) {
          if (err instanceof LeaderdError && err.kind === 'failed-precondition')
            abort('superseded', `election ${name}: proclaim refused: ${err.message}`, err);
          throw err;
        }
      },
      resign,
      [asyncDispose]: resign,
    };
  }
}

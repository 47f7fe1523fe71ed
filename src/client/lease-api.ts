// leaderd.v1.Lease for LeaderdClient: grants, kept-alive lease handles, and the waiting
// for a grant (Campaign, Lock) that lives as long as its lease.
import { backoffDelay } from './backoff.js';
import { LeaderdError } from './errors.js';
import { LeaseKeeper, type LeaseHandle, type LeaseHost } from './lease-handle.js';
import type { LeaseInfo } from './types.js';
import { KvApi } from './kv-api.js';
import type { UnaryStart, Sent } from './invoker.js';

export abstract class LeaseApi extends KvApi {
  /** Grant a lease without keeping it alive (see lease() for a kept-alive handle). */
  async grantLease(ttlMs: number, opts: { signal?: AbortSignal } = {}): Promise<{ id: number; ttlMs: number }> {
    return (await this.grantLeaseTimed(ttlMs, opts)).res;
  }

  protected async grantLeaseTimed(ttlMs: number, opts: { signal?: AbortSignal }): Promise<Sent<{ id: number; ttlMs: number }>> {
    return this.exactlyOnce<{ id: number; ttlMs: number }>((s, tag, o, cb) => s.lease.Grant({ ttlMs, ...tag }, o, cb), opts);
  }

  async revokeLease(id: number, opts: { signal?: AbortSignal } = {}): Promise<{ revision: number }> {
    const { res } = await this.write<{ revision: number }>((s, o, cb) => s.lease.Revoke({ id }, o, cb), opts);
    return { revision: res.revision };
  }

  async timeToLive(id: number, opts: { keys?: boolean; signal?: AbortSignal } = {}): Promise<LeaseInfo> {
    const res = await this.read<{ id: number; ttlMs: number; grantedTtlMs: number; keys: string[] }>(
      (s, o, cb) => s.lease.TimeToLive({ id, keys: opts.keys ?? false }, o, cb),
      opts,
    );
    return { id: res.id, ttlMs: res.ttlMs, grantedTtlMs: res.grantedTtlMs, keys: res.keys };
  }

  /** One keep-alive: the TTL the lease was renewed for (0 = it no longer exists). */
  async keepAliveOnce(id: number, opts: { signal?: AbortSignal } = {}): Promise<{ id: number; ttlMs: number }> {
    const { res } = await this.invoke<{ id: number; ttlMs: number }>((s, o, cb) => s.lease.KeepAliveOnce({ id }, o, cb), {
      write: true,
      idempotent: true,
      preferLeader: true,
      ...opts,
    });
    return { id: res.id, ttlMs: res.ttlMs };
  }

  /**
   * Grant a lease of `ttlMs` and keep it alive (a keep-alive every ttl/3 on a KeepAlive
   * stream that moves to another endpoint when it breaks). See LeaseHandle.
   */
  async lease(ttlMs: number, opts: { signal?: AbortSignal } = {}): Promise<LeaseHandle> {
    const { res, sentAt } = await this.grantLeaseTimed(ttlMs, opts);
    const keeper = new LeaseKeeper(this.leaseHost(), res.id, res.ttlMs, sentAt);
    this.leases.add(keeper);
    keeper.start();
    return keeper;
  }

  protected leaseHost(): LeaseHost {
    return {
      now: this.now,
      openKeepAlive: (failures) => {
        const endpoint = failures === 0 ? this.pickEndpoint(true) : this.roundRobin();
        const call = this.stubs(endpoint).lease.KeepAlive();
        this.track(call);
        return { endpoint, call };
      },
      backoff: (failures) => backoffDelay(failures, this.backoffOpts, this.random),
      revokeOnServer: async (id) => {
        try {
          await this.revokeLease(id);
        } catch (err) {
          // A retried Revoke whose first attempt took effect finds nothing to revoke.
          if (!(err instanceof LeaderdError && err.kind === 'not-found')) throw err;
        }
      },
      forget: (k) => this.leases.delete(k),
    };
  }

  protected async dropLease(lease: LeaseHandle): Promise<void> {
    if (this.closer.signal.aborted) return;
    await lease.revoke().catch(() => {});
  }

  /**
   * A call that blocks server-side until granted (Campaign, Lock): retried across
   * failovers for as long as the lease lives and `signal` has not aborted. Each attempt
   * gets a long deadline; one that expires is simply re-sent.
   */
  protected async blockingUntilGranted<T>(start: UnaryStart<T>, lease: LeaseHandle, signal?: AbortSignal): Promise<T> {
    const sig = signal ? AbortSignal.any([signal, lease.signal]) : lease.signal;
    for (;;) {
      try {
        return (
          await this.invoke(start, {
            write: true,
            idempotent: true,
            preferLeader: true,
            timeoutMs: 60_000,
            attemptTimeoutMs: 30_000,
            signal: sig,
          })
        ).res;
      } catch (err) {
        if (lease.signal.aborted) throw lease.signal.reason as Error;
        if (err instanceof LeaderdError && (err.kind === 'deadline' || err.retryable) && !sig.aborted) continue;
        throw err;
      }
    }
  }
}

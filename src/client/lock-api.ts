// leaderd.v1.Lock for LeaderdClient: lock(name) (awaitable, or .do(fn)) and withLock.
import { LeadershipLostError, type LeadershipLostReason } from './errors.js';
import { asyncDispose } from './dispose.js';
import { LockRequest } from './lock-request.js';
import { ElectionApi } from './election-api.js';
import { DEFAULT_LEASE_TTL_MS, once } from './invoker.js';
import type { LockHandle } from './leaderd-client.js';

export abstract class LockApi extends ElectionApi {
  /**
   * Lock `name`: `await client.lock(name)` waits until held and gives the handle (its
   * signal follows its lease; `await using` releases it), `client.lock(name).do(fn)` holds
   * it while `fn` runs and releases it however `fn` ends.
   */
  lock(name: string, opts: { ttlMs?: number; signal?: AbortSignal } = {}): LockRequest {
    return new LockRequest(name, () => this.takeLock(name, opts));
  }

  /** Run `fn` holding lock `name` (`client.lock(name, opts).do(fn)`). */
  withLock<T>(name: string, fn: (lock: LockHandle) => T | Promise<T>, opts: { ttlMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    return this.lock(name, opts).do(fn);
  }

  protected async takeLock(name: string, opts: { ttlMs?: number; signal?: AbortSignal }): Promise<LockHandle> {
    const lease = await this.lease(opts.ttlMs ?? DEFAULT_LEASE_TTL_MS, opts.signal ? { signal: opts.signal } : {});
    try {
      const res = await this.blockingUntilGranted<{ key: string; fencingToken: number }>(
        (s, o, cb) => s.lock.Lock({ name, lease: lease.id }, o, cb),
        lease,
        opts.signal,
      );
      const controller = new AbortController();
      const abort = (reason: LeadershipLostReason, msg: string, cause?: unknown) => {
        if (!controller.signal.aborted) controller.abort(new LeadershipLostError(reason, res.key, res.fencingToken, msg, { cause }));
      };
      const onLeaseLost = () => abort('lease-lost', `lock ${name}: ${(lease.signal.reason as Error).message}`, lease.signal.reason);
      if (lease.signal.aborted) onLeaseLost();
      else lease.signal.addEventListener('abort', onLeaseLost, { once: true });
      const unlock = once(async () => {
        abort('unlocked', `lock ${name} released`);
        try {
          await this.write((s, o, cb) => s.lock.Unlock({ key: res.key }, o, cb));
        } finally {
          await lease.revoke();
        }
      });
      return {
        name,
        key: res.key,
        token: res.fencingToken,
        lease,
        signal: controller.signal,
        valid: () => lease.valid() && !controller.signal.aborted,
        unlock,
        [asyncDispose]: unlock,
      };
    } catch (err) {
      await this.dropLease(lease);
      throw err;
    }
  }
}

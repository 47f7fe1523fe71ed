// `client.lock(name)`: awaitable as before (`await client.lock(name)` gives the handle),
// and with `.do(fn)`, which holds the lock while fn runs and releases it however fn ends,
// as etcd3's `client.lock(name).do(fn)` does.
import type { LockHandle } from './leaderd-client.js';

export class LockRequest implements PromiseLike<LockHandle> {
  private acquiring: Promise<LockHandle> | null = null;

  constructor(
    readonly name: string,
    private readonly take: () => Promise<LockHandle>,
  ) {}

  /** Take the lock (once: later calls share the first attempt). */
  acquire(): Promise<LockHandle> {
    return (this.acquiring ??= this.take());
  }

  then<A = LockHandle, B = never>(
    onFulfilled?: ((lock: LockHandle) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.acquire().then(onFulfilled, onRejected);
  }

  catch<B = never>(onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<LockHandle | B> {
    return this.acquire().catch(onRejected);
  }

  /**
   * Take the lock, run `fn` with it, release it. `fn` gets the handle: its `signal` aborts
   * if the lock's lease is lost meanwhile (stop acting then), its `token` is the fencing
   * token to hand to the protected resource. Resolves or rejects as `fn` does; the lock is
   * released either way (a failed release after a failed `fn` does not hide fn's error).
   * If the lock was lost while `fn` ran, rejects with the signal's reason (a
   * LeadershipLostError) even though `fn` succeeded: it did not run under the lock to the end.
   */
  async do<T>(fn: (lock: LockHandle) => T | Promise<T>): Promise<T> {
    const lock = await this.acquire();
    let result: T;
    try {
      result = await fn(lock);
    } catch (err) {
      await lock.unlock().catch(() => {});
      throw err;
    }
    if (lock.signal.aborted) {
      await lock.unlock().catch(() => {});
      throw lock.signal.reason;
    }
    await lock.unlock();
    return result;
  }
}

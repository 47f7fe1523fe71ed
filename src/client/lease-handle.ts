// A lease kept alive by the client over a Lease.KeepAlive bidi stream, with an
// AbortSignal that fires as soon as the client can no longer prove the lease alive.
import type * as grpc from '@grpc/grpc-js';
import type { LeaseKeepAliveRequest } from '../gen/leaderd/v1/LeaseKeepAliveRequest.js';
import type { LeaseKeepAliveResponse__Output } from '../gen/leaderd/v1/LeaseKeepAliveResponse.js';
import { LeaseLostError, type LeaseLostReason } from './errors.js';
import { LeaseValidity } from './lease-validity.js';
import { asyncDispose } from './dispose.js';

/** `await using` revokes the lease at the end of the scope. */
export interface LeaseHandle extends AsyncDisposable {
  readonly id: number;
  /** The TTL the server granted, ms. */
  readonly ttlMs: number;
  /** Aborts (reason: a LeaseLostError) once the lease is lost or can no longer be proven. */
  readonly signal: AbortSignal;
  /** Monotonic time (the client's `now()` clock) until which the lease is proven alive. */
  readonly validUntil: number;
  /** Checks the clock now: false (and the signal aborted) once validUntil has passed. */
  valid(): boolean;
  /** Stop keeping it alive and revoke it on the server (its keys are deleted). */
  revoke(): Promise<void>;
}

/** What a LeaseKeeper needs from the client: the world, injected (grpc-js helper style). */
export interface LeaseHost {
  readonly now: () => number;
  /** Open a KeepAlive stream on the next endpoint to try (rotating after failures). */
  openKeepAlive(failures: number): {
    endpoint: string;
    call: grpc.ClientDuplexStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse__Output>;
  };
  backoff(failures: number): number;
  revokeOnServer(id: number): Promise<void>;
  forget(keeper: LeaseKeeper): void;
}

export class LeaseKeeper implements LeaseHandle {
  private readonly controller = new AbortController();
  private readonly validity: LeaseValidity;
  private call: grpc.ClientDuplexStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse__Output> | null = null;
  private sendTimer: NodeJS.Timeout | null = null;
  /** Fires at validUntil exactly; re-armed whenever validity extends. */
  private deadlineTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private streamFailed = false;
  private lost = false;

  constructor(
    private readonly host: LeaseHost,
    readonly id: number,
    readonly ttlMs: number,
    grantSentAt: number,
  ) {
    this.validity = new LeaseValidity(grantSentAt, ttlMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get validUntil(): number {
    return this.validity.validUntil;
  }

  /** Begin keeping the lease alive. */
  start(): void {
    if (!this.valid()) return;
    this.armDeadline();
    this.connect();
  }

  /**
   * The signal fires at validUntil, not at the next tick of a poll: a holder told late
   * might still act when the server can already have granted the lease to someone else.
   * A process resumed from SIGSTOP learns of the loss on its first valid(), which reads
   * the clock, before any timer had a chance to run.
   */
  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    if (this.lost) return;
    const delay = this.validity.validUntil - this.host.now();
    if (delay <= 0) {
      this.lose('expired');
      return;
    }
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = null;
      // An injected clock may not have reached the deadline yet: wait for the rest.
      if (this.valid()) this.armDeadline();
    }, Math.ceil(delay));
  }

  valid(): boolean {
    if (this.lost) return false;
    if (!this.validity.valid(this.host.now())) {
      this.lose('expired');
      return false;
    }
    return true;
  }

  private revoking: Promise<void> | null = null;

  /** Revoke once: a second call (an explicit revoke, then `await using`) shares the first. */
  revoke(): Promise<void> {
    // Stop acting on the lease before the server drops it, not after.
    this.lose('revoked');
    return (this.revoking ??= this.host.revokeOnServer(this.id));
  }

  [asyncDispose](): Promise<void> {
    return this.revoke();
  }

  /** End everything this lease runs, without revoking it on the server. */
  lose(reason: LeaseLostReason): void {
    if (this.lost) return;
    this.lost = true;
    this.stopStream();
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.deadlineTimer = this.retryTimer = null;
    this.host.forget(this);
    const now = this.host.now();
    this.controller.abort(new LeaseLostError(this.id, reason, this.validity.validUntil, now));
  }

  private connect(): void {
    if (this.lost) return;
    const { call } = this.host.openKeepAlive(this.failures);
    this.call = call;
    this.streamFailed = false;
    call.on('data', (res: LeaseKeepAliveResponse__Output) => {
      if (this.call !== call || this.lost) return;
      if (res.ttlMs <= 0) {
        this.lose('gone');
        return;
      }
      // Check before crediting the answer: an answer must never revive a lease whose
      // proven validity already ran out (the server may have expired it meanwhile).
      if (!this.valid()) return;
      const before = this.validity.validUntil;
      if (this.validity.acked(res.ttlMs)) this.failures = 0;
      if (this.validity.validUntil !== before) this.armDeadline();
    });
    const broken = () => {
      if (this.call !== call || this.lost) return;
      this.reconnectLater();
    };
    call.on('error', broken);
    call.on('end', broken);
    this.sendKeepAlive();
    this.sendTimer = setInterval(() => this.tick(), Math.max(1, Math.floor(this.ttlMs / 3)));
  }

  private tick(): void {
    if (this.lost || !this.call || !this.valid()) return;
    // At most one keep-alive in flight per stream: answers then pair with requests
    // unambiguously even if the server answers a forwarded one late. An answer still
    // missing after ttl/3 means this path is slow or dead: try another.
    if (this.validity.state().inFlight.length > 0) {
      this.reconnectLater();
      return;
    }
    this.sendKeepAlive();
  }

  private sendKeepAlive(): void {
    if (!this.call) return;
    this.validity.sent(this.host.now());
    this.call.write({ id: this.id });
  }

  private stopStream(): void {
    if (this.sendTimer) clearInterval(this.sendTimer);
    this.sendTimer = null;
    const call = this.call;
    this.call = null;
    this.validity.streamReset();
    if (call) {
      call.removeAllListeners('data');
      // Swallow the CANCELLED status that cancel() produces.
      call.on('error', () => {});
      call.cancel();
    }
  }

  private reconnectLater(): void {
    if (this.streamFailed) return;
    this.streamFailed = true;
    this.stopStream();
    this.failures++;
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = null;
        this.connect();
      },
      this.host.backoff(this.failures - 1),
    );
  }
}

// How long a client may act on its lease: pure arithmetic over a monotonic clock.
//
// The server renews a lease for its full TTL when it *receives* a keep-alive, which is
// some unknown time after the client sent it. The client therefore counts the TTL from
// the moment it SENT the request that the server acknowledged: the server's expiry can
// only be later than that, so `validUntil` never overstates the lease (the same
// reasoning as the Raft leader lease, thesis §6.4.1, "start of the heartbeat round").
// A response to a request sent before a long pause (SIGSTOP, GC) extends nothing useful.

export interface LeaseValidityState {
  /** Monotonic time until which the lease is proven alive. */
  readonly validUntil: number;
  /** Send times of keep-alives not yet answered, oldest first (one stream answers in order). */
  readonly inFlight: readonly number[];
}

export class LeaseValidity {
  private until: number;
  private pending: number[] = [];

  /** `sentAt`: when the Grant request was sent; `ttlMs`: the granted TTL. */
  constructor(sentAt: number, ttlMs: number) {
    this.until = sentAt + ttlMs;
  }

  get validUntil(): number {
    return this.until;
  }

  /** A keep-alive request left at `at`. */
  sent(at: number): void {
    this.pending.push(at);
  }

  /**
   * The oldest unanswered keep-alive was answered with `ttlMs`. Returns false when the
   * answer says the lease is gone (ttl 0) or no request was waiting for it.
   */
  acked(ttlMs: number): boolean {
    const sentAt = this.pending.shift();
    if (sentAt === undefined || ttlMs <= 0) return false;
    // max(): an answer to an older request never shortens what a newer one proved.
    this.until = Math.max(this.until, sentAt + ttlMs);
    return true;
  }

  /** The stream carrying the unanswered requests broke: their answers will never come. */
  streamReset(): void {
    this.pending = [];
  }

  /** A unary keep-alive (KeepAliveOnce) sent at `sentAt` was answered with `ttlMs`. */
  ackedOnce(sentAt: number, ttlMs: number): boolean {
    if (ttlMs <= 0) return false;
    this.until = Math.max(this.until, sentAt + ttlMs);
    return true;
  }

  valid(now: number): boolean {
    return now < this.until;
  }

  state(): LeaseValidityState {
    return { validUntil: this.until, inFlight: [...this.pending] };
  }
}

// How long a client may act on its lease: pure arithmetic over a monotonic clock.
//
// The server renews a lease for its full TTL when it *receives* a keep-alive, which is
// some unknown time after the client sent it. The client therefore counts the TTL from
// the moment it SENT the request that the server acknowledged: the server's expiry can
// only be later than that, so `validUntil` never overstates the lease (the same
// reasoning as the Raft leader lease, thesis §6.4.1, "start of the heartbeat round").
// A response to a request sent before a long pause (SIGSTOP, GC) extends nothing useful.
//
// Two more things can make the server's clock reach the end of the TTL before the
// client's does, and the client gives up that much in advance (driftMarginMs):
//  - the two monotonic clocks may run at slightly different rates: 1% of the TTL is
//    allowed for (NTP bounds its slewing to 0.05%; a free-running oscillator is within
//    0.01%), so this is twenty times what well-kept clocks need;
//  - the client's timer may fire late when its event loop is busy: 20 ms are allowed.
// With a TTL of 5 s the lease is acted on until 70 ms before the earliest moment the
// server could end it. A stall longer than that (a paused process, a long GC) is caught
// by valid(), which reads the clock, not by the timer.

/** Fraction of the TTL given up for the difference in clock rates between client and server. */
export const CLOCK_DRIFT_RATE = 0.01;
/** Milliseconds given up for a timer that fires late. */
export const TIMER_SLACK_MS = 20;

/** How much earlier than the server's earliest possible expiry the client stops trusting a lease. */
export function driftMarginMs(ttlMs: number): number {
  return Math.ceil(ttlMs * CLOCK_DRIFT_RATE) + TIMER_SLACK_MS;
}

export interface LeaseValidityState {
  /** Monotonic time until which the lease is proven alive. */
  readonly validUntil: number;
  /** Send times of keep-alives not yet answered, oldest first (one stream answers in order). */
  readonly inFlight: readonly number[];
}

export class LeaseValidity {
  private until: number;
  private pending: number[] = [];

  /**
   * `sentAt`: when the first Grant attempt that may have been applied was sent (a retry
   * may be answered from the cache with the grant of an earlier attempt); `ttlMs`: the
   * granted TTL.
   */
  constructor(sentAt: number, ttlMs: number) {
    this.until = sentAt + ttlMs - driftMarginMs(ttlMs);
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
    this.until = Math.max(this.until, sentAt + ttlMs - driftMarginMs(ttlMs));
    return true;
  }

  /** The stream carrying the unanswered requests broke: their answers will never come. */
  streamReset(): void {
    this.pending = [];
  }

  /** A unary keep-alive (KeepAliveOnce) sent at `sentAt` was answered with `ttlMs`. */
  ackedOnce(sentAt: number, ttlMs: number): boolean {
    if (ttlMs <= 0) return false;
    this.until = Math.max(this.until, sentAt + ttlMs - driftMarginMs(ttlMs));
    return true;
  }

  valid(now: number): boolean {
    return now < this.until;
  }

  state(): LeaseValidityState {
    return { validUntil: this.until, inFlight: [...this.pending] };
  }
}

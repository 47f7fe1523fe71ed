// Turns the monotonic clock into Raft ticks.
//
// The core only knows ticks. After any stall of the event loop (a long GC, a blocked
// callback, SIGSTOP, a frozen VM) the timer fires late; the ticks it missed are still
// owed, and they must all be delivered before the node handles a message, answers a
// read or reports leadership. Otherwise a leader that was paused past its lease would
// wake up and, for a moment, still believe and say that it leads.

export class TickClock {
  private readonly t0: number;
  private delivered = 0;

  constructor(
    readonly tickMs: number,
    private readonly onTick: () => void,
    /** Monotonic milliseconds: the runtime's injected clock (RuntimeClock.now). */
    private readonly now: () => number,
  ) {
    if (!(tickMs > 0)) throw new Error('tickMs must be positive');
    this.t0 = now();
  }

  /** Deliver every tick that is due. Returns how many were delivered. */
  catchUp(): number {
    const due = Math.floor((this.now() - this.t0) / this.tickMs);
    let n = 0;
    while (this.delivered < due) {
      this.delivered++;
      n++;
      this.onTick();
    }
    return n;
  }

  /** Milliseconds until the next tick is due (>= 0). */
  msUntilNextTick(): number {
    const next = this.t0 + (this.delivered + 1) * this.tickMs;
    return Math.max(0, next - this.now());
  }
}

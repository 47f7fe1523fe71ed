// Turns the monotonic clock into Raft ticks.
//
// The core only knows ticks. After any stall of the event loop (a long GC, a blocked
// callback, SIGSTOP, a frozen VM) the timer fires late; the ticks it missed are still
// owed, and they must all be delivered before the node handles a message, answers a
// read or reports leadership. Otherwise a leader that was paused past its lease would
// wake up and, for a moment, still believe and say that it leads.
//
// The monotonic clock stops while the machine is suspended (a laptop lid, a VM paused by
// its hypervisor); a leader that wakes up would count its lease as still running. Where
// a clock that counts suspend is available (Linux CLOCK_BOOTTIME, through /proc/uptime),
// it is read too and the larger elapsed time wins.

/** /proc/uptime counts in centiseconds: a reading may be this far off either way. */
const BOOT_CLOCK_RESOLUTION_MS = 10;
/**
 * The boot clock is read at most once per this much monotonic time (a read costs ~5 µs).
 * Right after a resume that leaves a window of at most this long, well inside the lease
 * drift margin (at least two ticks), in which the suspend is not yet counted.
 */
const BOOT_CLOCK_EVERY_MS = 1;

export class TickClock {
  private readonly t0: number;
  private delivered = 0;
  private readonly boot0: number | undefined;
  private lastBootRead: number;
  /** Time the boot clock counted and the monotonic clock did not (suspend), never decreasing. */
  private suspendedMs = 0;

  constructor(
    readonly tickMs: number,
    private readonly onTick: () => void,
    /** Monotonic milliseconds: the runtime's injected clock (RuntimeClock.now). */
    private readonly now: () => number,
    /** Milliseconds on a clock that also counts suspend (RuntimeClock.sinceBoot), if there is one. */
    private readonly sinceBoot?: () => number | undefined,
  ) {
    if (!(tickMs > 0)) throw new Error('tickMs must be positive');
    this.t0 = now();
    this.lastBootRead = this.t0;
    this.boot0 = sinceBoot?.();
  }

  /** Monotonic elapsed time plus any suspend the boot clock saw. */
  private elapsed(): number {
    const mono = this.now() - this.t0;
    if (this.boot0 !== undefined && this.now() - this.lastBootRead >= BOOT_CLOCK_EVERY_MS) {
      this.lastBootRead = this.now();
      const b = this.sinceBoot?.();
      if (b !== undefined) {
        const skew = b - this.boot0 - mono - BOOT_CLOCK_RESOLUTION_MS;
        if (skew > this.suspendedMs) this.suspendedMs = skew;
      }
    }
    return mono + this.suspendedMs;
  }

  /** Deliver every tick that is due. Returns how many were delivered. */
  catchUp(): number {
    const due = Math.floor(this.elapsed() / this.tickMs);
    let n = 0;
    while (this.delivered < due) {
      this.delivered++;
      n++;
      this.onTick();
    }
    return n;
  }

  /** The monotonic time (the injected clock's) at which tick number `n` was or will be due. */
  dueAt(n: number): number {
    return this.t0 + n * this.tickMs - this.suspendedMs;
  }

  /** Milliseconds until the next tick is due (>= 0). */
  msUntilNextTick(): number {
    const next = this.t0 + (this.delivered + 1) * this.tickMs - this.suspendedMs;
    return Math.max(0, next - this.now());
  }
}

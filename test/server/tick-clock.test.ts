// The tick clock after a system suspend: the monotonic clock stood still, the boot clock
// (CLOCK_BOOTTIME) did not, and the ticks owed for the suspend are delivered before
// anything else, so a suspended leader wakes up with its lease expired.
import { describe, expect, it } from 'vitest';
import { uptime } from 'node:os';
import { TickClock } from '../../src/server/tick-clock.js';
import { systemClock } from '../../src/server/runtime-ports.js';

function fakeClocks() {
  const t = { mono: 1000, boot: 50_000 };
  let ticks = 0;
  const clock = new TickClock(
    10,
    () => ticks++,
    () => t.mono,
    () => t.boot,
  );
  return { t, clock, ticks: () => ticks };
}

describe('TickClock', () => {
  it('a 5 s suspend (boot clock advanced, monotonic did not) delivers the ticks for it', () => {
    const { t, clock, ticks } = fakeClocks();
    t.mono += 100;
    t.boot += 100;
    clock.catchUp();
    expect(ticks()).toBe(10);
    t.boot += 5000; // suspended
    t.mono += 2; // the first instants after resume
    clock.catchUp();
    // 5 s of suspend minus the boot clock's 10 ms resolution.
    expect(ticks()).toBeGreaterThanOrEqual(10 + 499);
    expect(ticks()).toBeLessThanOrEqual(10 + 501);
  });

  it('does not count the boot clock’s coarse resolution as suspend, and never runs backwards', () => {
    const { t, clock, ticks } = fakeClocks();
    for (let i = 0; i < 100; i++) {
      t.mono += 7;
      t.boot += i % 2 === 0 ? 0 : 14; // centisecond steps around the true time
      clock.catchUp();
    }
    expect(ticks()).toBe(70);
    t.boot -= 1000; // a boot clock that stepped back is ignored
    t.mono += 10;
    clock.catchUp();
    expect(ticks()).toBe(71);
  });

  it('without a boot clock it counts monotonic time only', () => {
    const t = { mono: 0 };
    let ticks = 0;
    const clock = new TickClock(
      10,
      () => ticks++,
      () => t.mono,
    );
    t.mono = 55;
    clock.catchUp();
    expect(ticks).toBe(5);
  });

  it.runIf(process.platform === 'linux')('on Linux the system clock reads the boot clock (/proc/uptime), suspend included', () => {
    const b = systemClock.sinceBoot?.();
    expect(b).toBeDefined();
    expect(Math.abs(b! - uptime() * 1000)).toBeLessThan(2000);
  });
});

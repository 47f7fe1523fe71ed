// The process between `leaderd lock|elect NAME -- CMD` and CMD: it runs CMD and stops it
// before the lease behind the grant can expire, even when the leaderd process itself is
// frozen (SIGSTOP, a stalled event loop, a paused VM thread) or killed. That process
// tells it, over fd 3, until when the lease is proven alive; this one needs nothing
// else to act in time — a dead man's switch on the lease, like the leadership signal of
// the client library but enforced outside the process that might stop running.
//
// Arguments: GRACE_MS UNTIL_MS CMD [ARGS...]. Protocol on fd 3, one line each: `until <ms>` (the lease is valid until this time on the
// machine's monotonic clock, process.hrtime), `stop` (the grant is lost: stop CMD now).
// End of file on fd 3 (the leaderd process died) counts as `stop`.
import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { constants } from 'node:os';

/** Milliseconds on CLOCK_MONOTONIC: the same clock in every process on the machine. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * When to stop CMD for a lease proven valid until `until`: SIGTERM `graceMs` before it,
 * SIGKILL half-way from there, so that even a CMD that ignores SIGTERM is gone graceMs/2
 * before the lease could expire on any server (which counts its TTL from a later moment).
 */
export function stopTimes(until: number, graceMs: number): { termAt: number; killAt: number } {
  return { termAt: until - graceMs, killAt: until - graceMs / 2 };
}

function main(): void {
  const [graceArg, untilArg, cmd, ...args] = process.argv.slice(2);
  const graceMs = Number(graceArg);
  let until = Number(untilArg);
  if (!cmd || !Number.isFinite(graceMs) || !Number.isFinite(until)) {
    process.stderr.write('leaderd: holder-watchdog: usage: holder-watchdog GRACE_MS UNTIL_MS CMD [ARGS...]\n');
    process.exit(2);
  }
  let stopRequested = false;
  let stopRequestedAt = Infinity;
  let termSent = false;
  let killSent = false;
  let timer: NodeJS.Timeout | null = null;

  // Own process group: stopping CMD reaches everything it started (a shell's children).
  const child = spawn(cmd, args, { stdio: 'inherit', detached: true });
  const signalGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // the group is gone already
    }
  };

  const schedule = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (killSent || child.exitCode !== null || child.signalCode !== null) return;
    const now = monotonicMs();
    const { termAt, killAt } = stopTimes(until, graceMs);
    const term = stopRequested ? Math.min(now, termAt) : termAt;
    // After a stop request CMD gets graceMs to exit, but never past killAt.
    const kill = stopRequested ? Math.min(killAt, stopRequestedAt + graceMs) : killAt;
    if (!termSent && now >= term) {
      termSent = true;
      signalGroup('SIGTERM');
    }
    if (now >= kill) {
      killSent = true;
      signalGroup('SIGKILL');
      return;
    }
    const next = (termSent ? kill : Math.min(term, kill)) - now;
    timer = setTimeout(schedule, Math.max(1, Math.ceil(next)));
  };
  const requestStop = () => {
    if (stopRequested) return;
    stopRequested = true;
    stopRequestedAt = monotonicMs();
    schedule();
  };

  const control = new Socket({ fd: 3, readable: true, writable: false });
  let buf = '';
  control.setEncoding('utf8');
  control.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === 'stop') requestStop();
      else if (line.startsWith('until ')) {
        const v = Number(line.slice(6));
        // max(): a late message about an older renewal never shortens the deadline, and
        // since each carries an absolute time, a delayed one can only be too early.
        if (Number.isFinite(v) && v > until) {
          until = v;
          schedule();
        }
      }
    }
  });
  control.on('end', requestStop);
  control.on('error', requestStop);

  // The leaderd process forwards the signals it receives; pass them on to CMD's group.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => signalGroup(sig));

  child.on('error', (err) => {
    process.stderr.write(`leaderd: cannot run ${cmd}: ${err.message}\n`);
    process.exit(127);
  });
  child.on('exit', (code, signal) => {
    if (timer) clearTimeout(timer);
    control.destroy();
    // CMD's status, as a shell reports it: 128+n for death by signal n.
    process.exit(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
  });
  schedule();
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) main();

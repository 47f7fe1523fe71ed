// `leaderd lock NAME -- CMD...` and `leaderd elect NAME -- CMD...`: hold a lock or an
// election's leadership and run CMD only while it is held, the CLI face of the grant's
// signal. CMD learns its fencing token from LEADERD_TOKEN. CMD is stopped (SIGTERM, then
// SIGKILL) before the lease can expire on any server: by the watchdog process that runs
// it (holder-watchdog.ts), which this process keeps told until when the lease is proven
// alive, so that freezing or killing this process cannot leave CMD running past it.
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Writable } from 'node:stream';
import { LeaderdClient, type Grant } from '../client/leaderd-client.js';
import { explain, parseEndpoints, parseTimeout, type ClientFlags } from './client-context.js';
import { monotonicMs } from './holder-watchdog.js';
import { parseWhole } from './kv-commands.js';
import { EXIT_RUNTIME, UsageError } from './usage.js';

export interface HolderFlags extends ClientFlags {
  ttlMs?: string;
  graceMs?: string;
  value?: string;
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const SIGNAL_EXIT: Record<(typeof FORWARDED)[number], number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

export async function runAsHolder(kind: 'lock' | 'elect', name: string, command: readonly string[], flags: HolderFlags): Promise<number> {
  if (command.length === 0)
    throw new UsageError(`${kind} ${name}: give the command to run after --, e.g. leaderd ${kind} ${name} -- ./job.sh`);
  const ttlMs = parseWhole(flags.ttlMs, '--ttl-ms', 500) ?? 5000;
  // SIGTERM a quarter of the TTL before the lease could lapse, SIGKILL at an eighth.
  const graceMs = parseWhole(flags.graceMs, '--grace-ms', 1) ?? Math.floor(ttlMs / 4);
  if (graceMs >= ttlMs / 2) throw new UsageError(`--grace-ms must be less than half of --ttl-ms (${ttlMs}), got ${graceMs}`);
  const endpoints = parseEndpoints(flags.endpoints);
  const timeoutMs = parseTimeout(flags);
  // The machine's monotonic clock, shared with the watchdog process: a lease's validUntil
  // means the same instant in both.
  const client = new LeaderdClient({ endpoints, timeoutMs, now: monotonicMs });

  // A signal while waiting for the grant gives up waiting.
  const waiting = new AbortController();
  let gotSignal: (typeof FORWARDED)[number] | null = null;
  const onWaitSignal = (sig: (typeof FORWARDED)[number]) => () => {
    gotSignal = sig;
    waiting.abort();
  };
  const waitHandlers = FORWARDED.map((sig) => [sig, onWaitSignal(sig)] as const);
  for (const [sig, h] of waitHandlers) process.once(sig, h);

  let grant: Grant & { release: () => Promise<void> };
  try {
    if (kind === 'lock') {
      const l = await client.lock(name, { ttlMs, signal: waiting.signal });
      grant = Object.assign(l, { release: () => l.unlock() });
    } else {
      const l = await client.campaign(name, flags.value ?? `${hostname()}:${process.pid}`, { ttlMs, signal: waiting.signal });
      grant = Object.assign(l, { release: () => l.resign() });
    }
  } catch (err) {
    client.close();
    if (gotSignal) return SIGNAL_EXIT[gotSignal];
    throw await explain(err, client, timeoutMs);
  } finally {
    for (const [sig, h] of waitHandlers) process.off(sig, h);
  }

  const watchdog = spawn(
    process.execPath,
    [fileURLToPath(new URL('./holder-watchdog.js', import.meta.url)), String(graceMs), String(grant.lease.validUntil), ...command],
    {
      // fd 3 carries the lease deadline; its own process group keeps a terminal's Ctrl-C
      // (and a SIGSTOP of this process's group) from reaching it except through us.
      stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
      detached: true,
      env: {
        ...process.env,
        LEADERD_TOKEN: String(grant.token),
        LEADERD_KEY: grant.key,
        LEADERD_LEASE: String(grant.lease.id),
        LEADERD_NAME: name,
        LEADERD_ENDPOINTS: endpoints.join(','),
      },
    },
  );
  const control = watchdog.stdio[3] as Writable;
  control.on('error', () => {}); // the watchdog exited; its exit is handled below
  const send = (line: string) => {
    if (!control.destroyed) control.write(`${line}\n`);
  };

  // Tell the watchdog each time a keep-alive proves the lease alive for longer.
  let told = grant.lease.validUntil;
  const poll = setInterval(
    () => {
      const v = grant.lease.validUntil;
      if (v > told) {
        told = v;
        send(`until ${v}`);
      }
    },
    Math.max(10, Math.min(100, graceMs / 4)),
  );
  const onLost = () => {
    process.stderr.write(`leaderd: ${kind} ${name}: ${(grant.signal.reason as Error)?.message ?? 'lost'}; stopping the command\n`);
    send('stop');
  };
  if (grant.signal.aborted) onLost();
  else grant.signal.addEventListener('abort', onLost, { once: true });
  const forward = FORWARDED.map((sig) => [sig, () => watchdog.kill(sig)] as const);
  for (const [sig, h] of forward) process.on(sig, h);

  const status = await new Promise<number>((resolve) => {
    watchdog.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + 9 : EXIT_RUNTIME)));
  });
  clearInterval(poll);
  for (const [sig, h] of forward) process.off(sig, h);
  grant.signal.removeEventListener('abort', onLost);
  // Let the next holder in at once rather than after the TTL.
  if (!grant.signal.aborted) {
    try {
      await grant.release();
    } catch (err) {
      process.stderr.write(`leaderd: ${kind} ${name}: could not release (the lease will expire): ${(err as Error).message}\n`);
    }
  }
  client.close();
  return status;
}

/** Exit with CMD's status (a failed grant throws instead, for main to report). */
export async function exitWithCommand(
  kind: 'lock' | 'elect',
  name: string,
  command: readonly string[],
  flags: HolderFlags,
): Promise<never> {
  const code = await runAsHolder(kind, name, command, flags);
  process.exit(code);
}

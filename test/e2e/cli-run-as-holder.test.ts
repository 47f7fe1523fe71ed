// `leaderd lock NAME -- CMD` and `leaderd elect NAME -- CMD` with real processes: CMD
// runs with its fencing token, its exit status is the command's, signals reach it, and
// when the holder is frozen (SIGSTOP of the `leaderd lock` process itself) CMD is stopped
// before the next `leaderd lock` on the same name is granted.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, LocalCluster, exitOf, lines, runCli, waitFor } from './cluster.js';

// CMD: records its start (time, LEADERD_* variables, and whether every earlier CMD's
// process was already gone), then a heartbeat every 10 ms until it is stopped.
//   mode ignore-term: SIGTERM is noted and ignored (only SIGKILL stops it)
//   mode term-42:     SIGTERM -> exit 42, SIGINT -> exit 43
//   mode exit-7:      exits 7 by itself after 200 ms
const CMD_SOURCE = `
const fs = require('fs');
const [label, dir, mode] = process.argv.slice(2);
const gone = (pid) => {
  try { if (/\\) Z /.test(fs.readFileSync('/proc/' + pid + '/stat', 'utf8'))) return true; } catch { return true; }
  try { process.kill(pid, 0); return false; } catch { return true; }
};
const others = {};
for (const f of fs.readdirSync(dir)) if (f.endsWith('.start') && f !== label + '.start') {
  const o = JSON.parse(fs.readFileSync(dir + '/' + f, 'utf8'));
  others[o.label] = { pid: o.pid, gone: gone(o.pid) };
}
const e = process.env;
fs.writeFileSync(dir + '/' + label + '.start', JSON.stringify({ label, at: Date.now(), pid: process.pid, token: e.LEADERD_TOKEN, key: e.LEADERD_KEY, lease: e.LEADERD_LEASE, name: e.LEADERD_NAME, endpoints: e.LEADERD_ENDPOINTS, others }));
setInterval(() => fs.appendFileSync(dir + '/' + label + '.alive', Date.now() + '\\n'), 10);
const note = (what) => fs.writeFileSync(dir + '/' + label + '.' + what, String(Date.now()));
if (mode === 'ignore-term') process.on('SIGTERM', () => note('term'));
else process.on('SIGTERM', () => { note('term'); process.exit(42); });
process.on('SIGINT', () => { note('int'); process.exit(43); });
if (mode === 'exit-7') setTimeout(() => process.exit(7), 200);
`;

interface Start {
  label: string;
  at: number;
  pid: number;
  token: string;
  key: string;
  lease: string;
  name: string;
  endpoints: string;
  others: Record<string, { pid: number; gone: boolean }>;
}

let cluster: LocalCluster;
let dir: string;
let cmd: string;
const procs: ChildProcess[] = [];

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3 });
  cluster.startAll();
  await cluster.waitForLeader();
  dir = mkdtempSync(join(tmpdir(), 'leaderd-e2e-holder-'));
  cmd = join(dir, 'cmd.cjs');
  writeFileSync(cmd, CMD_SOURCE);
});
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(cluster.logTails());
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
      await exitOf(p, 5000).catch(() => undefined);
    }
  }
});
afterAll(async () => {
  await cluster?.stop();
  // Any CMD still running (a failed test) is found by the pid it wrote.
  for (const f of existsSync(dir) ? ['A', 'B', 'E'] : []) {
    const p = join(dir, `${f}.start`);
    if (existsSync(p)) {
      try {
        process.kill((JSON.parse(readFileSync(p, 'utf8')) as Start).pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function holder(
  kind: 'lock' | 'elect',
  name: string,
  args: string[],
  label: string,
  mode: string,
): { proc: ChildProcess; stderr: () => string } {
  const proc = spawn(
    process.execPath,
    [CLI, kind, name, ...args, '--endpoints', cluster.endpoints().join(','), '--', process.execPath, cmd, label, dir, mode],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LEADERD_ENDPOINTS: '' },
    },
  );
  procs.push(proc);
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  proc.stdout!.resume();
  return { proc, stderr: () => err };
}

const read = (f: string) => readFileSync(join(dir, f), 'utf8');
const started = (label: string) =>
  waitFor(
    `${label} to start`,
    () => (existsSync(join(dir, `${label}.start`)) ? (JSON.parse(read(`${label}.start`)) as Start) : undefined),
    30_000,
    10,
  );

describe('leaderd lock NAME -- CMD', () => {
  it('a frozen holder (SIGSTOP) has its command stopped before the next holder is granted; exit status is the command’s; signals are forwarded', async () => {
    const ttlMs = 3000;
    const a = holder('lock', 'job', ['--ttl-ms', String(ttlMs)], 'A', 'ignore-term');
    const aExit = exitOf(a.proc, 60_000);
    const aStart = await started('A');
    expect(aStart.name).toBe('job');
    expect(Number(aStart.token)).toBeGreaterThan(0);
    expect(aStart.key).toMatch(/^_leaderd\/lock\/job\//);
    expect(Number(aStart.lease)).toBeGreaterThan(0);
    expect(aStart.endpoints).toBe(cluster.endpoints().join(','));

    const b = holder('lock', 'job', ['--ttl-ms', String(ttlMs)], 'B', 'term-42');
    const bExit = exitOf(b.proc, 60_000);
    await waitFor(
      'B to queue behind A',
      async () => {
        const r = await runCli(['lock', 'job', '--json', '--endpoints', cluster.endpoints().join(',')]);
        const j = JSON.parse(r.stdout) as { holder: { token: number } | null; waiting: unknown[] };
        return j.holder?.token === Number(aStart.token) && j.waiting.length === 1 ? true : undefined;
      },
      20_000,
      200,
    );
    expect(existsSync(join(dir, 'B.start'))).toBe(false);

    const frozenAt = Date.now();
    a.proc.kill('SIGSTOP');
    const bStart = await started('B');
    // Appended every 10 ms: the last complete line is the last moment A's command ran.
    const aLastAlive = Number(read('A.alive').split('\n').slice(-2)[0]);
    const aTerm = Number(read('A.term'));
    // When B's command started, A's command process was already gone (checked by B's command itself).
    expect(bStart.others.A).toEqual({ pid: aStart.pid, gone: true });
    expect(aLastAlive).toBeLessThan(bStart.at);
    expect(Number(bStart.token)).toBeGreaterThan(Number(aStart.token));
    // A's command ignored SIGTERM, so SIGKILL stopped it; both came while A's leaderd was frozen.
    expect(aTerm).toBeGreaterThan(frozenAt);
    expect(aTerm).toBeLessThanOrEqual(aLastAlive + 50);
    console.log(
      `[e2e] lock -- CMD, ttl ${ttlMs} ms: holder frozen at 0; A's command got SIGTERM at +${aTerm - frozenAt} ms, ` +
        `last alive at +${aLastAlive - frozenAt} ms; B's command started at +${bStart.at - frozenAt} ms: ` +
        `margin ${bStart.at - aLastAlive} ms`,
    );

    // A resumes: its command is gone (SIGKILL), so leaderd lock exits 128+9 and says why.
    a.proc.kill('SIGCONT');
    expect(await aExit).toEqual({ code: 137, signal: null });

    // SIGINT to B's leaderd reaches B's command (exit 43), and the lock is released at once.
    b.proc.kill('SIGINT');
    expect(await bExit).toEqual({ code: 43, signal: null });
    expect(existsSync(join(dir, 'B.int'))).toBe(true);
    const after = await runCli(['lock', 'job', '--endpoints', cluster.endpoints().join(',')]);
    expect(after.stdout).toBe('nobody holds lock job\n');
    expect(lines(b.stderr())).toEqual([]);
  });
});

describe('leaderd elect NAME -- CMD', () => {
  it('runs the command as leader with its value shown to observers, exits with its status and resigns', async () => {
    const e = holder('elect', 'primary', ['--value', 'host-e'], 'E', 'exit-7');
    const eExit = exitOf(e.proc, 30_000);
    const eStart = await started('E');
    expect(eStart.key).toMatch(/^_leaderd\/election\/primary\//);
    const seen = await runCli(['election', 'primary', '--json', '--endpoints', cluster.endpoints().join(',')]);
    const j = JSON.parse(seen.stdout) as { holder: { value: string; token: number } | null };
    // The command exits after 200 ms; if the CLI answered after that, nobody holds it any more.
    if (j.holder) expect(j.holder).toMatchObject({ value: 'host-e', token: Number(eStart.token) });
    expect(await eExit).toEqual({ code: 7, signal: null });
    const after = await runCli(['election', 'primary', '--endpoints', cluster.endpoints().join(',')]);
    expect(after.stdout).toBe('nobody holds election primary\n');
    const noCmd = await runCli(['elect', 'primary', '--endpoints', cluster.endpoints().join(',')]);
    expect(noCmd.code).toBe(2);
  });
});

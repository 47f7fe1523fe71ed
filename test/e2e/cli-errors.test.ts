// The CLI's failures as an operator meets them, without a cluster: each is short, names
// what failed and what to do, and exits with the documented code.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, exitOf, freeBasePort, freePort, lines, runCli, sleep } from './cluster.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** Hold 127.0.0.1:`port` with a plain TCP listener until the test ends. */
async function occupy(port: number): Promise<Server> {
  const s = createServer();
  await new Promise<void>((res, rej) => {
    s.once('error', rej);
    s.listen(port, '127.0.0.1', () => res());
  });
  cleanups.push(() => new Promise<void>((res) => s.close(() => res())));
  return s;
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'leaderd-e2e-cli-errors-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

describe('leaderd usage', () => {
  it('bare leaderd prints the help on stderr and exits 2; --help prints it on stdout and exits 0', async () => {
    const bare = await runCli([]);
    expect(bare.code).toBe(2);
    expect(bare.stdout).toBe('');
    expect(bare.stderr).toMatch(/^Usage: leaderd /);
    expect(bare.stderr).toContain('Exit codes:');
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: leaderd /);
    expect(help.stderr).toBe('');
  });

  it('a mistyped command is one line with a suggestion, exit 2', async () => {
    const r = await runCli(['stauts']);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(["leaderd: unknown command 'stauts' (Did you mean status?)"]);
  });

  it('lock NAME CMD with CMD options but no -- says where the command goes, exit 2', async () => {
    const r = await runCli(['lock', 'job', 'echo', '-n', 'hi']);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(["leaderd: unknown option '-n' (the command to run goes after --: leaderd lock NAME -- CMD ARGS...)"]);
  });

  it('a malformed LEADERD_ENDPOINTS is named in one line, exit 2; --endpoints wins over it', async () => {
    const bad = await runCli(['leader'], { env: { LEADERD_ENDPOINTS: 'localhost' } });
    expect(bad.code).toBe(2);
    expect(lines(bad.stderr)).toEqual(["leaderd: LEADERD_ENDPOINTS entry must be host:port, got 'localhost'"]);
    const dead = `127.0.0.1:${await freePort()}`;
    const flagWins = await runCli(['leader', '--endpoints', dead, '--timeout-ms', '300'], { env: { LEADERD_ENDPOINTS: 'localhost' } });
    expect(flagWins.code, flagWins.stderr).toBe(3);
    expect(flagWins.stderr).toContain(`leaderd: ${dead}: connection refused`);
  });
});

describe('busy ports are named by their flag', () => {
  it('start: --listen-client and --listen-peer in use are one line each, exit 1, and nothing else on stderr', async () => {
    const busy = await freePort();
    await occupy(busy);
    const free = await freePort();
    const dir = tempDir();
    const client = await runCli([
      'start',
      '--id',
      'n1',
      '--data-dir',
      join(dir, 'a'),
      '--listen-client',
      `127.0.0.1:${busy}`,
      '--listen-peer',
      `127.0.0.1:${free}`,
      '--peers',
      `n1=127.0.0.1:${free}`,
      '--log-level',
      'silent',
    ]);
    expect(client.code).toBe(1);
    expect(lines(client.stderr)).toEqual([
      `leaderd: --listen-client 127.0.0.1:${busy} is already in use (another leaderd node or program listens there): stop it or choose another port`,
    ]);
    const peer = await runCli([
      'start',
      '--id',
      'n1',
      '--data-dir',
      join(dir, 'b'),
      '--listen-client',
      `127.0.0.1:${free}`,
      '--listen-peer',
      `127.0.0.1:${busy}`,
      '--peers',
      `n1=127.0.0.1:${busy}`,
      '--log-level',
      'silent',
    ]);
    expect(peer.code).toBe(1);
    expect(lines(peer.stderr)).toEqual([
      `leaderd: --listen-peer 127.0.0.1:${busy} is already in use (another leaderd node or program listens there): stop it or choose another port`,
    ]);
  });

  it('local: a busy port under --base-port is refused before any node starts, exit 1', async () => {
    const base = await freeBasePort(3);
    await occupy(base + 102);
    const dir = tempDir();
    const r = await runCli(['local', '--base-port', String(base), '--data-dir', dir]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `leaderd: --base-port ${base}: 127.0.0.1:${base + 102} is already in use (another leaderd local or npm start?); stop it or choose another --base-port`,
    ]);
    const bad = await runCli(['local', '--base-port', '65500', '--data-dir', dir]);
    expect(bad.code).toBe(2);
    expect(lines(bad.stderr)).toEqual(["leaderd: --base-port must be a whole number from 1 to 65332, got '65500'"]);
  });
});

describe('leaderd watch against a cluster that is down', () => {
  it('says so once per failed attempt, for 15 s, with no MaxListenersExceededWarning, and exits 0 on SIGINT', async () => {
    const dead = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const proc = spawn(process.execPath, [CLI, 'watch', '--endpoints', dead.join(',')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LEADERD_ENDPOINTS: '' },
    });
    const exit = exitOf(proc, 40_000);
    cleanups.push(async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exit.catch(() => undefined);
      }
    });
    let stderr = '';
    let stdout = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const watchedMs = 15_000;
    await sleep(watchedMs);
    proc.kill('SIGINT');
    expect(await exit).toEqual({ code: 0, signal: null });
    const ls = lines(stderr);
    expect(stderr).not.toContain('MaxListenersExceededWarning');
    expect(stdout).toBe('');
    // Backoff from 50 ms doubling to a 1 s cap: a handful of fast lines, then about one a second.
    expect(ls.length, stderr).toBeGreaterThanOrEqual(5);
    expect(ls.length, stderr).toBeLessThanOrEqual(watchedMs / 500 + 10);
    for (const l of ls) {
      expect(l).toMatch(/^leaderd: watch: 127\.0\.0\.1:\d+: connection refused: .*; retrying in \d+\.\d s$/);
      expect(dead.some((d) => l.includes(d))).toBe(true);
    }
    console.log(`[e2e] watch against a dead cluster: ${ls.length} lines in ${watchedMs} ms, e.g. ${ls[ls.length - 1]}`);
  }, 40_000);
});

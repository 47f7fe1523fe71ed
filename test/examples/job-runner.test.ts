// The job-runner example, run as three real processes: exactly one runs the job at a
// time, and another takes over within a bound when it is killed or frozen.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, sleep, waitFor } from '../e2e/cluster.js';

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPT = resolve(here, '../../dist/examples/job-runner.js');

interface Line {
  token: number;
  id: string;
  at: number;
}

let procs = new Map<string, ChildProcess>();
let dir = '';
afterEach(async () => {
  await Promise.all(
    [...procs.values()].map(
      (p) =>
        new Promise<void>((r) => {
          if (p.exitCode !== null || p.signalCode !== null) return r();
          p.once('exit', () => r());
          p.kill('SIGCONT');
          p.kill('SIGKILL');
        }),
    ),
  );
  procs = new Map();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function lines(out: string): Line[] {
  if (!existsSync(out)) return [];
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [token, id, at] = l.split(' ');
      return { token: Number(token), id: id!, at: Number(at) };
    });
}

/** Exactly one runner at a time: once a token appears, no older token ever writes again, and one token has one writer. */
function checkExclusive(ls: Line[]): void {
  let highest = 0;
  const owner = new Map<number, string>();
  for (const l of ls) {
    expect(l.token, `a stale primary (token ${l.token}, ${l.id}) wrote after token ${highest}`).toBeGreaterThanOrEqual(highest);
    highest = l.token;
    if (!owner.has(l.token)) owner.set(l.token, l.id);
    expect(owner.get(l.token), `token ${l.token} written by two processes`).toBe(l.id);
  }
}

describe('example: job runner (embedded nodes, runWhileLeader)', () => {
  it('exactly one process runs the job; another takes over when it is killed, and when it is frozen', async () => {
    dir = mkdtempSync(join(tmpdir(), 'leaderd-job-'));
    const out = join(dir, 'job.log');
    const ids = ['a', 'b', 'c'];
    const ports = new Map<string, number>();
    for (const id of ids) ports.set(id, await freePort());
    const peers = ids.map((id) => `${id}=127.0.0.1:${ports.get(id)}`).join(',');
    const start = (id: string) => {
      const p = spawn(
        process.execPath,
        [SCRIPT, '--id', id, '--data-dir', join(dir, id), '--listen-peer', `127.0.0.1:${ports.get(id)}`, '--peers', peers, '--out', out],
        { stdio: 'ignore' },
      );
      procs.set(id, p);
    };
    ids.forEach(start);
    const firstRunner = await waitFor('the job to run', () => lines(out)[0]?.id, 20_000);
    await sleep(500);
    checkExclusive(lines(out));
    expect(new Set(lines(out).map((l) => l.id))).toEqual(new Set([firstRunner]));

    // Killed: another process takes over.
    const killedAt = Date.now();
    procs.get(firstRunner)!.kill('SIGKILL');
    const second = await waitFor('another runner', () => lines(out).find((l) => l.at > killedAt && l.id !== firstRunner), 10_000);
    const takeoverMs = second.at - killedAt;
    console.log(`job taken over ${takeoverMs} ms after SIGKILL of the runner`);
    expect(takeoverMs).toBeLessThan(5000);

    // Frozen: another takes over; when the frozen one wakes it must not run the job.
    start(firstRunner);
    await sleep(300);
    const frozen = second.id;
    const stoppedAt = Date.now();
    procs.get(frozen)!.kill('SIGSTOP');
    const third = await waitFor('a runner after the freeze', () => lines(out).find((l) => l.at > stoppedAt && l.id !== frozen), 10_000);
    console.log(`job taken over ${third.at - stoppedAt} ms after SIGSTOP of the runner`);
    await sleep(1000);
    procs.get(frozen)!.kill('SIGCONT');
    await sleep(1500);
    const all = lines(out);
    checkExclusive(all);
    expect(all.filter((l) => l.id === frozen && l.at > third.at)).toEqual([]);
  });

  it('the exclusivity check catches a stale primary writing after a newer one', () => {
    expect(() =>
      checkExclusive([
        { token: 2, id: 'a', at: 1 },
        { token: 3, id: 'b', at: 2 },
        { token: 2, id: 'a', at: 3 },
      ]),
    ).toThrow(/stale primary/);
    expect(() =>
      checkExclusive([
        { token: 2, id: 'a', at: 1 },
        { token: 2, id: 'b', at: 2 },
      ]),
    ).toThrow(/two processes/);
  });
});

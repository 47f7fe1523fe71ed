// The fenced-resource example against a real 3-node leaderd cluster: two primaries
// campaign through LeaderdClient; the holder is frozen with SIGSTOP; the other takes over
// with a higher token; the frozen one wakes with its leadership signal already fired
// (its proven validity ended before the other was granted), and the resource never
// accepts an older token after a newer one.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster, freePort, sleep, waitFor } from '../e2e/cluster.js';

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPT = resolve(here, '../../dist/examples/fenced-resource.js');

let cluster: LocalCluster | null = null;
const procs: ChildProcess[] = [];
let dir = '';
afterEach(async () => {
  for (const p of procs) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    }
  }
  procs.length = 0;
  await cluster?.stop();
  cluster = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function run(args: string[]): { proc: ChildProcess; out: () => string[] } {
  const proc = spawn(process.execPath, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(proc);
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => (buf += d.toString()));
  return { proc, out: () => buf.split('\n').filter((l) => l !== '') };
}

/** Accepted writes must never go back to an older token. */
export function checkAcceptedTokens(tokens: number[]): void {
  for (let i = 1; i < tokens.length; i++)
    expect(tokens[i], `token ${tokens[i]} accepted after ${tokens[i - 1]}`).toBeGreaterThanOrEqual(tokens[i - 1]!);
}

describe('example: fenced resource (LeaderdClient.campaign + fencing interceptor)', () => {
  it('a frozen primary loses its leadership before another is granted, and the resource refuses its stale token', async () => {
    dir = mkdtempSync(join(tmpdir(), 'leaderd-fence-'));
    cluster = await LocalCluster.create({ nodes: 3 });
    cluster.startAll();
    await cluster.waitForLeader();
    const endpoints = cluster.endpoints().join(',');
    const resourceAddr = `127.0.0.1:${await freePort()}`;
    const log = join(dir, 'accepted.log');
    run(['resource', '--listen', resourceAddr, '--log', log]);
    const a = run([
      'primary',
      '--id',
      'a',
      '--endpoints',
      endpoints,
      '--resource',
      resourceAddr,
      '--ttl-ms',
      '1000',
      '--stale-write-after-loss',
    ]);
    await waitFor('a granted', () => a.out().find((l) => l.startsWith('GRANTED')), 20_000);
    const b = run(['primary', '--id', 'b', '--endpoints', endpoints, '--resource', resourceAddr, '--ttl-ms', '1000']);
    await waitFor('a writing', () => a.out().find((l) => l.startsWith('WROTE')), 10_000);
    await sleep(500);

    const stoppedAt = Date.now();
    a.proc.kill('SIGSTOP');
    const bGrant = await waitFor('b granted after a froze', () => b.out().find((l) => l.startsWith('GRANTED')), 15_000);
    const [, bToken, bGrantedAt] = bGrant.split(' ');
    console.log(`b granted ${Number(bGrantedAt) - stoppedAt} ms after a was frozen (ttl 1000 ms)`);
    await waitFor('b writing', () => b.out().find((l) => l.startsWith('WROTE')), 10_000);
    a.proc.kill('SIGCONT');
    const lost = await waitFor('a notices it lost leadership', () => a.out().find((l) => l.startsWith('LOST')), 10_000);
    await sleep(1000);

    const aToken = Number(
      a
        .out()
        .find((l) => l.startsWith('GRANTED'))!
        .split(' ')[1],
    );
    expect(Number(bToken)).toBeGreaterThan(aToken);
    // a's leadership was provable only until validUntil, which ended before b's grant.
    const validUntil = Number(/validUntil=(\d+)/.exec(lost)![1]);
    expect(validUntil).toBeLessThan(Number(bGrantedAt));
    // a's deliberate write with its old token, after waking, was refused by the resource.
    const stale = await waitFor('a tries its stale token', () => a.out().find((l) => l.startsWith('STALE-')), 10_000);
    expect(stale).toMatch(new RegExp(`^STALE-REFUSED ${aToken} .*stale`));
    // After waking, a wrote nothing that the resource accepted.
    const accepted = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split(' '));
    const afterB = accepted.slice(accepted.findIndex((l) => l[0] === bToken));
    expect(afterB.filter((l) => l[1] === 'a')).toEqual([]);
    checkAcceptedTokens(accepted.map((l) => Number(l[0])));
    expect(existsSync(log)).toBe(true);
  }, 90_000);

  it('the token check catches a resource that accepted an older token after a newer one', () => {
    expect(() => checkAcceptedTokens([5, 5, 9, 5])).toThrow(/token 5 accepted after 9/);
  });
});

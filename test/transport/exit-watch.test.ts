// The proof behind kill -9 failover (exit-watch.ts), against real processes: only a
// process's exit (a clean close, then a refused redial) is reported; a paused process,
// a graceful shutdown (GOAWAY), a reset with the port closed (a firewall's REJECT both
// ways), and a clean close while the port still listens are not.
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { freePort, sleep } from '../../bench/procs.js';
import { ExitWatch, redial, splitHostPort } from '../../src/transport/exit-watch.js';
import { resolveStartConfig } from '../../src/server/config.js';

const PEER = join(import.meta.dirname, '../../dist/test/transport/exit-watch-peer.js');
const children: ChildProcess[] = [];
const watches: ExitWatch[] = [];

afterEach(() => {
  for (const w of watches.splice(0)) w.close();
  for (const c of children.splice(0)) {
    c.kill('SIGCONT');
    c.kill('SIGKILL');
  }
});

/** A peer process with an established watch on it; `gone` collects ms from `mark()` to each proof. */
async function watched(kind: 'grpc' | 'h2') {
  const port = await freePort();
  const child = fork(PEER, [kind, String(port)], { stdio: 'ignore' });
  children.push(child);
  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`peer exited with ${code}`)));
  });
  await ready;
  let t0 = performance.now();
  const gone: number[] = [];
  watches.push(
    new ExitWatch({
      peerId: 'peer',
      address: `127.0.0.1:${port}`,
      logger: pino({ level: 'silent' }),
      onGone: () => gone.push(performance.now() - t0),
    }),
  );
  // The watch's HTTP/2 session is up within a few ms on loopback; give a loaded machine room.
  await sleep(400);
  const tell = (m: string) =>
    new Promise<void>((resolve) => {
      child.once('message', () => resolve());
      child.send(m);
    });
  return { child, gone, tell, mark: () => (t0 = performance.now()) };
}

describe('exit watch', () => {
  it('a killed peer (kill -9) is proven gone within tens of ms; paused, shut down, reset or still-listening peers are not', async () => {
    const [killed, paused, shutdown, reset, fin] = await Promise.all([
      watched('grpc'),
      watched('grpc'),
      watched('grpc'),
      watched('h2'),
      watched('h2'),
    ]);
    killed.mark();
    killed.child.kill('SIGKILL');
    paused.child.kill('SIGSTOP');
    await Promise.all([shutdown.tell('close'), reset.tell('reset'), fin.tell('fin')]);
    // Longer than any election timeout we would wait instead.
    await sleep(1200);
    expect(killed.gone.length).toBe(1);
    // Measured on loopback: 6-30 ms (the redial may race the dying process's listener).
    expect(killed.gone[0]).toBeLessThan(300);
    expect(paused.gone).toEqual([]);
    expect(shutdown.gone).toEqual([]);
    expect(reset.gone).toEqual([]);
    expect(fin.gone).toEqual([]);
  });

  it('watches again after the peer restarts at the same address, and proves its next exit too', async () => {
    const a = await watched('grpc');
    const port = splitHostPort(watches[0]!.address)!.port;
    a.child.kill('SIGKILL');
    await sleep(200);
    expect(a.gone.length).toBe(1);
    const again = fork(PEER, ['grpc', String(port)], { stdio: 'ignore' });
    children.push(again);
    await new Promise<void>((resolve) => again.once('message', () => resolve()));
    await sleep(1500); // the watch redials with backoff (max 1 s)
    again.kill('SIGKILL');
    await sleep(300);
    expect(a.gone.length).toBe(2);
  });

  it('redial tells refused from accepted', async () => {
    const port = await freePort();
    expect(await redial('127.0.0.1', port, 1000)).toBe('refused');
    expect(splitHostPort('[::1]:7101')).toEqual({ host: '::1', port: 7101 });
    expect(splitHostPort('nohost')).toBeNull();
  });
});

describe('--fast-failover', () => {
  it('is on by default, takes true or false, and refuses anything else with one line', () => {
    expect(resolveStartConfig({ id: 'n1' }).fastFailover).toBe(true);
    expect(resolveStartConfig({ id: 'n1', 'fast-failover': 'false' }).fastFailover).toBe(false);
    expect(resolveStartConfig({ id: 'n1' }, { 'fast-failover': false }).fastFailover).toBe(false);
    expect(() => resolveStartConfig({ id: 'n1', 'fast-failover': 'maybe' })).toThrow(/^--fast-failover must be true or false/);
  });
});

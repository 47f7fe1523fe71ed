// A real network partition: three leaderd nodes, each in its own network namespace on a
// test-only subnet, joined by a bridge. The leader's link is cut: packets are lost, its TCP
// connections hang. The majority elects a new leader; the cut-off leader must never claim
// a valid lease (or the leader role) once the new leader exists; after the link comes
// back, it must notice the new leader quickly (gRPC keepalive, not TCP retransmission
// backoff) without disrupting it (PreVote).
import { type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/client/cluster-client.js';
import { CLI, sleep, waitFor } from '../e2e/cluster.js';
import { NetLab } from '../../src/drill/netlab.js';

const here = dirname(fileURLToPath(import.meta.url));
const PROBER = resolve(here, '../../dist/test/chaos/prober.js');
const IDS = ['n1', 'n2', 'n3'];

const lab = new NetLab();
const procs: ChildProcess[] = [];
let dir = '';
let client: ClusterClient | null = null;

afterAll(async () => {
  client?.close();
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((r) => {
          if (p.exitCode !== null || p.signalCode !== null) return r();
          p.once('exit', () => r());
          p.kill('SIGKILL');
        }),
    ),
  );
  lab.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Probe {
  sent: number;
  at: number;
  role: string;
  term: number;
  leaseValid: boolean;
  leaderId: string;
}

describe('a real network partition (network namespaces)', () => {
  it('the cut-off leader stops claiming leadership before the majority elects another, and rejoins quickly without disrupting it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'leaderd-chaos-'));
    lab.create();
    IDS.forEach((id, i) => lab.addHost(id, i + 1));
    const peers = IDS.map((id) => `${id}=${lab.address(id)}:7100`).join(',');
    for (const id of IDS) {
      const fd = openSync(join(dir, `${id}.log`), 'a');
      procs.push(
        lab.spawnIn(
          id,
          process.execPath,
          [
            CLI,
            'start',
            '--id',
            id,
            '--data-dir',
            join(dir, id),
            '--listen-peer',
            `${lab.address(id)}:7100`,
            '--listen-client',
            `${lab.address(id)}:7000`,
            '--peers',
            peers,
            '--cluster-id',
            'chaos',
            '--log-level',
            'debug',
            // Plaintext off loopback, allowed on this private test network of namespaces.
            '--insecure',
          ],
          fd,
        ),
      );
      closeSync(fd);
    }
    const endpoint = (id: string) => `${lab.address(id)}:7000`;
    client = new ClusterClient(IDS.map(endpoint), { timeoutMs: 500 });
    const c = client;
    const agreed = (among: string[], not?: string) =>
      waitFor(
        `a leader agreed by ${among.join(',')}`,
        async () => {
          const views = await Promise.all(among.map((id) => c.getLeader(endpoint(id))));
          const l = views[0]!;
          if (l.leaderId === '' || l.leaderId === not || !views.every((v) => v.leaderId === l.leaderId && v.term === l.term))
            return undefined;
          const s = await c.getStatus(endpoint(l.leaderId));
          return s.role === 'leader' && s.leaseValid ? l : undefined;
        },
        20_000,
      );
    const first = await agreed(IDS);
    const old = first.leaderId;
    const rest = IDS.filter((id) => id !== old);

    // Watch the old leader from inside its own namespace: the test cannot reach it while it is cut off.
    const prober = lab.spawnIn(old, process.execPath, [PROBER, endpoint(old)], 'pipe');
    procs.push(prober);
    let probeOut = '';
    prober.stdout!.on('data', (d: Buffer) => (probeOut += d.toString()));
    await waitFor('the prober answering', () => (probeOut.includes('"role":"leader"') ? true : undefined), 10_000);

    const cutAt = Date.now();
    lab.isolate(old);
    const next = await agreed(rest, old);
    const electedAt = Date.now();
    await sleep(1500);
    const healedAt = Date.now();
    lab.heal(old);
    const rejoined = await waitFor(
      'the old leader following the new one',
      async () => {
        const s = await c.getStatus(endpoint(old));
        return s.leaderId === next.leaderId && s.role === 'follower' ? Date.now() : undefined;
      },
      20_000,
    );
    await sleep(300);
    prober.kill('SIGTERM');
    await new Promise((r) => prober.once('exit', r));

    const probes: Probe[] = probeOut
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Probe);
    // Answers the old leader gave to requests sent after the new leader existed.
    const afterElection = probes.filter((p) => p.sent >= electedAt);
    const claims = probes.filter((p) => p.leaseValid).map((p) => p.at);
    // The old leader was probed while it held its lease: otherwise "its last claim came
    // before the election" below would hold of an empty list.
    expect(claims.length).toBeGreaterThan(0);
    const lastLeaseClaim = Math.max(...claims);
    console.log(
      `partition: ${old} cut off; ${next.leaderId} elected (term ${next.term}) ${electedAt - cutAt} ms later; ` +
        `${old} last claimed its lease ${lastLeaseClaim - cutAt} ms after the cut; after healing, ${old} followed ${next.leaderId} within ${rejoined - healedAt} ms; ` +
        `${probes.length} probes, ${afterElection.length} after the election`,
    );
    expect(afterElection.length).toBeGreaterThan(10);
    expect(afterElection.filter((p) => p.leaseValid)).toEqual([]);
    expect(afterElection.filter((p) => p.role === 'leader')).toEqual([]);
    expect(lastLeaseClaim).toBeLessThan(electedAt);
    // A healed partition is noticed within about an election timeout (300 ms), not after
    // TCP's retransmission backoff; generous bound for a loaded machine.
    expect(rejoined - healedAt).toBeLessThan(2000);
    // PreVote: rejoining did not depose the new leader or bump its term.
    const after = await c.getLeader(endpoint(next.leaderId));
    expect(after.leaderId).toBe(next.leaderId);
    expect(after.term).toBe(next.term);
    // The logs say why the old leader stopped.
    expect(readFileSync(join(dir, `${old}.log`), 'utf8')).toMatch(/leader stepped down/);
  }, 120_000);
});

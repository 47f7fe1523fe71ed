// --listen-metrics on a real 3-node cluster: /healthz, /readyz and /metrics as a load
// balancer, Kubernetes and Prometheus see them, through a transfer, a kill -9 of the
// leader, and the loss of the quorum.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, LocalCluster, waitFor } from './cluster.js';
import { api, call } from './api.js';

let cluster: LocalCluster;
const metricsPort = new Map<string, number>();

async function get(id: string, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${metricsPort.get(id)}${path}`, { method, signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: await res.text() };
}

/** The value of one sample line `name{labels}` (labels in exposition order, node label last), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries((m[2] ?? '').split(',').map((kv) => kv.split('=').map((x) => x.replace(/^"|"$/g, ''))));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const running = () => cluster.running();

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3, clusterId: 'e2e-metrics' });
  for (const s of cluster.specs) {
    metricsPort.set(s.id, await freePort());
    cluster.start(s.id, { '--listen-metrics': `127.0.0.1:${metricsPort.get(s.id)}`, '--log-level': 'info' });
  }
  await cluster.waitForLeader();
});

afterAll(async () => {
  await cluster?.stop();
});

describe('metrics and health endpoints of a real cluster', () => {
  it('every node is healthy and ready with a leader; bad paths and methods are refused', async () => {
    for (const id of running()) {
      expect((await get(id, '/healthz')).status).toBe(200);
      const ready = await waitFor(`${id} ready`, async () => {
        const r = await get(id, '/readyz');
        return r.status === 200 ? r : undefined;
      });
      expect(JSON.parse(ready.body)).toMatchObject({ ready: true, node: id });
    }
    const id = running()[0]!;
    expect((await get(id, '/nope')).status).toBe(404);
    expect((await get(id, '/metrics', 'POST')).status).toBe(405);
    // A healthy listener after garbage: still answers.
    expect((await get(id, '/metrics?x=%zz')).status).toBe(200);
  });

  it("the leader's /metrics show its role, term, the startup election, and the stages of the writes it served", async () => {
    // A loaded machine may change leaders while the writes run: then the next leader
    // serves them (bounded: 5 attempts), and its metrics are the ones checked.
    let leader = '';
    let m = '';
    for (let attempt = 1; attempt <= 5; attempt++) {
      leader = (await cluster.waitForLeader()).leaderId;
      const kv = api(cluster.endpoint(leader));
      try {
        const enc = (s: string) => Buffer.from(s);
        await Promise.all(Array.from({ length: 20 }, (_, i) => call((o, cb) => kv.kv.Put({ key: `m${i}`, value: enc('v') }, o, cb))));
      } catch (err) {
        if (attempt === 5) throw err;
        continue;
      } finally {
        kv.close();
      }
      m = (await get(leader, '/metrics')).body;
      if (sample(m, 'leaderd_role', { role: 'leader', node: leader }) === 1) break;
    }
    expect(sample(m, 'leaderd_role', { role: 'leader', node: leader })).toBe(1);
    expect(sample(m, 'leaderd_role', { role: 'follower' })).toBe(0);
    expect(sample(m, 'leaderd_term')).toBeGreaterThan(0);
    expect(sample(m, 'leaderd_has_leader')).toBe(1);
    expect(sample(m, 'leaderd_lease_valid')).toBe(1);
    expect(sample(m, 'leaderd_commit_index')).toBeGreaterThanOrEqual(20);
    expect(sample(m, 'leaderd_keys')).toBeGreaterThanOrEqual(20);
    expect(sample(m, 'leaderd_leader_changes_total', { cause: 'startup' })).toBe(1);
    for (const stage of ['queue', 'persist', 'replicate', 'commit', 'apply'])
      expect(sample(m, 'leaderd_write_stage_seconds_count', { stage }), stage).toBeGreaterThanOrEqual(20);
    expect(sample(m, 'leaderd_proposal_commit_seconds_count')).toBeGreaterThanOrEqual(20);
    expect(sample(m, 'leaderd_fsync_seconds_count')).toBeGreaterThan(0);
    const followers = running().filter((id) => id !== leader);
    for (const peer of followers) expect(sample(m, 'leaderd_peer_round_trip_seconds_count', { peer })).toBeGreaterThan(0);
    expect(sample(m, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    // Every metric the Grafana dashboard queries exists under that name.
    const dashboard = readFileSync(new URL('../../cluster/grafana-dashboard.json', import.meta.url), 'utf8');
    const used = new Set(dashboard.match(/\b(leaderd|process)_[a-z_]+/g));
    expect(used.size).toBeGreaterThan(10);
    for (const name of used) expect(m, `dashboard metric ${name}`).toMatch(new RegExp(`^${name}[{ ]`, 'm'));
    const f = (await get(followers[0]!, '/metrics')).body;
    expect(sample(f, 'leaderd_role', { role: 'follower' })).toBe(1);
    expect(sample(f, 'leaderd_heartbeat_lateness_seconds_count')).toBeGreaterThan(0);
  });

  it('a transfer is counted with cause "transfer" on the new leader', async () => {
    const before = (await cluster.waitForLeader()).leaderId;
    const target = running().find((id) => id !== before)!;
    await cluster.client(before).transferLeader(target);
    const after = await cluster.waitForLeader({ not: before });
    const m = (await get(after.leaderId, '/metrics')).body;
    expect(sample(m, 'leaderd_leader_changes_total', { cause: 'transfer' })).toBeGreaterThanOrEqual(1);
  });

  it('kill -9 of the leader: survivors count an "election-timeout" change and a leaderless period; after the next kill the survivor is not ready but healthy', async () => {
    const old = (await cluster.waitForLeader()).leaderId;
    const survivors = running().filter((id) => id !== old);
    const before = await Promise.all(
      survivors.map(async (id) => sample((await get(id, '/metrics')).body, 'leaderd_leaderless_period_seconds_count') ?? 0),
    );
    await cluster.kill(old, 'SIGKILL');
    const now = await cluster.waitForLeader({ among: survivors, not: old });
    for (const [i, id] of survivors.entries()) {
      const m = await waitFor(`${id} counted the change`, async () => {
        const body = (await get(id, '/metrics')).body;
        return (sample(body, 'leaderd_leaderless_period_seconds_count') ?? 0) > before[i]! ? body : undefined;
      });
      expect(sample(m, 'leaderd_leader_changes_total', { cause: 'election-timeout' }), id).toBeGreaterThanOrEqual(1);
      expect(sample(m, 'leaderd_leaderless_period_seconds_sum'), id).toBeGreaterThan(0);
    }
    await waitFor('survivors ready again', async () =>
      (await Promise.all(survivors.map((id) => get(id, '/readyz')))).every((r) => r.status === 200) ? true : undefined,
    );

    // Leave one node alone: it must stop claiming readiness, but stay alive.
    const last = survivors.find((id) => id !== now.leaderId)!;
    await cluster.kill(now.leaderId, 'SIGKILL');
    const t0 = Date.now();
    const notReady = await waitFor(
      `${last} not ready`,
      async () => {
        const r = await get(last, '/readyz');
        return r.status === 503 ? r : undefined;
      },
      10_000,
    );
    // Election timeout 300-600 ms by default; a loaded 2-core machine gets 10 s.
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(JSON.parse(notReady.body)).toMatchObject({ ready: false, reason: 'no leader known', node: last });
    expect((await get(last, '/healthz')).status).toBe(200);
    const m = (await get(last, '/metrics')).body;
    expect(sample(m, 'leaderd_has_leader')).toBe(0);
    expect(sample(m, 'leaderd_leaderless_seconds')).toBeGreaterThan(0);
  });
});

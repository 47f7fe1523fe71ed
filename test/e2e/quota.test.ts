// The storage quota on real processes: a cluster started with a small --quota-bytes is
// filled until writes are refused, stays within the quota on every node even when many
// writes race past the leader's admission check, and recovers when keys are deleted.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, LocalCluster, waitFor } from './cluster.js';
import { call, leaderAndFollower, outcomeOf, type Api } from './api.js';

const QUOTA = 256 * 1024;
const VALUE = Buffer.alloc(8 * 1024, 7);

let cluster: LocalCluster;
let leaderApi: Api;
let followerApi: Api;
let metricsPort: number;

const put = (a: Api, key: string, value: Buffer = VALUE) => call<{ revision: number }>((o, cb) => a.kv.Put({ key, value }, o, cb));

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3, extraArgs: ['--quota-bytes', String(QUOTA)] });
  metricsPort = await freePort();
  cluster.start('n1', { '--listen-metrics': `127.0.0.1:${metricsPort}` });
  cluster.start('n2');
  cluster.start('n3');
  ({ leaderApi, followerApi } = await leaderAndFollower(cluster));
});

afterAll(async () => {
  leaderApi?.close();
  followerApi?.close();
  await cluster?.stop();
});

/** Every node's store size once all have applied the same index. */
async function storeBytesEverywhere(): Promise<number[]> {
  return waitFor(
    'every node applied the same index',
    async () => {
      const all = await Promise.all(cluster.specs.map((s) => cluster.status(s.id)));
      const applied = new Set(all.map((s) => Number(s.appliedIndex)));
      return applied.size === 1 ? all.map((s) => Number(s.storeBytes)) : undefined;
    },
    10_000,
  );
}

describe('--quota-bytes on a real cluster', () => {
  it('fills to the quota, refuses growing writes with RESOURCE_EXHAUSTED naming the way out, and recovers by deleting', async () => {
    let refused: grpc.ServiceError | null = null;
    let written = 0;
    for (let i = 0; i < 100 && refused === null; i++) {
      try {
        await put(i % 2 === 0 ? leaderApi : followerApi, `fill/${String(i).padStart(3, '0')}`);
        written++;
      } catch (err) {
        refused = err as grpc.ServiceError;
      }
    }
    expect(refused, 'a write past the quota is refused').not.toBeNull();
    expect(written).toBeGreaterThan(20);
    expect(refused!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused!.details).toMatch(/quota.*--quota-bytes.*delete keys/);
    expect(refused!.metadata.get('leaderd-error')[0]?.toString()).toBe('quota-exceeded');
    expect(outcomeOf(refused)).toBe('not-applied');

    // Every replica counts the same bytes, within the quota; a follower's refusal is the same.
    const sizes = await storeBytesEverywhere();
    expect(new Set(sizes).size).toBe(1);
    expect(sizes[0]).toBeLessThanOrEqual(QUOTA);
    expect(sizes[0]).toBeGreaterThan(QUOTA - 2 * VALUE.length);
    const viaFollower = await put(followerApi, 'one-more').catch((e: grpc.ServiceError) => e);
    expect((viaFollower as grpc.ServiceError).code).toBe(grpc.status.RESOURCE_EXHAUSTED);

    // Reads keep working, and so does a write that shrinks the store.
    const got = await call<{ found: boolean; value: Buffer }>((o, cb) => followerApi.kv.Get({ key: 'fill/000' }, o, cb));
    expect(got.found).toBe(true);
    await put(leaderApi, 'fill/000', Buffer.from('small'));

    // The quota is visible to an operator: status and metrics.
    const st = await cluster.status('n1');
    expect(Number(st.quotaBytes)).toBe(QUOTA);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^leaderd_quota_bytes\\{node="n1"\\} ${QUOTA}$`, 'm'));
    const used = Number(/^leaderd_quota_used_bytes\{node="n1"\} (\d+)$/m.exec(metrics)?.[1]);
    expect(used).toBeGreaterThan(QUOTA / 2);

    // Recovery: delete half, and writes are accepted again.
    const del = await call<{ deleted: number }>((o, cb) => followerApi.kv.Delete({ key: 'fill/0', prefix: true }, o, cb));
    expect(Number(del.deleted)).toBeGreaterThan(5);
    await put(followerApi, 'after-recovery');
    const after = await storeBytesEverywhere();
    expect(after[0]).toBeLessThan(sizes[0]!);
  }, 120_000);

  it('writes racing past admission together never take any replica past the quota', async () => {
    for (const key of ['fill/', 'after-recovery']) await call((o, cb) => leaderApi.kv.Delete({ key, prefix: true }, o, cb));
    // Fill to about 100 KiB under the quota, then send 30 writes of 8 KiB at once: the
    // leader admits them against its applied state, the entries carry the quota, and
    // apply refuses the ones that no longer fit, identically on every node.
    for (let i = 0; i < 18; i++) await put(leaderApi, `race/base/${i}`);
    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => put(leaderApi, `race/burst/${i}`)));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const quotaRefusals = results.filter(
      (r) => r.status === 'rejected' && (r.reason as grpc.ServiceError).code === grpc.status.RESOURCE_EXHAUSTED,
    ).length;
    expect(ok + quotaRefusals).toBe(30);
    expect(quotaRefusals).toBeGreaterThan(0);
    const sizes = await storeBytesEverywhere();
    expect(new Set(sizes).size).toBe(1);
    expect(sizes[0]).toBeLessThanOrEqual(QUOTA);
  }, 120_000);
});

// A node that cannot reach a quorum answers UNAVAILABLE within the deadline instead of
// hanging, says whether a failed write may have taken effect, and still serves
// serializable reads from its own state.
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster } from './cluster.js';
import { api, call, outcomeOf } from './api.js';

let cluster: LocalCluster | null = null;
afterAll(async () => {
  await cluster?.stop();
});

describe('without a quorum', () => {
  it('writes and linearizable reads fail fast with UNAVAILABLE; serializable reads still answer', async () => {
    cluster = await LocalCluster.create({ nodes: 3 });
    cluster.startAll();
    const leader = await cluster.waitForLeader();
    const survivor = leader.leaderId;
    const a = api(cluster.endpoint(survivor));
    try {
      await call((o, cb) => a.kv.Put({ key: 'k', value: Buffer.from('before') }, o, cb));
      for (const s of cluster.specs) if (s.id !== survivor) await cluster.kill(s.id);

      const timed = async (f: (o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown) => {
        const t0 = performance.now();
        const err = await call(f, 5000).then(
          () => null,
          (e: grpc.ServiceError) => e,
        );
        return { err, ms: performance.now() - t0 };
      };
      const put = await timed((o, cb) => a.kv.Put({ key: 'k', value: Buffer.from('after') }, o, cb));
      expect(put.err?.code, put.err?.details).toBe(grpc.status.UNAVAILABLE);
      // The leader may have appended it before noticing it lost its quorum: it cannot know.
      expect(['unknown', 'not-applied']).toContain(outcomeOf(put.err));
      expect(put.ms).toBeLessThan(4000);
      const get = await timed((o, cb) => a.kv.Get({ key: 'k' }, o, cb));
      expect(get.err?.code, get.err?.details).toBe(grpc.status.UNAVAILABLE);
      expect(get.ms).toBeLessThan(4000);
      // Once the leader has stepped down, new writes are refused before entering the log.
      const again = await timed((o, cb) => a.kv.Put({ key: 'k', value: Buffer.from('again') }, o, cb));
      expect(again.err?.code).toBe(grpc.status.UNAVAILABLE);
      expect(outcomeOf(again.err)).toBe('not-applied');
      const stale = await call<{ found: boolean; value: Buffer }>((o, cb) => a.kv.Get({ key: 'k', serializable: true }, o, cb));
      expect(stale.value.toString()).toBe('before');
      console.log(
        `without quorum: Put failed in ${Math.round(put.ms)} ms (${outcomeOf(put.err)}), Get in ${Math.round(get.ms)} ms, next Put in ${Math.round(again.ms)} ms (${outcomeOf(again.err)})`,
      );
    } finally {
      a.close();
    }
  }, 60_000);
});

// Hostile input, property-based: random, malformed and truncated requests to every public
// RPC of a real node (LevelDB, gRPC on loopback), and random, truncated and out-of-order
// frames to its peer service. Properties: the node never crashes (it answers GetStatus and
// takes a write afterwards), every answer carries a status from the expected set (never
// UNKNOWN, never an INTERNAL other than gRPC's own "could not decode the request"), and a
// refused request changes nothing (revision, key, lease and session counts).
//
// CI runs a fixed seed and a small number of cases. By hand:
//   npm run fuzz                                   # random seed, 1000 cases each
//   FUZZ_SEED=123456 FUZZ_RUNS=5000 npm run fuzz   # replay or lengthen a run
// A failure prints the seed and the shrunk case to replay it with.
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPeerApi, loadPublicApi } from '../../src/transport/protos.js';
import { startInprocCluster, type InprocCluster, type InprocNode } from '../server/inproc-cluster.js';

const seedEnv = process.env['FUZZ_SEED'];
const SEED = seedEnv === undefined ? 20261130 : seedEnv === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(seedEnv);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 120);

interface Method {
  readonly service: string;
  readonly name: string;
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly serialize: (v: unknown) => Buffer;
}

function methodsOf(services: Record<string, { service: Record<string, unknown> }>): Method[] {
  const out: Method[] = [];
  for (const [service, ctor] of Object.entries(services)) {
    for (const [name, def] of Object.entries(ctor.service as Record<string, grpc.MethodDefinition<unknown, unknown>>)) {
      out.push({
        service,
        name,
        path: def.path,
        requestStream: def.requestStream,
        responseStream: def.responseStream,
        serialize: def.requestSerialize as (v: unknown) => Buffer,
      });
    }
  }
  return out;
}

const v1 = loadPublicApi().leaderd.v1;
const PUBLIC = methodsOf({ KV: v1.KV, Lease: v1.Lease, Election: v1.Election, Lock: v1.Lock, Cluster: v1.Cluster });

// Values that probe the checks: empty, reserved, control characters, oversized, and
// numbers out of range; the field names cover every request message of the public API.
const str = fc.oneof(
  fc.constantFrom('', 'k', 'a/', '_leaderd/', '_leaderd/lock/x/0000000000000001', '_', 'e', 'x'.repeat(5000), 'bad\u0000key', '\ufffd'),
  fc.string({ maxLength: 12 }),
);
const num = fc.oneof(fc.constantFrom(0, 1, 2, -1, 499, 500, 2 ** 31, Number.MAX_SAFE_INTEGER), fc.integer({ min: -5, max: 50 }));
const bytes = fc.oneof(fc.uint8Array({ maxLength: 16 }), fc.constant(new Uint8Array((1 << 20) + 1)));
const keyValue = fc.record({ key: str, value: bytes, lease: num }, { requiredKeys: [] });
const op = fc.oneof(
  fc.record({ put: keyValue }),
  fc.record({ delete: fc.record({ key: str, prefix: fc.boolean() }, { requiredKeys: [] }) }),
  fc.record({ get: fc.record({ key: str }, { requiredKeys: [] }) }),
  fc.constant({}),
);
const request = fc.record(
  {
    key: str,
    value: bytes,
    lease: num,
    prefix: fc.boolean(),
    limit: num,
    startAfter: str,
    serializable: fc.boolean(),
    startRevision: num,
    clientId: fc.oneof(fc.constant(''), str),
    seq: num,
    expectedValue: bytes,
    expectAbsent: fc.boolean(),
    expectedModRevision: num,
    compare: fc.array(
      fc.record(
        {
          key: str,
          target: fc.constantFrom('VERSION', 'VALUE', 'MOD_REVISION', 'CREATE_REVISION', 'LEASE'),
          result: fc.constantFrom('EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'),
          version: num,
          value: bytes,
        },
        { requiredKeys: [] },
      ),
      { maxLength: 3 },
    ),
    success: fc.array(op, { maxLength: 3 }),
    failure: fc.array(op, { maxLength: 3 }),
    ttlMs: num,
    id: num,
    keys: fc.boolean(),
    name: str,
    leader: fc.record({ name: str, key: str, rev: num, lease: num }, { requiredKeys: [] }),
    targetId: str,
  },
  { requiredKeys: [] },
);

/** A request's bytes: a serialized random request, that truncated, or random bytes. */
function payload(m: Method) {
  return fc.oneof(
    request.map((r) => safeSerialize(m, r)),
    fc.tuple(request, fc.nat()).map(([r, cut]) => {
      const b = safeSerialize(m, r);
      return b.subarray(0, b.length === 0 ? 0 : cut % b.length);
    }),
    fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
  );
}

function safeSerialize(m: Method, r: unknown): Buffer {
  try {
    return m.serialize(r);
  } catch {
    return Buffer.alloc(0);
  }
}

const ALLOWED = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.NOT_FOUND,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.OUT_OF_RANGE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.CANCELLED,
]);
/** Refusals: the request was judged and turned down, so it must have changed nothing. */
const REFUSALS = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.NOT_FOUND,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.OUT_OF_RANGE,
  grpc.status.INTERNAL,
]);

interface Answer {
  code: grpc.status;
  details: string;
}

function call(client: grpc.Client, m: Method, body: Buffer): Promise<Answer> {
  const id = (b: Buffer) => b;
  const deadline = Date.now() + 400;
  return new Promise((resolve) => {
    const done = (code: grpc.status, details: string) => resolve({ code, details });
    if (!m.requestStream && !m.responseStream) {
      client.makeUnaryRequest(m.path, id, id, body, { deadline }, (err) => (err ? done(err.code, err.details) : done(grpc.status.OK, '')));
      return;
    }
    const s = m.requestStream
      ? client.makeBidiStreamRequest(m.path, id, id, new grpc.Metadata(), { deadline })
      : client.makeServerStreamRequest(m.path, id, id, body, new grpc.Metadata(), { deadline });
    // A stream that is still open after its first answer (or 200 ms) is fine: cancel it.
    const stop = setTimeout(() => s.cancel(), 200);
    s.on('data', () => {});
    s.on('error', (e: grpc.ServiceError) => {
      clearTimeout(stop);
      done(e.code, e.details);
    });
    s.on('status', (st: grpc.StatusObject) => {
      clearTimeout(stop);
      done(st.code, st.details);
    });
    if (m.requestStream) {
      const w = s as grpc.ClientDuplexStream<Buffer, Buffer>;
      w.write(body);
      w.write(body.subarray(0, body.length >> 1));
      w.end();
    }
  });
}

// Sessions are left out: a write refused when applied (an unknown lease, say) still
// records its answer in the client's exactly-once session, so a retry gets the same one.
function snapshot(n: InprocNode) {
  const { keys, leases } = n.store.counts();
  return { revision: n.store.revision, keys, leases };
}

let cluster: InprocCluster;
let node: InprocNode;

beforeAll(async () => {
  cluster = await startInprocCluster({ size: 1 });
  node = await cluster.leader();
}, 30_000);
afterAll(async () => {
  await cluster.close();
});

async function stillServes(client: grpc.Client): Promise<void> {
  const status = PUBLIC.find((m) => m.name === 'GetStatus')!;
  expect((await call(client, status, Buffer.alloc(0))).code).toBe(grpc.status.OK);
}

describe(`hostile input (seed ${SEED}, ${RUNS} cases; FUZZ_SEED / FUZZ_RUNS to change)`, () => {
  it('every public RPC: random, malformed and truncated requests get an expected status, and refusals change nothing', async () => {
    const client = new grpc.Client(node.client, grpc.credentials.createInsecure());
    const seen = new Map<string, number>();
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...PUBLIC).chain((m) => payload(m).map((body) => ({ m, body }))),
          async ({ m, body }) => {
            const before = snapshot(node);
            const a = await call(client, m, body);
            seen.set(`${m.service}.${m.name} ${grpc.status[a.code]}`, (seen.get(`${m.service}.${m.name} ${grpc.status[a.code]}`) ?? 0) + 1);
            const unexpected = !ALLOWED.has(a.code) && !(a.code === grpc.status.INTERNAL && /deserializ|parse/i.test(a.details));
            // A TransferLeader on a one-node cluster has nobody to hand over to.
            const transfer = m.name === 'TransferLeader' && a.code === grpc.status.UNAVAILABLE;
            expect(unexpected && !transfer, `${m.service}.${m.name} answered ${grpc.status[a.code]}: ${a.details}`).toBe(false);
            if (REFUSALS.has(a.code))
              expect(snapshot(node), `${m.service}.${m.name} refused with ${grpc.status[a.code]} but changed state`).toEqual(before);
          },
        ),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
      await stillServes(client);
    } finally {
      console.log(`public API fuzz, seed ${SEED}: ${[...seen].map(([k, n]) => `${k}=${n}`).join(', ')}`);
      client.close();
    }
  }, 120_000);

  it('the peer service: random, truncated and out-of-order frames neither crash the node nor change its store', async () => {
    const peer = loadPeerApi().leaderd.raft.v1;
    const def = (peer.Peer.service as unknown as Record<string, grpc.MethodDefinition<unknown, unknown>>)['Stream']!;
    const ser = def.requestSerialize as (v: unknown) => Buffer;
    const peerAddress = [...(node.node as unknown as { opts: { peers: Map<string, string> } }).opts.peers.values()][0]!;
    const hello = fc.record(
      {
        clusterId: fc.constantFrom('inproc', 'other', ''),
        nodeId: fc.constantFrom('m1', 'm9', '', 'x'.repeat(300)),
        peerAddress: str,
        clientAddress: str,
        incarnation: str,
        timing: fc.record({ heartbeatMs: num, electionTimeoutMs: num, tickMs: num, leaseDriftMs: num }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    );
    const message = fc.record(
      {
        clusterId: fc.constantFrom('inproc', 'other'),
        from: fc.constantFrom('m1', 'm9', ''),
        to: fc.constantFrom('m1', 'm2', ''),
        term: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5 })),
        vote: fc.record({ lastLogIndex: num, lastLogTerm: num, preVote: fc.boolean() }, { requiredKeys: [] }),
        app: fc.record(
          {
            prevLogIndex: num,
            prevLogTerm: num,
            commit: num,
            entries: fc.array(fc.record({ index: num, term: num, data: bytes }, { requiredKeys: [] }), { maxLength: 2 }),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: [] },
    );
    const frame = fc.oneof(
      hello.map((h) => safe(() => ser({ hello: h }))),
      message.map((mm) => safe(() => ser({ message: mm }))),
      fc.tuple(message, fc.nat()).map(([mm, cut]) => {
        const b = safe(() => ser({ message: mm }));
        return b.subarray(0, b.length === 0 ? 0 : cut % b.length);
      }),
      fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
    );
    const client = new grpc.Client(peerAddress, grpc.credentials.createInsecure());
    const codes = new Map<string, number>();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 6 }), async (frames) => {
          const revision = node.store.revision;
          const id = (b: Buffer) => b;
          const s = client.makeBidiStreamRequest(def.path, id, id, new grpc.Metadata(), { deadline: Date.now() + 400 });
          const code = await new Promise<grpc.status>((resolve) => {
            const stop = setTimeout(() => s.cancel(), 150);
            s.on('data', () => {});
            s.on('error', (e: grpc.ServiceError) => {
              clearTimeout(stop);
              resolve(e.code);
            });
            s.on('status', (st: grpc.StatusObject) => {
              clearTimeout(stop);
              resolve(st.code);
            });
            for (const f of frames) s.write(f);
            s.end();
          });
          codes.set(grpc.status[code]!, (codes.get(grpc.status[code]!) ?? 0) + 1);
          expect(code, `peer stream answered ${grpc.status[code]}`).not.toBe(grpc.status.UNKNOWN);
          expect(node.store.revision).toBe(revision);
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
    } finally {
      console.log(`peer service fuzz, seed ${SEED}: ${[...codes].map(([k, n]) => `${k}=${n}`).join(', ')}`);
      client.close();
    }
    // Still a working node: it leads again and takes a write.
    const leader = await cluster.leader();
    const pub = new grpc.Client(leader.client, grpc.credentials.createInsecure());
    try {
      await stillServes(pub);
      const put = PUBLIC.find((m) => m.name === 'Put')!;
      expect((await call(pub, put, put.serialize({ key: 'after-fuzz', value: Buffer.from('ok') }))).code).toBe(grpc.status.OK);
    } finally {
      pub.close();
    }
  }, 120_000);
});

function safe(f: () => Buffer): Buffer {
  try {
    return f();
  } catch {
    return Buffer.alloc(0);
  }
}

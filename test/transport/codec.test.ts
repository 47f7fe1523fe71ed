import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Entry, Message, SnapshotMeta } from '../../src/raft/types.js';
import { fromWire, parseFrame, toWire, helloToWire, ValidationError } from '../../src/transport/codec.js';
import { loadPeerApi } from '../../src/transport/protos.js';

const uint = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const smallUint = fc.nat({ max: 1_000_000 });
const nodeId = fc.string({ minLength: 1, maxLength: 12 });
const bytes = fc.uint8Array({ maxLength: 64 });

const base = fc.record({ clusterId: nodeId, from: nodeId, to: nodeId, term: uint });

const entryType = fc.constantFrom<Entry['type']>('normal', 'noop', 'conf');

const appEntries = (prevLogIndex: number): fc.Arbitrary<Entry[]> =>
  fc
    .array(fc.record({ term: uint, type: entryType, data: bytes }), { maxLength: 5 })
    .map((es) => es.map((e, i) => ({ index: prevLogIndex + 1 + i, ...e })));

const meta: fc.Arbitrary<SnapshotMeta> = fc.record({
  index: uint,
  term: uint,
  conf: fc.record({ voters: fc.array(nodeId, { maxLength: 5 }), learners: fc.array(nodeId, { maxLength: 3 }) }),
});

const message: fc.Arbitrary<Message> = fc.oneof(
  fc
    .record({ b: base, preVote: fc.boolean(), lastLogIndex: uint, lastLogTerm: uint, transfer: fc.boolean() })
    .map(({ b, ...r }): Message => ({ ...b, type: 'vote', ...r })),
  fc.record({ b: base, preVote: fc.boolean(), granted: fc.boolean() }).map(({ b, ...r }): Message => ({ ...b, type: 'voteResp', ...r })),
  fc
    .record({ b: base, prevLogIndex: smallUint, prevLogTerm: uint, leaderCommit: uint, round: uint })
    .chain(({ b, ...r }) => appEntries(r.prevLogIndex).map((entries): Message => ({ ...b, type: 'app', ...r, entries }))),
  fc
    .record({ b: base, success: fc.boolean(), matchIndex: uint, rejectHint: uint, rejectTerm: uint, round: uint })
    .map(({ b, ...r }): Message => ({ ...b, type: 'appResp', ...r })),
  fc
    .record({
      b: base,
      meta,
      offset: uint,
      data: bytes,
      done: fc.boolean(),
      round: uint,
      totalSize: uint,
      checksum: fc.nat({ max: 0xffffffff }),
    })
    .map(({ b, ...r }): Message => ({ ...b, type: 'snap', ...r })),
  fc
    .record({ b: base, snapIndex: uint, nextOffset: uint, done: fc.boolean(), matchIndex: uint, round: uint, refused: fc.boolean() })
    .map(({ b, ...r }): Message => ({ ...b, type: 'snapResp', ...r })),
  base.map((b): Message => ({ ...b, type: 'timeoutNow' })),
  fc.record({ b: base, requestId: nodeId }).map(({ b, ...r }): Message => ({ ...b, type: 'readIndex', ...r })),
  fc
    .record({ b: base, requestId: nodeId, index: fc.integer({ min: -1, max: Number.MAX_SAFE_INTEGER }) })
    .map(({ b, ...r }): Message => ({ ...b, type: 'readIndexResp', ...r })),
);

const stream = loadPeerApi().leaderd.raft.v1.Peer.service.Stream;

function overTheWire(envelope: unknown): unknown {
  return stream.requestDeserialize(stream.requestSerialize(envelope as never));
}

describe('codec', () => {
  it('fromWire(toWire(m)) is m for every valid message', () => {
    fc.assert(
      fc.property(message, (m) => {
        expect(fromWire(toWire(m))).toEqual(m);
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips every valid message through protobuf bytes as well', () => {
    fc.assert(
      fc.property(message, (m) => {
        expect(fromWire(overTheWire(toWire(m)))).toEqual(m);
      }),
      { numRuns: 2000 },
    );
  });

  it('hands the core plain Uint8Arrays, not Buffers, for payloads', () => {
    const m: Message = {
      clusterId: 'c',
      from: 'a',
      to: 'b',
      term: 1,
      type: 'app',
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array([1, 2, 3]) }],
      leaderCommit: 0,
      round: 1,
    };
    const got = fromWire(overTheWire(toWire(m)));
    if (got instanceof ValidationError || got.type !== 'app') throw new Error('expected an app message');
    expect(Object.getPrototypeOf(got.entries[0]?.data)).toBe(Uint8Array.prototype);
  });

  it('parses the Hello handshake frame, with incarnation and timing, and one from an older node without them', () => {
    const hello = {
      clusterId: 'c',
      nodeId: 'n1',
      peerAddress: '127.0.0.1:1',
      clientAddress: '127.0.0.1:2',
      incarnation: 'abc123',
      timing: { heartbeatMs: 50, electionTimeoutMs: 300, tickMs: 10, leaseDriftMs: 30 },
      knownIncarnations: new Map([
        ['n2', 'i2'],
        ['n3', 'i3'],
      ]),
    };
    expect(parseFrame(overTheWire(helloToWire(hello)))).toEqual({ kind: 'hello', hello });
    expect(fromWire(helloToWire(hello))).toBeInstanceOf(ValidationError);
    const older = { clusterId: 'c', nodeId: 'n1', peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:2' };
    expect(parseFrame(overTheWire(helloToWire(older)))).toEqual({
      kind: 'hello',
      hello: { ...older, incarnation: '', timing: null, knownIncarnations: new Map() },
    });
  });

  it('refuses a Hello that tells of more incarnations than a cluster has members, naming the field', () => {
    const many = new Map(Array.from({ length: 65 }, (_, i) => [`n${i}`, `i${i}`] as [string, string]));
    const wire = helloToWire({ clusterId: 'c', nodeId: 'n1', peerAddress: 'a:1', clientAddress: 'a:2', knownIncarnations: many });
    // helloToWire itself never sends more than the limit.
    expect(Object.keys((wire.hello as { knownIncarnations: object }).knownIncarnations)).toHaveLength(64);
    (wire.hello as { knownIncarnations: Record<string, string> }).knownIncarnations['extra'] = 'x';
    const r = parseFrame(overTheWire(wire));
    expect(r).toBeInstanceOf(ValidationError);
    expect(String(r)).toMatch(/knownIncarnations.*more than 64/);
  });

  it.each([
    ['negative term', { clusterId: 'c', from: 'a', to: 'b', term: -1, timeoutNow: {} }, 'envelope.message.term'],
    ['fractional term', { clusterId: 'c', from: 'a', to: 'b', term: 1.5, timeoutNow: {} }, 'envelope.message.term'],
    ['term above 2^53', { clusterId: 'c', from: 'a', to: 'b', term: 2 ** 60, timeoutNow: {} }, 'envelope.message.term'],
    ['empty sender', { clusterId: 'c', from: '', to: 'b', term: 1, timeoutNow: {} }, 'envelope.message.from'],
    ['missing cluster id', { from: 'a', to: 'b', term: 1, timeoutNow: {} }, 'envelope.message.clusterId'],
    ['no body', { clusterId: 'c', from: 'a', to: 'b', term: 1 }, 'envelope.message.body'],
    ['two bodies', { clusterId: 'c', from: 'a', to: 'b', term: 1, timeoutNow: {}, readIndex: { requestId: 'r' } }, 'envelope.message.body'],
    [
      'string bool',
      { clusterId: 'c', from: 'a', to: 'b', term: 1, voteResp: { preVote: 'no', granted: true } },
      'envelope.message.voteResp.preVote',
    ],
    [
      'unknown entry type',
      {
        clusterId: 'c',
        from: 'a',
        to: 'b',
        term: 1,
        app: {
          prevLogIndex: 0,
          prevLogTerm: 0,
          leaderCommit: 0,
          round: 0,
          entries: [{ index: 1, term: 1, type: 7, data: Buffer.alloc(0) }],
        },
      },
      'envelope.message.app.entries[0].type',
    ],
    [
      'gap after prevLogIndex',
      {
        clusterId: 'c',
        from: 'a',
        to: 'b',
        term: 1,
        app: {
          prevLogIndex: 4,
          prevLogTerm: 1,
          leaderCommit: 0,
          round: 0,
          entries: [{ index: 6, term: 1, type: 'ENTRY_TYPE_NORMAL', data: Buffer.alloc(0) }],
        },
      },
      'envelope.message.app.entries[0].index',
    ],
    [
      'snapshot without meta',
      {
        clusterId: 'c',
        from: 'a',
        to: 'b',
        term: 1,
        snap: { meta: null, offset: 0, data: Buffer.alloc(0), done: true, round: 0 },
      },
      'envelope.message.snap.meta',
    ],
    [
      'read index below -1',
      { clusterId: 'c', from: 'a', to: 'b', term: 1, readIndexResp: { requestId: 'r', index: -2 } },
      'envelope.message.readIndexResp.index',
    ],
  ])('names the bad field: %s', (_name, message, field) => {
    const got = fromWire({ message });
    expect(got).toBeInstanceOf(ValidationError);
    expect((got as ValidationError).field).toBe(field);
  });

  it('a frame with an unknown oneof member decodes to an error, not a message', () => {
    // Field 100 of RaftMessage (varint 1): a body type this version does not know.
    const bytes = Buffer.from([0x12, 0x0c, 0x0a, 0x01, 0x63, 0x12, 0x01, 0x61, 0x1a, 0x01, 0x62, 0xa0, 0x06, 0x01]);
    const got = fromWire(stream.requestDeserialize(bytes));
    expect(got).toBeInstanceOf(ValidationError);
    expect((got as ValidationError).field).toBe('envelope.message.body');
  });

  it('never throws on arbitrary garbage objects', () => {
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withTypedArray: true, withNullPrototype: true, withMap: true }), (junk) => {
        expect(fromWire(junk)).toBeInstanceOf(ValidationError);
        expect(parseFrame(junk)).toBeInstanceOf(ValidationError);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on mutated valid envelopes', () => {
    const junk = fc.oneof(fc.anything(), fc.constant(undefined), fc.constant(null), fc.integer({ min: -5, max: 5 }), fc.double());
    fc.assert(
      fc.property(message, fc.array(fc.tuple(fc.nat(), junk), { minLength: 1, maxLength: 4 }), (m, mutations) => {
        const envelope = JSON.parse(JSON.stringify(toWire(m))) as Record<string, unknown>;
        for (const [pick, value] of mutations) {
          // Replace a random node in the object tree with junk.
          const nodes: Record<string, unknown>[] = [];
          const walk = (v: unknown): void => {
            if (typeof v === 'object' && v !== null) {
              nodes.push(v as Record<string, unknown>);
              Object.values(v).forEach(walk);
            }
          };
          walk(envelope);
          const target = nodes[pick % nodes.length];
          const keys = target === undefined ? [] : Object.keys(target);
          const key = keys[pick % Math.max(keys.length, 1)];
          if (target !== undefined && key !== undefined) target[key] = value;
        }
        const got = fromWire(envelope);
        // Either refused, or (the mutation happened to be valid) a well-formed message.
        if (!(got instanceof ValidationError)) expect(fromWire(toWire(got))).toEqual(got);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on a hostile object whose getters throw', () => {
    const hostile = new Proxy(
      {},
      {
        get: () => {
          throw new Error('boom');
        },
      },
    );
    expect(fromWire({ message: hostile })).toBeInstanceOf(ValidationError);
    expect(fromWire(hostile)).toBeInstanceOf(ValidationError);
  });

  it('random protobuf bytes are refused; the rare decodable one is a well-formed frame that round-trips', () => {
    const outcomes = { threw: 0, refused: 0, hello: 0, message: 0 };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (raw) => {
        let decoded: unknown;
        try {
          decoded = stream.requestDeserialize(Buffer.from(raw));
        } catch {
          outcomes.threw++; // grpc-js turns a deserialization failure into a call error
          return;
        }
        const got = parseFrame(decoded);
        if (got instanceof ValidationError) {
          outcomes.refused++;
          return;
        }
        outcomes[got.kind]++;
        // Whatever is accepted is exactly what a valid sender would have produced.
        expect(parseFrame(overTheWire(got.kind === 'hello' ? helloToWire(got.hello) : toWire(got.message)))).toEqual(got);
        if (got.kind === 'message') {
          const m = got.message;
          expect([m.clusterId, m.from, m.to].every((s) => typeof s === 'string' && s.length > 0)).toBe(true);
          expect(Number.isSafeInteger(m.term) && m.term >= 0).toBe(true);
        }
      }),
      { numRuns: 2000, seed: 20260112 },
    );
    // With this seed, every input is refused one way or the other: random bytes do not
    // make a frame with a cluster id, both ends and a body.
    expect(outcomes).toEqual({ threw: expect.any(Number), refused: expect.any(Number), hello: 0, message: 0 });
    expect(outcomes.threw + outcomes.refused).toBe(2000);
    expect(outcomes.threw).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });

  it('every strict prefix of a valid frame is refused: a truncated frame never reaches the core', () => {
    fc.assert(
      fc.property(message, (m) => {
        const bytes = stream.requestSerialize(toWire(m) as never);
        for (let len = 0; len < bytes.length; len++) {
          let decoded: unknown;
          try {
            decoded = stream.requestDeserialize(bytes.subarray(0, len));
          } catch {
            continue;
          }
          expect(fromWire(decoded), `prefix of ${len}/${bytes.length} bytes of a ${m.type}`).toBeInstanceOf(ValidationError);
        }
      }),
      { numRuns: 300 },
    );
  });
});

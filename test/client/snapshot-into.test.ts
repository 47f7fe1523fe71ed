// LeaderdClient.snapshotInto against real gRPC servers playing nodes that fail: the sink
// starts over on each endpoint tried, gets at most the declared bytes, sees one write at a
// time, and a node whose bytes do not match what it declared is DATA_LOSS, not retried.
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { LeaderdClient, LeaderdError } from '../../src/client/leaderd-client.js';
import { failure, startFakeNode, type FakeNode } from './fake-server.js';

type Call = grpc.ServerWritableStream<object, object>;
const PIECE = 64 * 1024;

/** A node whose Snapshot stream declares `declared` (default: `data`'s own length and hash), sends `data` in pieces, then ends or fails. */
function snapshotNode(
  data: Buffer,
  opts: { failAfter?: number; declared?: { bytes: number; sha256: Buffer }; calls?: { n: number } } = {},
) {
  return (call: Call) => {
    if (opts.calls) opts.calls.n++;
    const declared = opts.declared ?? { bytes: data.length, sha256: createHash('sha256').update(data).digest() };
    let sent = 0;
    for (let off = 0; off < data.length || off === 0; off += PIECE) {
      if (opts.failAfter !== undefined && sent === opts.failAfter) {
        call.emit('error', failure(grpc.status.UNAVAILABLE, 'node stopping'));
        return;
      }
      const head = off === 0 ? { clusterId: 'prod', index: 42, term: 3, totalBytes: declared.bytes, sha256: declared.sha256 } : {};
      call.write({ ...head, data: data.subarray(off, off + PIECE) });
      sent++;
      if (data.length === 0) break;
    }
    call.end();
  };
}

describe('LeaderdClient.snapshotInto', () => {
  const nodes: FakeNode[] = [];
  const clients: LeaderdClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const n of nodes.splice(0)) await n.stop();
  });
  async function node(snapshot: (call: Call) => void): Promise<string> {
    const n = await startFakeNode({ Cluster: { Snapshot: snapshot } });
    nodes.push(n);
    return n.endpoint;
  }
  function client(endpoints: string[]): LeaderdClient {
    const c = new LeaderdClient({ endpoints, timeoutMs: 3000, retry: { backoffMs: 5, maxBackoffMs: 20 } });
    clients.push(c);
    return c;
  }
  const state = (n: number, fill: number) => Buffer.alloc(n, fill);

  it('starts the sink over on the next endpoint when a stream breaks half way, one awaited write at a time', async () => {
    const broken = await node(snapshotNode(state(10 * PIECE, 1), { failAfter: 3 }));
    const good = await node(snapshotNode(state(10 * PIECE + 5, 2)));
    const c = client([broken, good]);
    let chunks: Buffer[] = [];
    const begins: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const head = await c.snapshotInto({
      begin: (h) => {
        begins.push(h.endpoint);
        chunks = [];
      },
      write: async (chunk) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await new Promise((r) => setTimeout(r, 2));
        chunks.push(chunk);
        inFlight--;
      },
    });
    expect(begins).toEqual([broken, good]);
    expect(maxInFlight).toBe(1);
    expect(Buffer.concat(chunks).equals(state(10 * PIECE + 5, 2))).toBe(true);
    expect(head).toEqual({
      clusterId: 'prod',
      index: 42,
      term: 3,
      dataBytes: 10 * PIECE + 5,
      sha256: createHash('sha256')
        .update(state(10 * PIECE + 5, 2))
        .digest('hex'),
      endpoint: good,
    });
    // snapshot() is the same call with a sink that keeps the chunks.
    const whole = await client([good]).snapshot();
    expect(whole.data.equals(state(10 * PIECE + 5, 2))).toBe(true);
    expect(whole.index).toBe(42);
  });

  it('refuses data that does not match what the node declared as DATA_LOSS, stops at the first byte too many, and tries no other endpoint', async () => {
    const data = state(4 * PIECE, 7);
    const calls = { n: 0 };
    const spare = await node(snapshotNode(data, { calls }));
    const cases = [
      { declared: { bytes: PIECE, sha256: createHash('sha256').update(data.subarray(0, PIECE)).digest() }, match: /131072 of 65536 bytes/ },
      { declared: { bytes: data.length, sha256: Buffer.alloc(32) }, match: /262144 of 262144 bytes/ },
      { declared: { bytes: data.length + 1, sha256: createHash('sha256').update(data).digest() }, match: /262144 of 262145 bytes/ },
    ];
    for (const { declared, match } of cases) {
      const liar = await node(snapshotNode(data, { declared }));
      let received = 0;
      const err = await client([liar, spare])
        .snapshotInto({ begin: () => undefined, write: (c) => void (received += c.length) })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeaderdError);
      expect((err as LeaderdError).code).toBe(grpc.status.DATA_LOSS);
      expect((err as LeaderdError).message).toMatch(match);
      expect(received).toBeLessThanOrEqual(declared.bytes);
    }
    expect(calls.n).toBe(0);
  });

  it('ends with the sink’s own error, without trying another endpoint', async () => {
    const calls = { n: 0 };
    const a = await node(snapshotNode(state(4 * PIECE, 1)));
    const b = await node(snapshotNode(state(4 * PIECE, 1), { calls }));
    const disk = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    const err = await client([a, b])
      .snapshotInto({
        begin: () => undefined,
        write: () => {
          throw disk;
        },
      })
      .catch((e: unknown) => e);
    expect(err).toBe(disk);
    expect(calls.n).toBe(0);
  });
});

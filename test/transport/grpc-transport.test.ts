import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import type { Message } from '../../src/raft/types.js';
import { helloToWire, toWire } from '../../src/transport/codec.js';
import { loadPeerApi } from '../../src/transport/protos.js';
import { everyMessageType, heartbeat, mesh, Nodes, sleep, waitFor, type TestNode } from './helpers.js';

const nodes = new Nodes();
const rawClients: grpc.Client[] = [];

afterEach(async () => {
  for (const c of rawClients.splice(0)) c.close();
  await nodes.closeAll();
});

/** Sends heartbeats from `a` to `b` until `b` has received one with round >= `from`. */
async function heartbeatUntilReceived(a: TestNode, b: TestNode, firstRound: number, timeoutMs = 5000): Promise<void> {
  let round = firstRound;
  const deadline = Date.now() + timeoutMs;
  while (!b.received.some((m) => m.type === 'app' && m.round >= firstRound)) {
    if (Date.now() > deadline) throw new Error(`${b.id} received no heartbeat from ${a.id} within ${timeoutMs} ms`);
    a.transport.send(heartbeat(a.id, b.id, round++));
    await sleep(20);
  }
}

describe('GrpcTransport', () => {
  it('two nodes exchange every message type, in order, both ways', async () => {
    const a = await nodes.start('n1');
    const b = await nodes.start('n2');
    mesh([a, b]);

    const ab = everyMessageType('test-cluster', 'n1', 'n2', 5);
    const ba = everyMessageType('test-cluster', 'n2', 'n1', 6);
    for (const m of ab) a.transport.send(m);
    for (const m of ba) b.transport.send(m);

    await waitFor('all messages delivered', () => b.received.length === ab.length && a.received.length === ba.length);
    expect(b.received).toEqual(ab);
    expect(a.received).toEqual(ba);
    expect(a.transport.stats()).toMatchObject({ sent: ab.length, received: ba.length, dropped: 0, refused: 0 });
    expect(b.transport.stats()).toMatchObject({ sent: ba.length, received: ab.length, dropped: 0, refused: 0 });
  });

  it('each node learns its peers\u2019 client addresses from the handshake', async () => {
    const a = await nodes.start('n1');
    const b = await nodes.start('n2');
    mesh([a, b]);
    const learnedByB: [string, string][] = [];
    b.transport.onPeerClientAddress((id, addr) => learnedByB.push([id, addr]));

    // Only a dials b: b learns from a's Hello, a from b's Hello reply.
    a.transport.send(heartbeat('n1', 'n2', 1));
    await waitFor('message delivered', () => b.received.length === 1);
    expect(b.transport.peerClientAddress('n1')).toBe('n1.client.test:7000');
    expect(learnedByB).toEqual([['n1', 'n1.client.test:7000']]);
    await waitFor('a learns b', () => a.transport.peerClientAddress('n2') !== undefined);
    expect(a.transport.peerClientAddress('n2')).toBe('n2.client.test:7000');
  });

  it('three nodes: every node reaches every other with every message type', async () => {
    const ns = [await nodes.start('n1'), await nodes.start('n2'), await nodes.start('n3')];
    mesh(ns);
    const expected = new Map<string, Message[]>(ns.map((n) => [n.id, []]));
    for (const from of ns) {
      for (const to of ns) {
        if (from === to) continue;
        for (const m of everyMessageType('test-cluster', from.id, to.id, 3)) {
          from.transport.send(m);
          expected.get(to.id)?.push(m);
        }
      }
    }
    await waitFor('all delivered', () => ns.every((n) => n.received.length === expected.get(n.id)?.length));
    for (const n of ns) {
      for (const from of ns) {
        // Order is guaranteed per sender (one stream), not across senders.
        expect(n.received.filter((m) => m.from === from.id)).toEqual(expected.get(n.id)?.filter((m) => m.from === from.id));
      }
    }
  });

  it('refuses a Hello from another cluster, logs who, and never delivers its messages', async () => {
    const intruder = await nodes.start('n1', { clusterId: 'other-cluster' });
    const b = await nodes.start('n2');
    mesh([intruder, b]);

    intruder.transport.send(heartbeat('n1', 'n2', 1, 'other-cluster'));
    await waitFor('refusal logged', () => b.lines.some((l) => l.level === 40 && l['from'] === 'n1' && l['clusterId'] === 'other-cluster'));
    // The dialer keeps retrying; give it time to (wrongly) get something through.
    for (let i = 2; i < 10; i++) {
      intruder.transport.send(heartbeat('n1', 'n2', i, 'other-cluster'));
      await sleep(30);
    }
    expect(b.received).toEqual([]);
    expect(b.transport.stats().refused).toBeGreaterThanOrEqual(1);
    expect(b.transport.stats().received).toBe(0);
    expect(intruder.lines.some((l) => l.level === 40 && l['code'] === grpc.status.FAILED_PRECONDITION)).toBe(true);
  });

  it('refuses a Hello from a node id that is not among its peers', async () => {
    const stranger = await nodes.start('n9');
    const b = await nodes.start('n2');
    stranger.transport.setPeers(new Map([['n2', b.address]]));
    b.transport.setPeers(new Map([['n1', '127.0.0.1:1']]));

    stranger.transport.send(heartbeat('n9', 'n2', 1));
    await waitFor('refusal logged', () => b.lines.some((l) => l.level === 40 && l['from'] === 'n9' && l['clusterId'] === 'test-cluster'));
    await sleep(100);
    expect(b.received).toEqual([]);
    expect(stranger.lines.some((l) => l['code'] === grpc.status.PERMISSION_DENIED)).toBe(true);
  });

  it('reconnects to a restarted peer and delivers later messages', async () => {
    const a = await nodes.start('n1');
    let b = await nodes.start('n2');
    mesh([a, b]);
    await heartbeatUntilReceived(a, b, 1);

    const port = b.port;
    await b.transport.close();
    // While the peer is down, sending neither throws nor blocks.
    for (let i = 100; i < 110; i++) a.transport.send(heartbeat('n1', 'n2', i));
    await sleep(150);

    b = await nodes.start('n2', { listenPeer: `127.0.0.1:${port}` });
    expect(b.port).toBe(port);
    b.transport.setPeers(
      new Map([
        ['n1', a.address],
        ['n2', b.address],
      ]),
    );
    await heartbeatUntilReceived(a, b, 1000, 5000);

    // And the restarted node can answer over its own stream.
    b.transport.send(heartbeat('n2', 'n1', 7));
    await waitFor('reply delivered', () => a.received.some((m) => m.from === 'n2'));
  });

  it('a message over the receiver\u2019s size limit is refused and both nodes keep working', async () => {
    const a = await nodes.start('n1'); // default 16 MiB limit
    const b = await nodes.start('n2', { maxMessageBytes: 64 * 1024 });
    mesh([a, b]);
    await heartbeatUntilReceived(a, b, 1);

    const huge: Message = {
      ...heartbeat('n1', 'n2', 500),
      entries: [{ index: 1, term: 5, type: 'normal', data: new Uint8Array(256 * 1024).fill(1) }],
    };
    a.transport.send(huge);
    await waitFor('sender sees the refusal', () => a.lines.some((l) => l['code'] === grpc.status.RESOURCE_EXHAUSTED));
    expect(b.received.some((m) => m.type === 'app' && m.round === 500)).toBe(false);

    // The stream was torn down; the sender redials and later messages get through.
    await heartbeatUntilReceived(a, b, 1000);
    b.transport.send(heartbeat('n2', 'n1', 1));
    await waitFor('reverse direction works', () => a.received.length > 0);
  });

  it('drops (and counts) a message over its own size limit instead of sending it', async () => {
    const a = await nodes.start('n1', { maxMessageBytes: 64 * 1024 });
    const b = await nodes.start('n2');
    mesh([a, b]);
    const huge: Message = {
      ...heartbeat('n1', 'n2', 500),
      entries: [{ index: 1, term: 5, type: 'normal', data: new Uint8Array(128 * 1024) }],
    };
    a.transport.send(huge);
    expect(a.transport.stats().dropped).toBe(1);
    await heartbeatUntilReceived(a, b, 1);
    expect(b.received.some((m) => m.type === 'app' && m.round === 500)).toBe(false);
  });

  it('queues a bounded number of messages for an unreachable peer, dropping the oldest', async () => {
    const gone = await nodes.start('n2');
    const deadAddress = gone.address;
    await gone.transport.close();
    const a = await nodes.start('n1', { maxQueueMessages: 10 });
    a.transport.setPeers(new Map([['n2', deadAddress]]));
    for (let i = 0; i < 1000; i++) a.transport.send(heartbeat('n1', 'n2', i));
    expect(a.transport.stats().dropped).toBe(990);
    // Unknown recipients are dropped too, never thrown.
    a.transport.send(heartbeat('n1', 'n7', 1));
    expect(a.transport.stats().dropped).toBe(991);
    expect(a.transport.stats().sent).toBe(0);
  });

  it("the peer server takes 8 MiB per connection before acknowledging (not HTTP/2's 64 KiB), or receiveWindowBytes", async () => {
    const a = await nodes.start('n1');
    const b = await nodes.start('n2');
    const c = await nodes.start('n3', { receiveWindowBytes: 1 << 20 });
    mesh([a, b, c]);
    await heartbeatUntilReceived(a, b, 1);
    await heartbeatUntilReceived(a, c, 1);
    // Without it a follower whose event loop is busy acknowledges a 1 MiB append in 16
    // turns, and a heartbeat behind it comes late enough to cost the leader its quorum.
    expect(b.transport.stats().receiveWindowBytes).toBe(8 << 20);
    expect(c.transport.stats().receiveWindowBytes).toBe(1 << 20);
  });

  it('holds at most maxDownQueueBytes (4 MiB by default) of appends for a peer that is down', async () => {
    const gone = await nodes.start('n2');
    const deadAddress = gone.address;
    await gone.transport.close();
    const a = await nodes.start('n1');
    a.transport.setPeers(new Map([['n2', deadAddress]]));
    // A leader keeps replicating to a follower that died: 64 appends of 256 KiB, 16 MiB in all.
    const payload = new Uint8Array(256 * 1024);
    for (let i = 0; i < 64; i++) {
      a.transport.send({ ...heartbeat('n1', 'n2', i), entries: [{ index: i + 1, term: 5, type: 'normal', data: payload }] });
    }
    // At most 4 MiB stay queued (15 of these, with their framing); the older ones are dropped.
    expect(a.transport.stats().dropped).toBeGreaterThanOrEqual(64 - 16);
    expect(a.transport.stats().sent).toBe(0);
  });

  it('a burst within the queue bound arrives complete and in order despite gRPC backpressure', async () => {
    const a = await nodes.start('n1');
    const b = await nodes.start('n2');
    mesh([a, b]);
    await heartbeatUntilReceived(a, b, 1);
    const before = b.received.length;
    const payload = new Uint8Array(16 * 1024).fill(9);
    for (let i = 0; i < 1000; i++) {
      a.transport.send({ ...heartbeat('n1', 'n2', 10_000 + i), entries: [{ index: 1, term: 5, type: 'normal', data: payload }] });
    }
    await waitFor('burst delivered', () => b.received.length === before + 1000, 10_000);
    const rounds = b.received.slice(before).map((m) => (m.type === 'app' ? m.round : -1));
    expect(rounds).toEqual(Array.from({ length: 1000 }, (_, i) => 10_000 + i));
    expect(a.transport.stats().dropped).toBe(0);
  });

  it('a peer removed by setPeers loses its stream and is refused when it redials', async () => {
    const a = await nodes.start('n1');
    const b = await nodes.start('n2');
    mesh([a, b]);
    await heartbeatUntilReceived(a, b, 1);
    b.transport.setPeers(new Map([['n2', b.address]]));
    const delivered = b.received.length;
    for (let i = 0; i < 10; i++) {
      a.transport.send(heartbeat('n1', 'n2', 500 + i));
      await sleep(30);
    }
    expect(b.received.length).toBe(delivered);
    expect(b.lines.some((l) => l.msg === 'refusing peer stream: unknown node id' && l['from'] === 'n1')).toBe(true);
  });

  it('survives garbage frames from a raw gRPC client and keeps serving real peers', async () => {
    const b = await nodes.start('n2');
    const a = await nodes.start('n1');
    mesh([a, b]);
    const stream = loadPeerApi().leaderd.raft.v1.Peer.service.Stream;
    const raw = new grpc.Client(b.address, grpc.credentials.createInsecure());
    rawClients.push(raw);
    const open = () =>
      raw.makeBidiStreamRequest<Buffer, Buffer>(
        '/leaderd.raft.v1.Peer/Stream',
        (x) => x,
        (x) => x,
      );
    const statusOf = (call: grpc.ClientDuplexStream<Buffer, Buffer>) =>
      new Promise<grpc.StatusObject>((resolve) => {
        call.on('status', resolve);
        call.on('error', () => undefined);
        call.on('data', () => undefined);
      });

    // 1. Undecodable bytes as the first frame: the stream is refused, the server lives.
    const c1 = open();
    const s1 = statusOf(c1);
    c1.write(Buffer.from([0xff, 0xff, 0xff, 0x0a, 0x99]));
    expect((await s1).code).toBe(grpc.status.INVALID_ARGUMENT);

    // 2. A proper Hello as n1, then garbage of every kind on the same stream: each bad
    //    frame is dropped and counted, and the stream still carries a valid message after.
    const c2 = open();
    const s2 = statusOf(c2);
    const hello = { clusterId: 'test-cluster', nodeId: 'n1', peerAddress: '', clientAddress: '' };
    c2.write(stream.requestSerialize(helloToWire(hello)));
    const bad: Buffer[] = [
      Buffer.from([0xff, 0xff, 0xff]), // not protobuf
      Buffer.from([]), // empty envelope
      stream.requestSerialize(helloToWire(hello)), // second Hello
      stream.requestSerialize(toWire(heartbeat('n1', 'n3', 1))), // not for this node
      stream.requestSerialize(toWire(heartbeat('n1', 'n2', 1, 'other-cluster'))), // wrong cluster
      stream.requestSerialize(toWire(heartbeat('n3', 'n2', 1))), // spoofed sender
      stream.requestSerialize({ message: { clusterId: 'test-cluster', from: 'n1', to: 'n2', term: 1 } }), // no body
      stream.requestSerialize({
        message: {
          clusterId: 'test-cluster',
          from: 'n1',
          to: 'n2',
          term: 1,
          app: { prevLogIndex: 3, entries: [{ index: 9, term: 1, type: 'ENTRY_TYPE_NORMAL' }] },
        },
      }), // gap in entries
      Buffer.from([0x12, 0x0c, 0x0a, 0x01, 0x63, 0x12, 0x01, 0x61, 0x1a, 0x01, 0x62, 0xa0, 0x06, 0x01]), // unknown oneof
    ];
    for (const frame of bad) c2.write(frame);
    c2.write(stream.requestSerialize(toWire(heartbeat('n1', 'n2', 77))));
    await waitFor('valid message after garbage', () => b.received.some((m) => m.type === 'app' && m.round === 77));
    expect(b.received).toHaveLength(1);
    expect(b.transport.stats().refused).toBe(1 + bad.length);
    c2.end();
    expect((await s2).code).toBe(grpc.status.OK);

    // 3. A message (no Hello) first: refused.
    const c3 = open();
    const s3 = statusOf(c3);
    c3.write(stream.requestSerialize(toWire(heartbeat('n1', 'n2', 2))));
    expect((await s3).code).toBe(grpc.status.INVALID_ARGUMENT);

    // The real peer is unaffected.
    await heartbeatUntilReceived(a, b, 1000);
  });
});

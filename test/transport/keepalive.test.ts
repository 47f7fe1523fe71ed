import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { protoRoot } from '../../src/transport/protos.js';
import { Nodes, sleep, waitFor } from './helpers.js';

// A stand-in peer in its own process, so it can be frozen with SIGSTOP: the kernel
// keeps ACKing TCP, so only the HTTP/2 keepalive ping can tell the connection is dead,
// which is exactly what a partition or a hung host looks like to the sender.
const PEER_SCRIPT = `
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
const def = protoLoader.loadSync(['leaderd/raft/v1/raft.proto'], {
  keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [process.env.PROTO_ROOT],
});
const api = grpc.loadPackageDefinition(def);
const server = new grpc.Server({ 'grpc.keepalive_permit_without_calls': 1 });
let streams = 0;
server.addService(api.leaderd.raft.v1.Peer.service, {
  Stream(call) {
    const stream = ++streams;
    call.once('data', () => call.write({ hello: { clusterId: 'test-cluster', nodeId: 'n2', peerAddress: '', clientAddress: 'frozen:1' } }));
    // One line per message: the stream it came on and the heartbeat round it carries.
    call.on('data', (env) => { if (env.message) process.stdout.write('msg ' + stream + ' ' + env.message.app.round + '\\n'); });
    call.on('end', () => call.end());
  },
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write('port ' + port + '\\n');
});
`;

const nodes = new Nodes();
let child: ChildProcess | null = null;

afterEach(async () => {
  if (child !== null && child.exitCode === null && child.pid !== undefined) {
    process.kill(child.pid, 'SIGCONT');
    process.kill(child.pid, 'SIGKILL');
  }
  child = null;
  await nodes.closeAll();
});

describe('GrpcTransport keepalive', () => {
  it('notices a frozen peer within about two keepalive periods and reconnects once it thaws', async () => {
    const cwd = fileURLToPath(new URL('../..', import.meta.url));
    const proc = spawn(process.execPath, ['--input-type=module', '-e', PEER_SCRIPT], {
      cwd,
      env: { ...process.env, PROTO_ROOT: protoRoot() },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child = proc;
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('child peer listening', () => /port \d+/.test(out), 10_000);
    const port = Number(/port (\d+)/.exec(out)?.[1]);

    const keepaliveMs = 200;
    const a = await nodes.start('n1', { keepaliveMs });
    a.transport.setPeers(new Map([['n2', `127.0.0.1:${port}`]]));
    const hb = (round: number) =>
      a.transport.send({
        clusterId: 'test-cluster',
        from: 'n1',
        to: 'n2',
        term: 1,
        type: 'app',
        prevLogIndex: 0,
        prevLogTerm: 0,
        entries: [],
        leaderCommit: 0,
        round,
      });
    hb(1);
    await waitFor('stream established', () => a.transport.peerClientAddress('n2') === 'frozen:1');
    await waitFor('first message delivered', () => out.includes('msg'));

    const lostBefore = a.lines.filter((l) => l.msg === 'peer stream lost').length;
    const frozenAt = Date.now();
    if (proc.pid === undefined) throw new Error('child has no pid');
    process.kill(proc.pid, 'SIGSTOP');
    // Heartbeats keep flowing into the kernel's buffers; nothing errors on its own.
    let round = 2;
    const ticker = setInterval(() => hb(round++), 50);
    try {
      await waitFor(
        'stream to the frozen peer declared lost',
        () => a.lines.filter((l) => l.msg === 'peer stream lost').length > lostBefore,
        5000,
      );
      const detectedMs = Date.now() - frozenAt;
      // keepalive_time + keepalive_timeout is 2 * keepaliveMs; allow generous scheduling slack.
      expect(detectedMs).toBeLessThan(6 * keepaliveMs + 500);

      out = '';
      // Heartbeats written before the freeze sit in the kernel's buffers and reach the
      // peer the moment it thaws, on the dead stream. Only a message sent after the thaw,
      // on a stream opened after the old one was declared lost, shows a reconnect.
      const thawRound = round;
      process.kill(proc.pid, 'SIGCONT');
      const received = () => [...out.matchAll(/msg (\d+) (\d+)/g)].map((m) => ({ stream: Number(m[1]), round: Number(m[2]) }));
      await waitFor(
        'a message sent after the thaw arrives on a new stream',
        () => received().some((r) => r.stream > 1 && r.round >= thawRound),
        5000,
      );
      // Nothing sent after the thaw went down the old stream.
      expect(received().filter((r) => r.stream === 1 && r.round >= thawRound)).toEqual([]);
    } finally {
      clearInterval(ticker);
    }
    await sleep(0);
  });
});

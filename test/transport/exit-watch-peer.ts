// A child process for exit-watch.test.ts: a peer server that the test kills, pauses, or
// tells (over IPC) to close its connections one way or another.
//   node exit-watch-peer.js grpc <port>   the real peer transport; 'close' shuts it down
//   node exit-watch-peer.js h2 <port>     a bare HTTP/2 server; 'reset' resets every
//                                          connection and stops listening, 'fin' ends every
//                                          connection cleanly and keeps listening
import * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import { pino } from 'pino';
import { GrpcTransport } from '../../src/transport/grpc-transport.js';

const [kind, port] = process.argv.slice(2);
const send = (m: string): void => {
  process.send?.(m);
};
if (kind === 'grpc') {
  const t = new GrpcTransport({
    nodeId: 'peer',
    clusterId: 'test-cluster',
    listenPeer: `127.0.0.1:${port}`,
    advertisePeer: `127.0.0.1:${port}`,
    advertiseClient: '127.0.0.1:1',
    logger: pino({ level: 'silent' }),
  });
  await t.start();
  process.on('message', (m) => {
    if (m === 'close') void t.close().then(() => send('done'));
  });
} else {
  const sockets: Socket[] = [];
  const server = http2.createServer();
  server.on('connection', (s: Socket) => sockets.push(s));
  await new Promise<void>((resolve) => server.listen(Number(port), '127.0.0.1', resolve));
  process.on('message', (m) => {
    if (m === 'reset') {
      for (const s of sockets) s.resetAndDestroy();
      server.close();
    }
    if (m === 'fin') for (const s of sockets) s.end();
    send('done');
  });
}
send('ready');
// Stay up until killed (the test kills it, also when it fails).
setInterval(() => {}, 60_000);

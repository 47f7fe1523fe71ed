// The ceiling for any Node.js gRPC server on this machine: a bare grpc-js server that
// answers the leaderd.v1 KV.Put, KV.Get and Cluster.GetLeader calls at once, with no
// consensus, disk or state behind them. Driven by the same client code as leaderd and
// etcd (bench/clients.ts). Prints its port on stdout, then serves until killed.
import * as grpc from '@grpc/grpc-js';
import { loadPublicApi } from '../src/transport/protos.js';

const v1 = loadPublicApi().leaderd.v1;
const server = new grpc.Server();
let revision = 0;
const value = Buffer.alloc(100, 'v');
server.addService(v1.KV.service, {
  Put: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { revision: ++revision }),
  Get: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
    cb(null, { found: true, value, modRevision: revision, revision, createRevision: 1 }),
});
server.addService(v1.Cluster.service, {
  GetLeader: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { leaderId: 'echo', leaderAddress: '', term: 1 }),
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`echo server: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${port}\n`);
});

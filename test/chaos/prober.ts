// Runs inside a node's network namespace (spawned by the partition test): asks that node
// for its status every few ms and prints one JSON line per answer with the wall-clock
// time, so the test can check what the node claimed while it was cut off.
import * as grpc from '@grpc/grpc-js';
import { loadPublicApi } from '../../src/transport/protos.js';

const endpoint = process.argv[2]!;
const client = new (loadPublicApi().leaderd.v1.Cluster)(endpoint, grpc.credentials.createInsecure());
let stopped = false;
process.on('SIGTERM', () => {
  stopped = true;
});
const deadline = Date.now() + 60_000; // bounded even if the test forgets us
while (!stopped && Date.now() < deadline) {
  await new Promise<void>((resolve) => {
    const sent = Date.now();
    client.GetStatus({}, { deadline: sent + 500 }, (err, s) => {
      if (!err && s)
        process.stdout.write(
          JSON.stringify({ sent, at: Date.now(), role: s.role, term: s.term, leaseValid: s.leaseValid, leaderId: s.leaderId }) + '\n',
        );
      resolve();
    });
  });
  await new Promise((r) => setTimeout(r, 5));
}
client.close();

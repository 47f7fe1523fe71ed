// Example: a job that exactly one of several processes runs, and that another process
// takes over within a bounded time when the one running it dies or freezes.
//
// Each process embeds a leaderd node. The job runs only inside runWhileLeader, which
// stops it as soon as this node's leader lease is no longer valid, before any other
// node can be elected. The job also checks isLeader() right before every side effect,
// and stamps each with the fencing token (the Raft term), so a resource can refuse a
// stale primary even if a check raced with a pause.
//
//   node dist/examples/job-runner.js --id a --data-dir /tmp/a --listen-peer 127.0.0.1:7201 \
//     --peers a=127.0.0.1:7201,b=127.0.0.1:7202,c=127.0.0.1:7203 --out /tmp/job.log
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createNode } from '../src/index.js';

const { values } = parseArgs({
  options: {
    id: { type: 'string' },
    'data-dir': { type: 'string' },
    'listen-peer': { type: 'string' },
    peers: { type: 'string' },
    out: { type: 'string' },
    'every-ms': { type: 'string', default: '50' },
  },
});
for (const k of ['id', 'data-dir', 'listen-peer', 'peers', 'out'] as const) {
  if (!values[k]) {
    process.stderr.write(`job-runner: --${k} is required\n`);
    process.exit(2);
  }
}
const peers = Object.fromEntries(values.peers!.split(',').map((p) => p.split('=') as [string, string]));
const node = await createNode({ id: values.id!, dataDir: values['data-dir']!, listenPeer: values['listen-peer']!, peers });
const everyMs = Number(values['every-ms']);

const stop = new AbortController();
process.on('SIGTERM', () => stop.abort());
process.on('SIGINT', () => stop.abort());

await node.runWhileLeader(async (signal, token) => {
  process.stdout.write(`${values.id} leads with token ${token}\n`);
  while (!signal.aborted) {
    // Checked right before acting: after a pause, isLeader() first catches up on the
    // time that passed, so a frozen primary wakes up knowing it lost its lease.
    if (!node.isLeader()) break;
    appendFileSync(values.out!, `${token} ${values.id} ${Date.now()}\n`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  process.stdout.write(`${values.id} stopped running the job (token ${token})\n`);
}, stop.signal);
await node.close();

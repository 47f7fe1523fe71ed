#!/usr/bin/env node
// leaderd: one executable, subcommands for a node, a local cluster and the client side.
import { Command, Option } from 'commander';
import { DEFAULTS } from '../server/config.js';
import { DEFAULT_LIMITS, LIMIT_FLAGS } from '../server/limit-defaults.js';
import { EXIT_OK, UsageError, reportError } from './usage.js';
import { VERSION } from '../version.js';
import { addCoordinationCommands } from './coordination-program.js';
import { DEFAULT_TIMEOUT_MS, ENDPOINTS_ENV } from './client-defaults.js';
// Each subcommand loads only what it needs: a client command does not pay for LevelDB,
// pino or the node runtime.
const start = () => import('./start.js');
const local = () => import('./local.js');
const client = () => import('./client-commands.js');
const certs = () => import('./certs-command.js');

const program = new Command('leaderd')
  .description('Leader election and coordination: Raft over gRPC with a LevelDB log')
  .version(VERSION, '-V, --version', 'print the leaderd version')
  .exitOverride()
  .showSuggestionAfterError(true)
  // Errors are printed by reportError (one line); help asked for goes to stdout, help
  // shown because no command was given goes to stderr.
  .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: () => {} })
  .addHelpText(
    'after',
    `
Examples:
  leaderd local                          a 3-node cluster on this machine (client ports 7001-7003)
  leaderd status                         every member's role, term and log indexes
  leaderd transfer --to n2               switchover: hand leadership to n2

Client commands talk to --endpoints, else $LEADERD_ENDPOINTS, else 127.0.0.1:7001-7005.
Exit codes: 0 ok, 1 failed, 2 bad usage or input, 3 cluster unreachable or without a leader.`,
  );

const startCommand = program
  .command('start')
  .description('run one node (a new data dir starts a node; an existing one restarts it)')
  .option('--config <file>', 'JSON file with the same settings, keys named like the flags ("data-dir": ...); flags override it')
  .option('--id <id>', "this node's id (required)")
  .option('--data-dir <dir>', 'where this node keeps its data (default: data/<id>)')
  .option('--listen-peer <host:port>', `address for Raft traffic from peers (default: ${DEFAULTS['listen-peer']})`)
  .option('--listen-client <host:port>', `address for the public gRPC API (default: ${DEFAULTS['listen-client']})`)
  .option('--advertise-peer <host:port>', 'peer address other nodes are told (default: --listen-peer)')
  .option('--advertise-client <host:port>', 'client address other nodes and clients are told (default: --listen-client)')
  .option('--peers <list>', 'every initial member as id=host:port (peer addresses, this node included); used only on a new data dir')
  .option('--cluster-id <id>', `cluster name; messages and data of another cluster are refused (default: ${DEFAULTS['cluster-id']})`)
  .option('--heartbeat-ms <ms>', `leader heartbeat interval (default: ${DEFAULTS['heartbeat-ms']})`)
  .option('--election-timeout-ms <ms>', `minimum election timeout, randomized up to 2x (default: ${DEFAULTS['election-timeout-ms']})`)
  .option('--log-level <level>', `fatal, error, warn, info, debug, trace or silent (default: ${DEFAULTS['log-level']})`)
  .option('--join', 'on an empty data dir: join an existing cluster (reached through --peers) instead of bootstrapping one')
  .option(
    '--listen-metrics <host:port>',
    'serve the dashboard (/), Prometheus /metrics, /healthz and /readyz over HTTP here (default: off)',
  )
  .option('--drills-dir <dir>', 'the dashboard lists the drill results saved here (default: <data-dir>/drills)')
  .option(
    '--peer-cert <file>',
    "this member's certificate (PEM) for peer traffic; its subjectAltName must include URI urn:leaderd:member:<id>",
  )
  .option('--peer-key <file>', 'private key of --peer-cert (PEM)')
  .option('--peer-ca <file>', 'CA that signs every member certificate; peers use mutual TLS')
  .option('--client-cert <file>', 'certificate (PEM) of the client listener; turns on TLS for clients')
  .option('--client-key <file>', 'private key of --client-cert (PEM)')
  .option('--client-ca <file>', 'require client certificates signed by this CA')
  .option('--insecure', 'allow plaintext listeners on non-loopback addresses (a trusted network only)')
  .option('--auth-token-file <file>', 'JSON file of bearer tokens with roles (read, write, admin) and optional key prefixes')
  .option('--reflection <bool>', 'serve gRPC server reflection on the client listener: true or false (default: true)')
  .option(
    '--on-leader <cmd>',
    'shell command run when this node gains a valid leader lease (SIGTERM, then SIGKILL, if still running when the lease ends)',
  )
  .option('--on-follower <cmd>', 'shell command run when this node loses its leader lease, and at startup once a leader is known')
  .option(
    '--failback-delay-ms <ms>',
    `hand leadership to a member of higher priority once it has been healthy and caught up this long; 0 = no failback (default: ${DEFAULTS['failback-delay-ms']})`,
  )
  .option(
    '--fast-failover <bool>',
    'replace a leader whose process is proven gone (its connection closed cleanly, its address refuses) without waiting out the election timeout: true or false (default: true; false when a proxy stands between members)',
  )
  .option(
    '--failback-anti-flap-ms <ms>',
    `a leader fails back only after leading this long: at most one failback per window (default: ${DEFAULTS['failback-anti-flap-ms']})`,
  );
for (const [flag, { field, help }] of Object.entries(LIMIT_FLAGS))
  startCommand.option(`--${flag} <n>`, `${help} (default: ${DEFAULT_LIMITS[field]})`);
startCommand.action(async (o: Record<string, string | boolean | undefined>) => {
  const flags: Record<string, string> = {};
  const map: Record<string, string> = {
    id: 'id',
    dataDir: 'data-dir',
    listenPeer: 'listen-peer',
    listenClient: 'listen-client',
    advertisePeer: 'advertise-peer',
    advertiseClient: 'advertise-client',
    peers: 'peers',
    clusterId: 'cluster-id',
    heartbeatMs: 'heartbeat-ms',
    electionTimeoutMs: 'election-timeout-ms',
    logLevel: 'log-level',
    listenMetrics: 'listen-metrics',
    drillsDir: 'drills-dir',
    peerCert: 'peer-cert',
    peerKey: 'peer-key',
    peerCa: 'peer-ca',
    clientCert: 'client-cert',
    clientKey: 'client-key',
    clientCa: 'client-ca',
    insecure: 'insecure',
    authTokenFile: 'auth-token-file',
    reflection: 'reflection',
    onLeader: 'on-leader',
    onFollower: 'on-follower',
    failbackDelayMs: 'failback-delay-ms',
    failbackAntiFlapMs: 'failback-anti-flap-ms',
    fastFailover: 'fast-failover',
    ...Object.fromEntries(Object.keys(LIMIT_FLAGS).map((f) => [f.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), f])),
  };
  for (const [k, name] of Object.entries(map)) if (o[k] !== undefined) flags[name] = String(o[k]);
  if ((o as { join?: unknown }).join === true) flags['join'] = 'true';
  await (await start()).runStart({ ...flags, ...(typeof o.config === 'string' ? { config: o.config } : {}) });
});

program
  .command('local')
  .description('run a whole cluster on this machine (one process per node) with a live view')
  .option('--nodes <n>', 'number of nodes, 1 to 5', '3')
  .option('--data-dir <dir>', 'where the nodes keep their data and logs', 'data')
  .option('--base-port <port>', 'node i listens for clients on base+i, peers on base+100+i, metrics on base+200+i', '7000')
  .option('--heartbeat-ms <ms>', 'passed to every node')
  .option('--election-timeout-ms <ms>', 'passed to every node')
  .option(
    '--no-metrics',
    'do not give each node a metrics and dashboard listener (default: node i serves / and /metrics on 127.0.0.1:7200+i)',
  )
  .option('--no-view', 'print leadership changes as lines instead of a live table')
  .option('--tls', 'TLS everywhere: makes a test CA and certificates in <data-dir>/certs (once) and uses them')
  .action(async (o) => (await local()).runLocal(o));

program
  .command('certs')
  .description('certificates for TLS')
  .command('init')
  .description('make a test CA and one certificate per member (plus a client certificate) in --dir')
  .requiredOption('--dir <dir>', 'where to write ca.crt, ca.key, <id>.crt, <id>.key, client.crt, client.key')
  .requiredOption('--nodes <ids>', 'member ids, comma-separated (each certificate names its member)')
  .option('--hosts <list>', 'extra DNS names or IP addresses the member certificates are valid for, comma-separated')
  .option('--client-name <name>', 'name in the client certificate (matched by "cert": true entries of the token file)', 'admin')
  .option('--days <n>', 'validity in days', '365')
  .action(async (o) => (await certs()).runCertsInit(o));

const clientOptions = (c: Command) =>
  c
    .option('--endpoints <list>', `client addresses host:port,... (default: $${ENDPOINTS_ENV}, else the local cluster's)`)
    .option('--json', 'machine-readable output')
    .addOption(
      new Option('--timeout-ms <ms>', 'deadline of each call, retries on other endpoints included').default(String(DEFAULT_TIMEOUT_MS)),
    )
    .addOption(new Option('--cacert <file>', "connect with TLS, trusting this CA (PEM) for the nodes' certificates").env('LEADERD_CACERT'))
    .addOption(new Option('--cert <file>', 'client certificate (PEM) for nodes that require one').env('LEADERD_CERT'))
    .addOption(new Option('--cert-key <file>', 'private key of --cert (PEM)').env('LEADERD_CERT_KEY'))
    .addOption(
      new Option('--token <token>', 'bearer token for nodes with --auth-token-file (prefer the env variable)').env('LEADERD_TOKEN'),
    );

clientOptions(program.command('leader').description('who leads, as seen by the first endpoint that answers')).action(async (o) =>
  (await client()).runLeader(o),
);
clientOptions(program.command('status').description("every member's role, term, leader and log indexes, in a table")).action(async (o) =>
  (await client()).runStatus(o),
);
clientOptions(
  program
    .command('watch')
    .description('stream leadership changes until Ctrl-C; with --key, changes to a key or prefix instead')
    .option('--key <key>', 'watch this key (or, with --prefix, every key under it) instead of the leadership')
    .option('--prefix', 'with --key: every key that starts with it')
    .option('--start-revision <n>', 'with --key: replay changes from revision n (default: from now)')
    .option('--base64', 'with --key: values as base64 instead of UTF-8 text')
    .addHelpText(
      'after',
      '\nExamples:\n  leaderd watch                        leadership changes\n  leaderd watch --key config/ --prefix  PUT/DELETE of every key under config/',
    ),
).action(async (o: { key?: string; prefix?: boolean; startRevision?: string; base64?: boolean; endpoints?: string; json?: boolean }) => {
  if (o.key !== undefined) return (await import('./kv-commands.js')).runWatchKey(o.key, o);
  if (o.prefix || o.startRevision !== undefined || o.base64) throw new UsageError('--prefix, --start-revision and --base64 need --key');
  return (await client()).runWatch(o);
});
addCoordinationCommands(program, clientOptions);
clientOptions(
  program.command('health').description('is every member up and does it see a leader? exit 1 if any is not (like etcdctl endpoint health)'),
).action(async (o) => (await client()).runHealth(o));
const members = () => import('./members-commands.js');
const membersCommand = program
  .command('members')
  .description('list, add, remove or promote members (one at a time)')
  .addHelpText(
    'after',
    `
Examples:
  leaderd members                                   every member: address, voter or learner, role, lag, health
  leaderd members add n4 --peer-address 10.0.0.4:7101 --client-address 10.0.0.4:7001
  leaderd members remove n2                         (if n2 leads, leadership is handed over first)
  leaderd members promote n4                        a learner added with --learner becomes a voter
  leaderd members update n1 --priority 10           n1 leads whenever it is healthy (failback)
  leaderd members update dr1 --priority 0           dr1 never leads (a disaster-recovery replica)`,
  );
clientOptions(
  membersCommand
    .command('list', { isDefault: true })
    .description('the members, each with its own view: role, term, applied index, lag, health'),
).action(async (o) => (await members()).runMembersList(o));
clientOptions(
  membersCommand
    .command('add')
    .description('add a member started with `leaderd start --join`: a learner until caught up, then a voter')
    .argument('<id>', "the new member's --id")
    .option('--peer-address <host:port>', 'its peer address (its --listen-peer or --advertise-peer)')
    .option('--client-address <host:port>', 'its client address (its --listen-client or --advertise-client)')
    .option('--learner', 'keep it a learner: it receives the log but does not vote (promote it later)')
    .option('--priority <n>', 'its preference for leadership, 0 (never leader) to 1000 (default: 1)'),
).action(async (id: string, o) => (await members()).runMembersAdd(id, o));
clientOptions(
  membersCommand
    .command('update')
    .description("change a member's priority (replicated; the leader fails back to a healthy member of higher priority)")
    .argument('<id>', 'the member to change')
    .option('--priority <n>', '0 (never leader: a disaster-recovery replica) to 1000; members start at 1'),
).action(async (id: string, o) => (await members()).runMembersUpdate(id, o));
clientOptions(
  membersCommand
    .command('remove')
    .description('remove a member (a leader hands over leadership first)')
    .argument('<id>', 'the member to remove'),
).action(async (id: string, o) => (await members()).runMembersRemove(id, o));
clientOptions(membersCommand.command('promote').description('make a learner a voter').argument('<id>', 'the learner to promote')).action(
  async (id: string, o) => (await members()).runMembersPromote(id, o),
);
clientOptions(
  program
    .command('transfer')
    .description('switchover: hand leadership to another voter')
    .option('--to <id>', 'target node (default: the most up-to-date follower)'),
).action(async (o) => (await client()).runTransfer(o));

clientOptions(
  program
    .command('drain')
    .description('the member refuses leadership (handing it over if it leads) until undrained; replicated, survives restarts')
    .argument('<id>', 'the member to drain')
    .addHelpText('after', '\nExamples:\n  leaderd drain n1     # before maintenance on n1\n  leaderd undrain n1   # after it'),
).action(async (id: string, o) => (await members()).runDrain(id, true, o));
clientOptions(
  program.command('undrain').description('the member may lead again (see drain)').argument('<id>', 'the member to undrain'),
).action(async (id: string, o) => (await members()).runDrain(id, false, o));

const snapshot = program.command('snapshot').description('back up a live cluster, or seed a new cluster from a backup');
clientOptions(
  snapshot
    .command('save')
    .argument('<file>', 'where to write the backup (atomically: a temp file beside it, then renamed)')
    .description('save a consistent, checksummed snapshot of the cluster (needs an admin token when tokens are on)')
    .addHelpText('after', '\nExamples:\n  leaderd snapshot save /backups/leaderd-$(date +%F).snap'),
).action(async (file: string, o) => (await import('./snapshot-command.js')).runSnapshotSave(file, o));
snapshot
  .command('restore')
  .argument('<file>', 'a file written by snapshot save')
  .description('seed the data dir of one member of a NEW cluster from a backup (run once per member, then start them)')
  .option('--data-dir <dir>', 'the new data dir (must not exist, or be empty)')
  .option('--name <id>', 'the member this data dir is for (--id works too)')
  .option('--id <id>', 'same as --name')
  .option('--peers <list>', 'every member of the new cluster as id=host:port (peer addresses), the same for each member')
  .option('--cluster-id <id>', "the new cluster's id (must differ from the backed-up cluster's)")
  .option('--json', 'machine-readable output')
  .addHelpText(
    'after',
    `
Examples:
  leaderd snapshot restore prod.snap --data-dir /var/lib/leaderd --name a \\
    --peers a=10.0.0.11:7100,b=10.0.0.12:7100,c=10.0.0.13:7100 --cluster-id prod2`,
  )
  .action(async (file: string, o) => (await import('./snapshot-command.js')).runSnapshotRestore(file, o));

program
  .command('recover')
  .description('after losing a majority for good: turn this stopped survivor into a one-member cluster the others then join')
  .option('--data-dir <dir>', "the stopped survivor's data dir (pick the survivor with the most recent log: --dry-run shows it)")
  .option('--dry-run', 'only print the log position and members of the data dir; write nothing')
  .option('--json', 'machine-readable output')
  .addHelpText(
    'after',
    `
Writes acknowledged by the lost majority that this log lacks are lost: recover the survivor whose log
is the most recent (highest term, then highest last entry), and only when the others cannot come back.

Examples:
  leaderd recover --data-dir /var/lib/leaderd --dry-run     on each survivor, to compare
  leaderd recover --data-dir /var/lib/leaderd               on the chosen one, node stopped`,
  )
  .action(async (o) => (await import('./recover-command.js')).runRecover(o));

clientOptions(
  program
    .command('drill')
    .description('rehearse failover: inject a fault over and over under a write load, measure detection, RTO and lost writes')
    .requiredOption(
      '--fault <fault>',
      'kill (kill -9 the leader), pause (SIGSTOP it), isolate (cut it off from its peers: root, network namespaces), transfer (switchover) or restart-follower',
    )
    .option('--trials <n>', 'how many times to inject the fault', '5')
    .option('--html <file>', 'also write a self-contained HTML report (timeline of leadership and write latency)')
    .option('--nodes <n>', "size of the drill's own local cluster, 3 to 5", '3')
    .option('--data-dir <dir>', "keep the drill cluster's data and logs here (default: a temp dir, removed afterwards)")
    .option('--report-dir <dir>', 'save the result as <dir>/drills/<time>.json (default: --data-dir, else ./data)')
    .option('--base-port <port>', 'ports of the drill cluster as in leaderd local (default: free ones)')
    .option('--heartbeat-ms <ms>', 'passed to every node of the drill cluster')
    .option('--election-timeout-ms <ms>', 'passed to every node of the drill cluster')
    .option('--write-interval-ms <ms>', 'start one write every this many ms', '10')
    .addHelpText(
      'after',
      `
Without --endpoints the drill starts its own cluster of real leaderd processes, so it can kill,
pause and restart them; with --endpoints it attaches to a running cluster and only --fault transfer works.
Exit 0 when no acknowledged write was lost, no two nodes led at once and every trial recovered; else 1.

Examples:
  leaderd drill --fault kill --trials 20
  leaderd drill --fault pause --trials 20 --json > pause.json
  leaderd drill --fault transfer --trials 10 --html drill.html`,
    ),
).action(async (o) => (await import('./drill.js')).runDrillCommand(o));

clientOptions(
  program
    .command('probe')
    .description(
      'for orchestrators (HEALTHCHECK, readiness and liveness probes): exit 0 if the first endpoint knows a leader; needs no token',
    )
    .option('--live', 'only check that the node answers (a liveness probe: no leader needed)'),
).action(async (o) => (await client()).runProbe(o));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exit(reportError(err));
}
// Commands that return (the client commands) are done: let pending handles not keep us alive.
if (!['start', 'local', 'watch'].includes(program.args[0] ?? '')) process.exit(EXIT_OK);

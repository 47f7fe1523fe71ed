// `leaderd start`: run one node in this process (no wrapper process, so signals such
// as SIGKILL and SIGSTOP reach the node itself).
import * as grpc from '@grpc/grpc-js';
import { format } from 'node:util';
import { watchFile } from 'node:fs';
import { LeaderdNode, MemberRefusedError } from '../server/node.js';
import { PublicServer } from '../server/public-api.js';
import { CoordinationService } from '../server/coordination.js';
import { KvStore } from '../statemachine/kv-store.js';
import { readConfigFile, resolveStartConfig, type RawSettings } from '../server/config.js';
import { StorageRefusedError } from '../storage/errors.js';
import { createLogger } from './logger.js';
import { CliError, EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME } from './usage.js';
import { bindProblem } from './local-ports.js';

/**
 * A listener that failed to bind, named by its flag. grpc-js says only "No address added
 * out of total 1 resolved"; binding the address once more tells which errno it was.
 */
async function listenFailure(flag: string, address: string, err: unknown): Promise<unknown> {
  const problem = await bindProblem(address);
  switch (problem) {
    case null:
      return err;
    case 'EADDRINUSE':
      return new CliError(
        [`${flag} ${address} is already in use (another leaderd node or program listens there): stop it or choose another port`],
        EXIT_RUNTIME,
      );
    case 'EADDRNOTAVAIL':
      return new CliError(
        [`${flag} ${address}: no such address on this machine (to listen on every interface use 0.0.0.0 and set --advertise-*)`],
        EXIT_RUNTIME,
      );
    case 'EACCES':
      return new CliError([`${flag} ${address}: permission denied (ports below 1024 need privileges)`], EXIT_RUNTIME);
    default:
      return new CliError([`${flag} ${address}: cannot listen (${problem})`], EXIT_RUNTIME);
  }
}
import { NodeMetrics } from '../server/metrics.js';
import { HttpListener } from '../server/http-listener.js';
import { addOperatorRoutes } from '../server/health.js';
import { addDashboardRoutes, type Dashboard } from '../dashboard/routes.js';
import { GrpcPeerStatusSource } from '../dashboard/peer-status.js';
import { DrillRuns } from '../dashboard/drill-runs.js';
import { ConfigError } from '../server/config.js';
import {
  ReloadingCertificates,
  TlsConfigError,
  forwardingChannelCredentials,
  requireMemberCertificate,
  serverCredentials,
} from '../security/tls.js';
import { IP_SERVER_NAME } from '../security/client-credentials.js';
import { AuthConfigError, Authenticator, authInterceptor, readTokenFile } from '../security/auth.js';
import { RoleHooks } from '../server/role-hooks.js';
import { tickSettings } from '../server/node.js';
import { maxSnapshotBytesFor } from '../server/limit-defaults.js';
import { heapGrowingPercent, HEAP_GROWING_PERCENT, mallocTuned, MALLOC_MMAP_THRESHOLD_BYTES, onGlibc } from '../server/memory-tuning.js';

export async function runStart(flags: RawSettings & { config?: string }): Promise<void> {
  const { config: configPath, ...settings } = flags;
  const cfg = resolveStartConfig(settings, configPath ? readConfigFile(configPath) : {});
  const log = createLogger(cfg.logLevel);
  // grpc-js prints its own errors (a port in use, say) on stderr; stderr is for the one
  // line a failed start leaves, so they go to the node's log instead.
  grpc.setLogger({
    error: (...args: unknown[]) => log.warn({ node: cfg.id, grpc: format(...args) }, 'grpc-js'),
  });
  // Memory (server/memory-tuning.ts): both settings can only come from how this process
  // was started, so a node started some other way than by its launchers says so.
  const heapGrowth = heapGrowingPercent();
  const mallocThreshold = process.env['MALLOC_MMAP_THRESHOLD_'] ?? null;
  const missing = [
    ...(onGlibc() && !mallocTuned(process.env) ? [`MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_BYTES} in its environment`] : []),
    ...(heapGrowth === null ? [`node --heap-growing-percent=${HEAP_GROWING_PERCENT}`] : []),
  ];
  if (missing.length > 0)
    log.warn(
      { node: cfg.id },
      `started without ${missing.join(' and ')}: with a large state this node may hold hundreds of MiB more memory than it needs; ` +
        `start it with bin/leaderd (npx leaderd, or the leaderd command), which sets both`,
    );
  log.info({ node: cfg.id, heapGrowingPercent: heapGrowth, mallocThreshold }, 'memory settings');
  // Certificates and tokens are read before anything starts: a bad file is a usage error
  // (one line, exit 2), not a node that runs half-secured.
  let peerTls: ReloadingCertificates | null = null;
  let clientTls: ReloadingCertificates | null = null;
  let auth: Authenticator | null = null;
  try {
    if (cfg.peerTls) peerTls = new ReloadingCertificates(cfg.peerTls, '--peer', log, requireMemberCertificate(cfg.id, '--peer'));
    if (cfg.clientTls) clientTls = new ReloadingCertificates(cfg.clientTls, '--client', log);
    if (cfg.authTokenFile !== null) auth = new Authenticator(readTokenFile(cfg.authTokenFile));
  } catch (err) {
    if (err instanceof TlsConfigError || err instanceof AuthConfigError) throw new ConfigError(err.message);
    throw err;
  }
  const reloadTokens = () => {
    if (auth !== null && cfg.authTokenFile !== null) {
      try {
        auth.replace(readTokenFile(cfg.authTokenFile));
        log.info({ node: cfg.id }, 'token file reloaded');
      } catch (err) {
        log.error({ node: cfg.id, err: (err as Error).message }, 'token file reload failed; keeping the previous tokens');
      }
    }
  };
  const reloadSecrets = () => {
    peerTls?.reload();
    clientTls?.reload();
    reloadTokens();
  };
  // Rotation without a restart: SIGHUP (systemctl reload), or a changed file.
  process.on('SIGHUP', reloadSecrets);
  peerTls?.watch();
  clientTls?.watch();
  if (cfg.authTokenFile !== null)
    watchFile(cfg.authTokenFile, { interval: 2000, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) reloadTokens();
    });
  let node: LeaderdNode;
  let hooks: RoleHooks | null = null;
  const store = new KvStore();
  const metrics = cfg.listenMetrics ? new NodeMetrics({ nodeId: cfg.id, heartbeatMs: cfg.heartbeatMs }) : null;
  try {
    node = await LeaderdNode.start({
      id: cfg.id,
      clusterId: cfg.clusterId,
      dataDir: cfg.dataDir,
      listenPeer: cfg.listenPeer,
      advertisePeer: cfg.advertisePeer,
      advertiseClient: cfg.advertiseClient,
      peers: cfg.peers,
      peerTls: peerTls ?? undefined,
      heartbeatMs: cfg.heartbeatMs,
      electionTimeoutMs: cfg.electionTimeoutMs,
      join: cfg.join,
      core: { maxUncommittedBytes: cfg.limits.maxUncommittedBytes, maxSnapshotBytes: maxSnapshotBytesFor(cfg.limits.quotaBytes) },
      failback: { delayMs: cfg.failbackDelayMs, antiFlapMs: cfg.failbackAntiFlapMs },
      fastFailover: cfg.fastFailover,
      logger: log,
      stateMachine: store,
      ...(metrics ? { observer: metrics } : {}),
      onFatal: (err) => {
        hooks?.close();
        if (err instanceof MemberRefusedError) {
          process.stderr.write(`leaderd: ${err.message}\n`);
          process.exit(EXIT_REFUSED);
        }
        process.exit(EXIT_RUNTIME);
      },
    });
  } catch (err) {
    if (err instanceof StorageRefusedError) {
      log.fatal({ node: cfg.id, dir: cfg.dataDir, kind: err.kind }, err.message);
      process.stderr.write(`leaderd: refusing to start: ${err.message}\n`);
      // Restarting cannot help (the data dir is another's, corrupt or newer): a
      // supervisor must not loop on it (the systemd unit prevents restarts on 2).
      process.exit(EXIT_REFUSED);
    }
    throw await listenFailure('--listen-peer', cfg.listenPeer, err);
  }
  if (cfg.onLeader !== null || cfg.onFollower !== null) {
    const t = tickSettings(cfg.heartbeatMs, cfg.electionTimeoutMs);
    hooks = new RoleHooks(node, {
      commands: { onLeader: cfg.onLeader, onFollower: cfg.onFollower },
      leaseDriftMs: t.leaseDriftTicks * t.tickMs,
      logger: log,
    });
  }
  const server = new PublicServer(
    node,
    log,
    new CoordinationService(node, store, {
      electionTimeoutMs: cfg.electionTimeoutMs,
      logger: log,
      limits: cfg.limits,
      ...(clientTls !== null && peerTls !== null
        ? {
            forwardCredentials: forwardingChannelCredentials(peerTls),
            // The leader's certificate is checked for a member id, not a host name; an IP
            // as TLS server name is not allowed (RFC 6066).
            forwardChannelOptions: { 'grpc.ssl_target_name_override': IP_SERVER_NAME },
          }
        : {}),
    }),
    {
      credentials: serverCredentials(clientTls),
      interceptors: auth ? [authInterceptor(auth, log)] : [],
      reflection: cfg.reflection,
    },
  );
  log.info(
    {
      node: cfg.id,
      peerTls: peerTls !== null,
      clientTls: clientTls !== null,
      clientCerts: cfg.clientTls?.ca !== undefined,
      auth: auth !== null,
    },
    'security settings',
  );
  try {
    const port = await server.listen(cfg.listenClient);
    log.info({ node: cfg.id, client: cfg.listenClient, port }, 'client API listening');
  } catch (err) {
    await node.stop({ transfer: false });
    throw await listenFailure('--listen-client', cfg.listenClient, err);
  }
  let http: HttpListener | null = null;
  let dashboard: Dashboard | null = null;
  if (metrics && cfg.listenMetrics) {
    metrics.attach({ status: () => node.status(), counts: () => store.counts(), quotaBytes: cfg.limits.quotaBytes });
    http = new HttpListener(log);
    addOperatorRoutes(http, { status: () => node.status(), metrics });
    dashboard = addDashboardRoutes(http, {
      nodeId: cfg.id,
      clusterId: cfg.clusterId,
      status: () => node.status(),
      members: () => node.members(),
      onLeaderChange: (l) => node.onLeaderChange(l),
      history: metrics.history,
      registry: metrics.registry,
      // Other members are asked as a follower forwards to the leader: over TLS with this
      // member's certificate when the client port has TLS (which also authenticates it).
      peers:
        clientTls !== null && peerTls !== null
          ? new GrpcPeerStatusSource(forwardingChannelCredentials(peerTls), { 'grpc.ssl_target_name_override': IP_SERVER_NAME })
          : new GrpcPeerStatusSource(),
      drills: new DrillRuns(cfg.drillsDir),
      log,
    });
    try {
      const port = await http.listen(cfg.listenMetrics);
      log.info({ node: cfg.id, metrics: cfg.listenMetrics, port }, 'metrics and dashboard listening (/, /metrics, /healthz, /readyz)');
    } catch (err) {
      dashboard.close();
      await node.stop({ transfer: false });
      await server.close();
      throw err;
    }
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn({ node: cfg.id, signal }, 'second signal: exiting now');
      process.exit(EXIT_RUNTIME);
    }
    stopping = true;
    log.info({ node: cfg.id, signal }, 'shutting down');
    void (async () => {
      await node.stop(); // a leader hands over first
      hooks?.close();
      await server.close();
      dashboard?.close();
      await http?.close();
      process.exit(EXIT_OK);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

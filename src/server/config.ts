// `leaderd start` configuration: defaults < config file < command-line flags.
// Every problem is reported as a ConfigError whose message is one line naming it;
// the CLI prints it and exits with code 2.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_LIMITS, LIMIT_FLAGS, type LimitFlag, type Limits } from './limit-defaults.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface StartConfig {
  readonly id: string;
  readonly dataDir: string;
  readonly listenPeer: string;
  readonly listenClient: string;
  readonly advertisePeer: string;
  readonly advertiseClient: string;
  /** Every initial member's peer address, this node included. */
  readonly peers: ReadonlyMap<string, string>;
  readonly clusterId: string;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly logLevel: string;
  /** host:port of the operator HTTP listener (dashboard, /metrics, /healthz, /readyz); none when unset. */
  readonly listenMetrics: string | null;
  /** Where the dashboard finds saved drill results (`leaderd drill` writes <dir>/drills/<time>.json). */
  readonly drillsDir: string;
  /** Request and resource limits (DEFAULT_LIMITS, with the --max-* / --grant-timeout-ms flags applied). */
  readonly limits: Limits;
  /** On a new data dir: join an existing cluster instead of bootstrapping one (--join). */
  readonly join: boolean;
  /** Mutual TLS between peers (certificate, key, cluster CA); null = plaintext. */
  readonly peerTls: TlsFiles | null;
  /** TLS on the client listener; `ca` set = clients must present a certificate it signed. */
  readonly clientTls: TlsFiles | null;
  /** Allow plaintext listeners on non-loopback addresses. */
  readonly insecure: boolean;
  /** Bearer tokens and roles for the client API; null = open (loopback, trusted network). */
  readonly authTokenFile: string | null;
  /** Serve gRPC server reflection on the client listener. */
  readonly reflection: boolean;
  /** Shell command run when this node gains a valid leader lease (--on-leader); null = none. */
  readonly onLeader: string | null;
  /** Shell command run when this node loses its lease, and at startup once a leader is known (--on-follower). */
  readonly onFollower: string | null;
  /** How long a member of higher priority must be healthy before the leader hands over to it; 0 = no failback. */
  readonly failbackDelayMs: number;
  /** A leader fails back only after leading this long: at most one failback per window. */
  readonly failbackAntiFlapMs: number;
  /** Replace a leader whose process is proven gone (clean close, redial refused) without waiting out the election timeout. */
  readonly fastFailover: boolean;
}

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string | undefined;
}

/** The settings a flag or config file key may carry; keys are the flag names without "--". */
export const SETTINGS = [
  'id',
  'data-dir',
  'listen-peer',
  'listen-client',
  'advertise-peer',
  'advertise-client',
  'peers',
  'cluster-id',
  'heartbeat-ms',
  'election-timeout-ms',
  'log-level',
  'listen-metrics',
  'drills-dir',
  ...(Object.keys(LIMIT_FLAGS) as LimitFlag[]),
  'join',
  'peer-cert',
  'peer-key',
  'peer-ca',
  'client-cert',
  'client-key',
  'client-ca',
  'insecure',
  'auth-token-file',
  'reflection',
  'on-leader',
  'on-follower',
  'failback-delay-ms',
  'failback-anti-flap-ms',
  'fast-failover',
] as const;
export type SettingName = (typeof SETTINGS)[number];
export type RawSettings = Partial<Record<SettingName, string | number | boolean>>;

/**
 * Defaults tuned for fast failover on a LAN: a follower notices a dead leader after
 * 300-600 ms without heartbeats (randomized), and heartbeats every 50 ms leave room for
 * several lost ones before that. See README "Failover time" for the measurements.
 */
export const DEFAULTS = {
  'listen-peer': '127.0.0.1:7101',
  'listen-client': '127.0.0.1:7001',
  'cluster-id': 'leaderd',
  'heartbeat-ms': 50,
  'election-timeout-ms': 300,
  'log-level': 'info',
  'failback-delay-ms': 5000,
  'failback-anti-flap-ms': 60_000,
} as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function parseAddress(value: string, what: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(`${what} must be host:port, got '${value}'`);
  return value;
}

export function parseId(value: string, what: string): string {
  if (!ID_RE.test(value)) throw new ConfigError(`${what} must be 1-63 letters, digits, '.', '_' or '-', got '${value}'`);
  return value;
}

export function parsePeers(value: string): Map<string, string> {
  const peers = new Map<string, string>();
  for (const part of value
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--peers entries must be id=host:port, got '${part}'`);
    const id = parseId(part.slice(0, eq), '--peers node id');
    if (peers.has(id)) throw new ConfigError(`--peers names ${id} twice`);
    peers.set(id, parseAddress(part.slice(eq + 1), `--peers address of ${id}`));
  }
  if (peers.size === 0) throw new ConfigError('--peers is empty');
  return peers;
}

function parseBool(value: string, what: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new ConfigError(`${what} must be true or false, got '${value}'`);
}

/** Whether `address` (host:port) can only be reached from this machine. */
export function isLoopback(address: string): boolean {
  const host = address.slice(0, address.lastIndexOf(':'));
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function parseMs(value: string | number, what: string): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 600_000)
    throw new ConfigError(`${what} must be a whole number of milliseconds from 1 to 600000, got '${value}'`);
  return n;
}

/** Read a JSON config file whose keys are the flag names (e.g. "data-dir"). */
export function readConfigFile(path: string): RawSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  const out: RawSettings = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!(SETTINGS as readonly string[]).includes(k))
      throw new ConfigError(`config file ${path}: unknown setting '${k}' (known: ${SETTINGS.join(', ')})`);
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
      throw new ConfigError(`config file ${path}: '${k}' must be a string, number or boolean`);
    out[k as SettingName] = v;
  }
  return out;
}

/** Merge defaults < file < flags and validate everything. */
export function resolveStartConfig(flags: RawSettings, file: RawSettings = {}): StartConfig {
  const get = (k: SettingName): string | undefined => {
    const v = flags[k] ?? file[k] ?? (DEFAULTS as Record<string, string | number>)[k];
    return v === undefined ? undefined : String(v);
  };
  const idRaw = get('id');
  if (idRaw === undefined) throw new ConfigError("--id is required (this node's name, e.g. --id n1)");
  const id = parseId(idRaw, '--id');
  const listenPeer = parseAddress(get('listen-peer')!, '--listen-peer');
  const listenClient = parseAddress(get('listen-client')!, '--listen-client');
  if (listenPeer === listenClient) throw new ConfigError('--listen-peer and --listen-client must differ');
  const advertisePeer = parseAddress(get('advertise-peer') ?? listenPeer, '--advertise-peer');
  const advertiseClient = parseAddress(get('advertise-client') ?? listenClient, '--advertise-client');
  for (const [flag, addr] of [
    ['--advertise-peer', advertisePeer],
    ['--advertise-client', advertiseClient],
  ] as const) {
    if (/^(0\.0\.0\.0|\[::\]):/.test(addr))
      throw new ConfigError(`${flag} must be an address others can reach, not ${addr} (set it when listening on all interfaces)`);
  }
  const peersRaw = get('peers');
  const peers = peersRaw === undefined ? new Map([[id, advertisePeer]]) : parsePeers(peersRaw);
  if (!peers.has(id)) throw new ConfigError(`--peers must include this node (${id}=${advertisePeer})`);
  const clusterId = get('cluster-id')!;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(clusterId))
    throw new ConfigError(`--cluster-id must be 1-63 letters, digits, '.', '_' or '-', got '${clusterId}'`);
  const heartbeatMs = parseMs(get('heartbeat-ms')!, '--heartbeat-ms');
  const electionTimeoutMs = parseMs(get('election-timeout-ms')!, '--election-timeout-ms');
  if (electionTimeoutMs < 3 * heartbeatMs) {
    throw new ConfigError(
      `--election-timeout-ms (${electionTimeoutMs}) must be at least 3x --heartbeat-ms (${heartbeatMs}) so a few lost heartbeats do not start an election`,
    );
  }
  const logLevel = get('log-level')!;
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got '${logLevel}'`);
  const dataDir = get('data-dir') ?? `data/${id}`;
  const drillsDir = get('drills-dir') ?? join(dataDir, 'drills');
  const joinRaw = get('join');
  if (joinRaw !== undefined && !['true', 'false'].includes(joinRaw)) throw new ConfigError(`join must be true or false, got '${joinRaw}'`);
  const metricsRaw = get('listen-metrics');
  const listenMetrics = metricsRaw === undefined || metricsRaw === '' ? null : parseAddress(metricsRaw, '--listen-metrics');
  if (listenMetrics !== null && (listenMetrics === listenPeer || listenMetrics === listenClient))
    throw new ConfigError('--listen-metrics must differ from --listen-peer and --listen-client');
  const limits: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const [flag, { field }] of Object.entries(LIMIT_FLAGS)) {
    const v = get(flag as SettingName);
    if (v === undefined) continue;
    const n = /^\d+$/.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) throw new ConfigError(`--${flag} must be a positive whole number, got '${v}'`);
    limits[field] = n;
  }

  const [peerCert, peerKey, peerCa] = (['peer-cert', 'peer-key', 'peer-ca'] as const).map(get);
  let peerTls: TlsFiles | null = null;
  if (peerCert !== undefined || peerKey !== undefined || peerCa !== undefined) {
    if (peerCert === undefined || peerKey === undefined || peerCa === undefined)
      throw new ConfigError('--peer-cert, --peer-key and --peer-ca go together: peers use mutual TLS with the cluster CA');
    peerTls = { cert: peerCert, key: peerKey, ca: peerCa };
  }
  const [clientCert, clientKey, clientCa] = (['client-cert', 'client-key', 'client-ca'] as const).map(get);
  let clientTls: TlsFiles | null = null;
  if (clientCert !== undefined || clientKey !== undefined || clientCa !== undefined) {
    if (clientCert === undefined || clientKey === undefined)
      throw new ConfigError('--client-cert and --client-key go together (--client-ca, to require client certificates, needs both)');
    clientTls = { cert: clientCert, key: clientKey, ca: clientCa };
    // A follower forwards writes to the leader's client listener, over TLS verified with
    // the cluster CA and its member certificate.
    if (peerTls === null)
      throw new ConfigError('--client-cert needs peer TLS too (--peer-cert, --peer-key, --peer-ca): members forward client calls over it');
  }
  const insecure = parseBool(get('insecure') ?? 'false', '--insecure');
  // Secure by default: anyone who reaches a plaintext peer port can join the Raft
  // conversation, and a plaintext client port gives away every key.
  for (const [what, addr, tls, flags] of [
    ['peers', listenPeer, peerTls, '--peer-cert, --peer-key and --peer-ca'],
    ['clients', listenClient, clientTls, '--client-cert and --client-key'],
  ] as const) {
    if (tls === null && !insecure && !isLoopback(addr))
      throw new ConfigError(`refusing to listen for ${what} on ${addr} without TLS: give ${flags}, or --insecure on a network you trust`);
  }
  const authTokenFile = get('auth-token-file') ?? null;
  const reflection = parseBool(get('reflection') ?? 'true', '--reflection');
  const hook = (flag: 'on-leader' | 'on-follower'): string | null => {
    const v = get(flag);
    if (v === undefined) return null;
    if (v.trim() === '') throw new ConfigError(`--${flag} needs a shell command, got an empty one`);
    return v;
  };
  const failbackDelayRaw = get('failback-delay-ms')!;
  const failbackDelayMs = failbackDelayRaw.trim() === '0' ? 0 : parseMs(failbackDelayRaw, '--failback-delay-ms (0 disables failback)');
  const failbackAntiFlapMs = parseMs(get('failback-anti-flap-ms')!, '--failback-anti-flap-ms');
  const fastFailover = parseBool(get('fast-failover') ?? 'true', '--fast-failover');
  const onLeader = hook('on-leader');
  const onFollower = hook('on-follower');
  return {
    limits: limits as unknown as Limits,
    id,
    dataDir,
    listenPeer,
    listenClient,
    advertisePeer,
    advertiseClient,
    peers,
    clusterId,
    heartbeatMs,
    electionTimeoutMs,
    logLevel,
    listenMetrics,
    drillsDir,
    join: joinRaw === 'true',
    peerTls,
    clientTls,
    insecure,
    authTokenFile,
    reflection,
    onLeader,
    onFollower,
    failbackDelayMs,
    failbackAntiFlapMs,
    fastFailover,
  };
}

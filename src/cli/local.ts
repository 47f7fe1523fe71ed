// `leaderd local`: a whole N-node cluster on this machine, one child process per node,
// with a live view of each node's role, term, commit index and the leader.
import { NODE_MEMORY_FLAGS, nodeProcessEnv } from '../server/memory-tuning.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import type { ClientSecurity } from '../security/client-credentials.js';
import { join, resolve } from 'node:path';
import { LeaderdClient, type NodeStatus } from '../client/leaderd-client.js';
import { CliError, EXIT_RUNTIME, UsageError } from './usage.js';
import { table } from './client-context.js';
import { ENDPOINTS_ENV } from './client-defaults.js';
import {
  LOCAL_DEFAULT_BASE_PORT,
  LOCAL_MAX_NODES,
  bindProblem,
  localClientAddress,
  localMetricsAddress,
  localPeerAddress,
} from './local-ports.js';

export interface LocalFlags {
  nodes?: string;
  dataDir?: string;
  basePort?: string;
  heartbeatMs?: string;
  electionTimeoutMs?: string;
  view?: boolean;
  metrics?: boolean;
  tls?: boolean;
}

/** What `leaderd local --tls` made in <data-dir>/certs and hands to every node. */
interface LocalSecurity {
  readonly dir: string;
  readonly adminTokenFile: string;
  readonly security: ClientSecurity;
}

/**
 * A test CA, certificates for n1..n5 (so a later run with more nodes still fits) and a
 * token file with one token per role, made once and reused by later runs.
 */
async function localSecurity(base: string): Promise<LocalSecurity> {
  const dir = join(base, 'certs');
  if (!existsSync(join(dir, 'ca.crt'))) {
    // Loaded only here: the X.509 library is heavy and a plain `local` does not need it.
    const { certsInit } = await import('../security/certs.js');
    await certsInit({ dir, nodes: Array.from({ length: LOCAL_MAX_NODES }, (_, i) => `n${i + 1}`) });
  }
  const tokensFile = join(dir, 'tokens.json');
  const adminTokenFile = join(dir, 'admin.token');
  if (!existsSync(tokensFile)) {
    const token = () => randomBytes(24).toString('base64url');
    const admin = token();
    // The admin entry also lets in the client certificate certs init made ("admin").
    const tokens = [
      { name: 'admin', role: 'admin', token: admin, cert: true },
      { name: 'writer', role: 'write', token: token() },
      { name: 'reader', role: 'read', token: token() },
    ];
    writeFileSync(tokensFile, JSON.stringify({ tokens }, null, 2) + '\n', { mode: 0o600 });
    writeFileSync(adminTokenFile, admin + '\n', { mode: 0o600 });
  }
  return {
    dir,
    adminTokenFile,
    security: { ca: readFileSync(join(dir, 'ca.crt')), token: readFileSync(adminTokenFile, 'utf8').trim() },
  };
}

interface Child {
  id: string;
  client: string;
  proc: ChildProcess;
  exited: string | null;
}

/** Colour only on a terminal, and never when NO_COLOR is set to anything but '' (no-color.org). */
export function useColour(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

/** Node `index` (1-based) of an n-node local cluster: ids n1..nN under one data dir, ports from the base. */
export interface LocalNodeSpec {
  readonly index: number;
  readonly nodes: number;
  readonly basePort: number;
  /** Holds <id>/ (the node's data) and <id>.log. */
  readonly dataDir: string;
  readonly metrics: boolean;
  /** <data-dir>/certs made by `local --tls`, or null for plaintext. */
  readonly tlsDir: string | null;
  readonly flags: Pick<LocalFlags, 'heartbeatMs' | 'electionTimeoutMs'>;
  /**
   * Node k's peer and client host (default 127.0.0.1 for both): `leaderd drill --fault
   * isolate` puts each node in its own network namespace, on its own addresses.
   */
  readonly hosts?: (k: number) => { readonly peer: string; readonly client: string };
}

/**
 * The `leaderd start` arguments of one local node. `leaderd drill` starts its cluster with
 * the same arguments, so a drill measures the cluster `leaderd local` runs, and it restarts
 * a killed node with exactly the flags it had.
 */
export function localNodeArgs(spec: LocalNodeSpec): string[] {
  const { index: i, nodes: n, basePort: port } = spec;
  const id = `n${i}`;
  // The port of a local address, on node k's host when the spec places nodes on hosts of their own.
  const on = (k: number, local: string, kind: 'peer' | 'client') =>
    spec.hosts === undefined ? local : `${spec.hosts(k)[kind]}:${local.slice(local.lastIndexOf(':') + 1)}`;
  const peerOf = (k: number) => on(k, localPeerAddress(k, port), 'peer');
  const peers = Array.from({ length: n }, (_, k) => `n${k + 1}=${peerOf(k + 1)}`).join(',');
  const args = [
    'start',
    '--id',
    id,
    '--data-dir',
    join(spec.dataDir, id),
    '--listen-peer',
    peerOf(i),
    '--listen-client',
    on(i, localClientAddress(i, port), 'client'),
    '--peers',
    peers,
    '--cluster-id',
    'local',
  ];
  // Namespaced hosts are off loopback: plaintext there is a deliberate, lab-only choice.
  if (spec.hosts !== undefined && spec.tlsDir === null) args.push('--insecure');
  // The dashboard lists the drills run against this cluster (`leaderd drill` saves them in <data-dir>/drills).
  if (spec.metrics) args.push('--listen-metrics', localMetricsAddress(i, port), '--drills-dir', join(spec.dataDir, 'drills'));
  if (spec.tlsDir !== null) {
    const f = (name: string) => join(spec.tlsDir!, name);
    args.push('--peer-cert', f(`${id}.crt`), '--peer-key', f(`${id}.key`), '--peer-ca', f('ca.crt'));
    args.push('--client-cert', f(`${id}.crt`), '--client-key', f(`${id}.key`));
    args.push('--auth-token-file', f('tokens.json'));
  }
  if (spec.flags.heartbeatMs) args.push('--heartbeat-ms', spec.flags.heartbeatMs);
  if (spec.flags.electionTimeoutMs) args.push('--election-timeout-ms', spec.flags.electionTimeoutMs);
  return args;
}

/**
 * Runs this CLI (or `cli`, a program that embeds it) with `args`, output appended to
 * `logPath`; under `wrapper` when given (a command that execs the rest, like `ip netns exec
 * NS`, so the PID is still the node's).
 */
export function spawnLocalNode(
  args: readonly string[],
  logPath: string,
  wrapper: readonly string[] = [],
  cli: string = process.argv[1]!,
): ChildProcess {
  const fd = openSync(logPath, 'a');
  try {
    // With the memory settings bin/leaderd gives a node (server/memory-tuning.ts).
    const argv = [...wrapper, process.execPath, ...NODE_MEMORY_FLAGS, cli, ...args];
    // Own process group: a terminal's Ctrl-C reaches only this process, which then stops
    // each node once, cleanly (a node treats a second signal as "exit now").
    return spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], detached: true, env: nodeProcessEnv() });
  } finally {
    closeSync(fd);
  }
}

export async function runLocal(flags: LocalFlags): Promise<void> {
  const n = Number(flags.nodes ?? '3');
  if (!Number.isInteger(n) || n < 1 || n > LOCAL_MAX_NODES)
    throw new UsageError(`--nodes must be a whole number from 1 to ${LOCAL_MAX_NODES}, got '${flags.nodes}'`);
  const port = Number(flags.basePort ?? LOCAL_DEFAULT_BASE_PORT);
  if (!Number.isInteger(port) || port < 1 || port + 200 + n > 65535)
    throw new UsageError(`--base-port must be a whole number from 1 to ${65535 - 200 - n}, got '${flags.basePort}'`);
  // A busy port would otherwise surface as a node that exits at once, its reason in its log.
  for (let i = 1; i <= n; i++) {
    const metrics = flags.metrics === false ? [] : [localMetricsAddress(i, port)];
    for (const a of [localClientAddress(i, port), localPeerAddress(i, port), ...metrics]) {
      const problem = await bindProblem(a);
      if (problem === 'EADDRINUSE')
        throw new CliError(
          [`--base-port ${port}: ${a} is already in use (another leaderd local or npm start?); stop it or choose another --base-port`],
          EXIT_RUNTIME,
        );
      if (problem !== null) throw new CliError([`--base-port ${port}: cannot listen on ${a} (${problem})`], EXIT_RUNTIME);
    }
  }
  const colour = useColour(process.stdout);
  const [BOLD, YELLOW, GREEN, RESET] = colour ? ['\x1b[1m', '\x1b[33m', '\x1b[32m', '\x1b[0m'] : ['', '', '', ''];
  const base = resolve(flags.dataDir ?? 'data');
  mkdirSync(base, { recursive: true });
  const sec = flags.tls ? await localSecurity(base) : null;
  const children: Child[] = [];
  for (let i = 1; i <= n; i++) {
    const id = `n${i}`;
    const args = localNodeArgs({
      index: i,
      nodes: n,
      basePort: port,
      dataDir: base,
      metrics: flags.metrics !== false,
      tlsDir: sec?.dir ?? null,
      flags,
    });
    const proc = spawnLocalNode(args, join(base, `${id}.log`));
    const child: Child = { id, client: localClientAddress(i, port), proc, exited: null };
    proc.on('exit', (code, signal) => {
      child.exited = signal ? `killed by ${signal}` : `exited with code ${code}`;
    });
    children.push(child);
  }
  const endpoints = children.map((c) => c.client).join(',');
  const secLines =
    sec === null
      ? ''
      : `  TLS and tokens:   ${sec.dir} (tokens.json: admin, writer, reader)\n  first: export LEADERD_CACERT=${join(sec.dir, 'ca.crt')} LEADERD_TOKEN=$(cat ${sec.adminTokenFile})\n`;
  // Each node serves the dashboard; any one shows the whole cluster (the first is printed
  // alone so a terminal makes it one click).
  const metricsUrls =
    flags.metrics === false
      ? ''
      : `  dashboard:        http://${localMetricsAddress(1, port)}/  (every node serves one: ${children.map((_, i) => localMetricsAddress(i + 1, port).split(':')[1]).join(', ')})\n` +
        `  metrics:          ${children.map((_, i) => `http://${localMetricsAddress(i + 1, port)}/metrics`).join(' ')}\n`;
  process.stdout.write(
    `${BOLD}leaderd local: ${n} nodes${sec ? ' (TLS, tokens)' : ''}${RESET}\n  client endpoints: ${endpoints}\n${metricsUrls}  data and logs:    ${base}\n${secLines}` +
      (port === LOCAL_DEFAULT_BASE_PORT ? `  try: leaderd status\n` : `  try: export ${ENDPOINTS_ENV}=${endpoints}; leaderd status\n`) +
      `  Ctrl-C stops every node.\n\n`,
  );

  const client = new LeaderdClient({
    endpoints: children.map((c) => c.client),
    timeoutMs: 500,
    ...(sec ? { security: sec.security } : {}),
  });
  const events: string[] = [];
  let lastLeader = '';
  let stopping = false;
  const tty = process.stdout.isTTY && flags.view !== false;

  const poll = async () => {
    const statuses = await Promise.all(
      children.map(async (c): Promise<NodeStatus | null> => {
        if (c.exited) return null;
        try {
          return await client.status(c.client);
        } catch {
          return null;
        }
      }),
    );
    const leaders = statuses.filter((s) => s?.role === 'leader');
    const leader = leaders.length > 0 ? `${leaders[0]!.nodeId} (term ${leaders[0]!.term})` : 'none';
    if (leader !== lastLeader) {
      const line = `${new Date().toISOString().slice(11, 23)}  leader: ${lastLeader || '?'} -> ${leader}`;
      events.push(line);
      if (events.length > 8) events.shift();
      if (!tty) process.stdout.write(line + '\n');
      lastLeader = leader;
    }
    if (!tty) return;
    const rows = [['NODE', 'CLIENT', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'LEASE']];
    children.forEach((c, i) => {
      const s = statuses[i];
      if (s) rows.push([c.id, c.client, s.role, String(s.term), s.leaderId || '-', String(s.commitIndex), s.leaseValid ? 'valid' : '-']);
      else rows.push([c.id, c.client, c.exited ?? 'unreachable', '', '', '', '']);
    });
    const body = table(rows)
      .split('\n')
      .map((l) => (/\bleader\b/.test(l) && !l.startsWith('NODE') ? `${GREEN}${l}${RESET}` : l))
      .join('\n');
    process.stdout.write(
      `\x1b[H\x1b[2J${BOLD}leaderd local — ${n} nodes${RESET}   endpoints ${endpoints}   (Ctrl-C to stop)\n\n${body}\n\n${BOLD}leadership changes${RESET}\n` +
        events.map((e, i) => (i === events.length - 1 ? `${YELLOW}${e}${RESET}` : e)).join('\n') +
        '\n',
    );
  };

  const timer = setInterval(() => {
    if (!stopping) void poll();
  }, 250);

  await new Promise<void>((done) => {
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      process.stdout.write('\nstopping every node...\n');
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((res) => {
              if (c.exited) return res();
              const kill = setTimeout(() => c.proc.kill('SIGKILL'), 10_000);
              c.proc.once('exit', () => {
                clearTimeout(kill);
                res();
              });
              c.proc.kill('SIGTERM');
            }),
        ),
      );
      client.close();
      process.stdout.write(children.map((c) => `  ${c.id}: ${c.exited}`).join('\n') + '\n');
      done();
    };
    process.once('SIGINT', () => void stop());
    process.once('SIGTERM', () => void stop());
  });
}

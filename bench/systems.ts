// The clusters the bench starts: leaderd (real `leaderd start` processes) and etcd, each
// three members on 127.0.0.1 with their data under one root on the same disk, plus the
// echo server. Every process is started here, tracked by PID and killed by PID in stop().
import { NODE_MEMORY_FLAGS, nodeProcessEnv } from '../src/server/memory-tuning.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdTarget, leaderdTarget, type EtcdTarget, type KvTarget, type LeaderdTarget } from './clients.js';
import { freePort, waitFor } from './procs.js';

export interface Timing {
  readonly heartbeatMs: number;
  readonly electionMs: number;
}

export interface Agreement {
  readonly leader: string;
  readonly term: number;
}

/** What a benchmark needs from a 3-member cluster, whichever system it is. */
export interface BenchCluster {
  readonly system: 'leaderd' | 'etcd';
  readonly label: string;
  readonly members: readonly string[];
  start(): Promise<void>;
  running(): string[];
  pid(member: string): number | undefined;
  /** A client bound to one member (cached; closed by stop()). */
  target(member: string): KvTarget;
  /** One poll: the leader all of `among` agree on and that says it leads (not `not`), or undefined. */
  agreed(among: readonly string[], not?: string): Promise<Agreement | undefined>;
  /** One poll: every member runs, agrees on one leader, and has applied the same index. */
  whole(): Promise<Agreement | undefined>;
  /**
   * Index applied by `member`'s state machine. `fresh`: ask over a new connection, not a
   * cached channel: a channel to a member that was just killed waits out grpc-js's
   * reconnect backoff (about 1 s) after the member is back, which would be measured as
   * the member's own restart time.
   */
  appliedIndex(member: string, fresh?: boolean): Promise<number>;
  /** leaderd only: the member's /metrics URL. */
  metricsUrl?(member: string): string;
  kill(member: string): Promise<void>;
  restart(member: string): void;
  stop(keep?: boolean): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled CLI, from dist/bench/ (this file compiled) or bench/ run directly after a build. */
const CLI = [resolve(here, '../src/cli/main.js'), resolve(here, '../dist/src/cli/main.js')].find(
  (p) => existsSync(p) && p.includes('dist'),
);

class Procs {
  readonly procs = new Map<string, ChildProcess>();

  spawn(name: string, cmd: string, args: string[], log: string, env?: NodeJS.ProcessEnv): ChildProcess {
    if (this.procs.has(name)) throw new Error(`${name} is already running`);
    const fd = openSync(log, 'a');
    const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd], ...(env ? { env } : {}) });
    closeSync(fd);
    this.procs.set(name, proc);
    proc.once('exit', () => {
      if (this.procs.get(name) === proc) this.procs.delete(name);
    });
    return proc;
  }

  kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.procs.get(name);
    if (!p) return Promise.resolve();
    return new Promise((res) => {
      if (p.exitCode !== null || p.signalCode !== null) return res();
      p.once('exit', () => res());
      p.kill(signal);
    });
  }

  async killAll(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await Promise.all([...this.procs.keys()].map((n) => this.kill(n, signal)));
  }
}

// ---------------------------------------------------------------------------------------

export class LeaderdCluster implements BenchCluster {
  readonly system = 'leaderd';
  readonly members = ['n1', 'n2', 'n3'];
  readonly label: string;
  private readonly procs = new Procs();
  private readonly ports = new Map<string, { peer: number; client: number; metrics: number }>();
  private readonly targets = new Map<string, LeaderdTarget>();

  private constructor(
    private readonly root: string,
    private readonly timing: Timing,
    ports: [string, { peer: number; client: number; metrics: number }][],
    private readonly env: NodeJS.ProcessEnv,
    private readonly extraArgs: readonly string[],
    variant: string,
  ) {
    for (const [n, p] of ports) this.ports.set(n, p);
    this.label = `leaderd ${timing.heartbeatMs}/${timing.electionMs}${variant === '' ? '' : ` ${variant}`}`;
  }

  /** `extraArgs`: more `leaderd start` flags for every member (limits, say); `variant` names them in the label. */
  static async create(
    root: string,
    timing: Timing,
    env: NodeJS.ProcessEnv = process.env,
    extraArgs: readonly string[] = [],
    variant = '',
  ): Promise<LeaderdCluster> {
    if (!CLI) throw new Error('dist/src/cli/main.js not found: run npm run build first');
    mkdirSync(root, { recursive: true });
    const ports: [string, { peer: number; client: number; metrics: number }][] = [];
    for (const n of ['n1', 'n2', 'n3']) ports.push([n, { peer: await freePort(), client: await freePort(), metrics: await freePort() }]);
    return new LeaderdCluster(root, timing, ports, env, extraArgs, variant);
  }

  endpoint(m: string): string {
    return `127.0.0.1:${this.ports.get(m)!.client}`;
  }

  metricsUrl(m: string): string {
    return `http://127.0.0.1:${this.ports.get(m)!.metrics}/metrics`;
  }

  /** The member's peer address, as `members add` wants it. */
  peerAddress(m: string): string {
    return `127.0.0.1:${this.ports.get(m)!.peer}`;
  }

  /** The member's data dir. */
  dataDir(m: string): string {
    return join(this.root, m);
  }

  async start(): Promise<void> {
    for (const m of this.members) this.restart(m);
    await waitFor(`${this.label}: all members agree on a leader`, () => this.whole(), 60_000);
  }

  /** `extra`: more `leaderd start` flags for this start only (`--join` for a member re-added on an empty data dir). */
  restart(m: string, extra: readonly string[] = []): void {
    const p = this.ports.get(m)!;
    const peers = this.members.map((x) => `${x}=127.0.0.1:${this.ports.get(x)!.peer}`).join(',');
    // prettier-ignore
    const args = [CLI!, 'start', '--id', m, '--data-dir', join(this.root, m), '--cluster-id', 'bench',
      '--listen-peer', `127.0.0.1:${p.peer}`, '--listen-client', `127.0.0.1:${p.client}`,
      '--listen-metrics', `127.0.0.1:${p.metrics}`, '--peers', peers, '--log-level', 'info',
      '--heartbeat-ms', String(this.timing.heartbeatMs), '--election-timeout-ms', String(this.timing.electionMs),
      ...this.extraArgs, ...extra];
    this.procs.spawn(
      m,
      process.execPath,
      // leaderd's memory flags first, so LEADERD_NODE_ARGS can override them.
      [...NODE_MEMORY_FLAGS, ...(this.env['LEADERD_NODE_ARGS']?.split(' ').filter(Boolean) ?? []), ...args],
      join(this.root, `${m}.log`),
      // As bin/leaderd and `leaderd local` start a node (src/server/memory-tuning.ts).
      nodeProcessEnv(this.env),
    );
  }

  running(): string[] {
    return [...this.procs.procs.keys()];
  }

  pid(m: string): number | undefined {
    return this.procs.procs.get(m)?.pid;
  }

  target(m: string): LeaderdTarget {
    let t = this.targets.get(m);
    if (!t) this.targets.set(m, (t = leaderdTarget(this.endpoint(m))));
    return t;
  }

  private status(m: string) {
    return this.target(m).status(1000);
  }

  async agreed(among: readonly string[], not?: string): Promise<Agreement | undefined> {
    const st = await Promise.all(among.map((m) => this.status(m)));
    const first = st[0]!;
    if (first.leaderId === '' || first.leaderId === not || !among.includes(first.leaderId)) return undefined;
    if (!st.every((s) => s.leaderId === first.leaderId && s.term === first.term)) return undefined;
    const leader = st.find((s) => s.nodeId === first.leaderId)!;
    return leader.role === 'leader' ? { leader: leader.nodeId, term: leader.term } : undefined;
  }

  async whole(): Promise<Agreement | undefined> {
    if (this.running().length !== this.members.length) return undefined;
    const a = await this.agreed(this.members);
    if (!a) return undefined;
    const st = await Promise.all(this.members.map((m) => this.status(m)));
    const commit = st.find((s) => s.nodeId === a.leader)!.commitIndex;
    return st.every((s) => s.appliedIndex >= commit && s.term === a.term) ? a : undefined;
  }

  async appliedIndex(m: string, fresh = false): Promise<number> {
    if (!fresh) return (await this.status(m)).appliedIndex;
    const once = leaderdTarget(this.endpoint(m));
    try {
      return (await once.status(1000)).appliedIndex;
    } finally {
      once.close();
    }
  }

  kill(m: string): Promise<void> {
    return this.procs.kill(m);
  }

  async stop(keep = false): Promise<void> {
    for (const t of this.targets.values()) t.close();
    this.targets.clear();
    // A V8 CPU profile is written only at a clean exit.
    await this.procs.killAll(this.env['LEADERD_NODE_ARGS']?.includes('--cpu-prof') ? 'SIGTERM' : 'SIGKILL');
    if (!keep) rmSync(this.root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------

/** The etcd binary's version, or why it cannot be used. */
export function probeEtcd(bin: string): { version: string; preVote: boolean } | string {
  if (!existsSync(bin)) return `${bin} not found (Debian: apt-get install -y etcd-server etcd-client)`;
  const v = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const m = /etcd Version:\s*(\S+)/.exec(v.stdout ?? '');
  if (v.status !== 0 || !m) return `${bin} --version failed: ${(v.stderr || v.error?.message || '').trim()}`;
  const help = spawnSync(bin, ['--help'], { encoding: 'utf8', timeout: 10_000 });
  return { version: m[1]!, preVote: `${help.stdout}${help.stderr}`.includes('--pre-vote') };
}

export class EtcdCluster implements BenchCluster {
  readonly system = 'etcd';
  readonly members = ['e1', 'e2', 'e3'];
  readonly label: string;
  private readonly procs = new Procs();
  private readonly ports = new Map<string, { peer: number; client: number }>();
  private readonly targets = new Map<string, EtcdTarget>();
  private readonly ids = new Map<string, string>(); // member name -> raft member id

  private constructor(
    private readonly bin: string,
    private readonly root: string,
    private readonly timing: Timing,
    private readonly preVote: boolean,
    ports: [string, { peer: number; client: number }][],
  ) {
    for (const [n, p] of ports) this.ports.set(n, p);
    this.label = `etcd ${timing.heartbeatMs}/${timing.electionMs}`;
  }

  static async create(bin: string, root: string, timing: Timing, preVote: boolean): Promise<EtcdCluster> {
    mkdirSync(root, { recursive: true });
    const ports: [string, { peer: number; client: number }][] = [];
    for (const n of ['e1', 'e2', 'e3']) ports.push([n, { peer: await freePort(), client: await freePort() }]);
    return new EtcdCluster(bin, root, timing, preVote, ports);
  }

  private url(m: string, kind: 'client' | 'peer'): string {
    return `http://127.0.0.1:${this.ports.get(m)![kind]}`;
  }

  async start(): Promise<void> {
    for (const m of this.members) this.restart(m);
    await waitFor(`${this.label}: all members agree on a leader`, () => this.whole(), 60_000);
  }

  restart(m: string): void {
    // prettier-ignore
    const args = [`--name=${m}`, `--data-dir=${join(this.root, m)}`,
      `--listen-client-urls=${this.url(m, 'client')}`, `--advertise-client-urls=${this.url(m, 'client')}`,
      `--listen-peer-urls=${this.url(m, 'peer')}`, `--initial-advertise-peer-urls=${this.url(m, 'peer')}`,
      `--initial-cluster=${this.members.map((n) => `${n}=${this.url(n, 'peer')}`).join(',')}`,
      // Ignored once the data dir exists, which is how a restart rejoins.
      '--initial-cluster-state=new', `--initial-cluster-token=bench-${process.pid}`,
      `--heartbeat-interval=${this.timing.heartbeatMs}`, `--election-timeout=${this.timing.electionMs}`,
      ...(this.preVote ? ['--pre-vote=true'] : []), '--logger=zap', '--log-level=warn'];
    // ETCD_* variables from the caller's environment would override these flags.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
    this.procs.spawn(m, this.bin, args, join(this.root, `${m}.log`), env);
  }

  running(): string[] {
    return [...this.procs.procs.keys()];
  }

  pid(m: string): number | undefined {
    return this.procs.procs.get(m)?.pid;
  }

  target(m: string): EtcdTarget {
    let t = this.targets.get(m);
    if (!t) this.targets.set(m, (t = etcdTarget(`127.0.0.1:${this.ports.get(m)!.client}`)));
    return t;
  }

  private async statusOf(m: string) {
    const s = await this.target(m).status(1000);
    this.ids.set(m, s.header.memberId);
    return s;
  }

  async agreed(among: readonly string[], not?: string): Promise<Agreement | undefined> {
    const st = await Promise.all(among.map((m) => this.statusOf(m)));
    const first = st[0]!;
    if (first.leader === '0' || !st.every((s) => s.leader === first.leader)) return undefined;
    // Agreement on the leader id only: etcd 3.4 reports as raftTerm the term of the last
    // *applied* entry, which lags a new leader's term until its first entry is applied.
    const leader = [...this.ids].find(([, id]) => id === first.leader)?.[0];
    if (leader === undefined || leader === not || !among.includes(leader)) return undefined;
    return { leader, term: Math.max(...st.map((s) => Number(s.raftTerm))) };
  }

  async whole(): Promise<Agreement | undefined> {
    if (this.running().length !== this.members.length) return undefined;
    const a = await this.agreed(this.members);
    if (!a) return undefined;
    const st = await Promise.all(this.members.map((m) => this.statusOf(m)));
    return st.every((s) => s.raftAppliedIndex === st[0]!.raftAppliedIndex) ? a : undefined;
  }

  async appliedIndex(m: string, fresh = false): Promise<number> {
    if (!fresh) return Number((await this.statusOf(m)).raftAppliedIndex);
    const once = etcdTarget(`127.0.0.1:${this.ports.get(m)!.client}`);
    try {
      return Number((await once.status(1000)).raftAppliedIndex);
    } finally {
      once.close();
    }
  }

  kill(m: string): Promise<void> {
    return this.procs.kill(m);
  }

  async stop(keep = false): Promise<void> {
    for (const t of this.targets.values()) t.close();
    this.targets.clear();
    await this.procs.killAll();
    if (!keep) rmSync(this.root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------

/** The bare grpc-js echo server (bench/echo-server.ts) in its own process. */
export class EchoServer {
  private constructor(
    private readonly proc: ChildProcess,
    readonly port: number,
  ) {}

  static async start(): Promise<EchoServer> {
    const script = [join(here, 'echo-server.js'), resolve(here, '../dist/bench/echo-server.js')].find((p) => existsSync(p));
    if (!script) throw new Error('dist/bench/echo-server.js not found: run npm run build first');
    const proc = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((res, rej) => {
      let out = '';
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /^(\d+)\n/.exec(out);
        if (m) res(Number(m[1]));
      });
      proc.once('exit', (code) => rej(new Error(`echo server exited with ${code}`)));
    });
    return new EchoServer(proc, port);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  target(): KvTarget {
    return leaderdTarget(`127.0.0.1:${this.port}`);
  }

  stop(): Promise<void> {
    return new Promise((res) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return res();
      this.proc.once('exit', () => res());
      this.proc.kill('SIGKILL');
    });
  }
}

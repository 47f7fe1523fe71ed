// Real leaderd processes on 127.0.0.1 for end-to-end tests and benchmarks: the compiled
// CLI (`leaderd start`), real LevelDB in a temp dir, real gRPC. Every process started is
// tracked and killed by PID in stop(), which tests call from afterEach/afterAll so that
// nothing is left behind even when a test fails.
import { NODE_MEMORY_FLAGS, nodeProcessEnv } from '../../src/server/memory-tuning.js';
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, openSync, closeSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClusterClient, type LeaderInfo, type NodeStatus } from '../../src/client/cluster-client.js';
import type { ClientSecurity } from '../../src/security/client-credentials.js';
import { freePort, portFree, sleep, waitFor } from '../../bench/procs.js';

// Shared with the benchmarks (which must not import test code).
export { freePort, portFree, sleep, waitFor };

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled CLI, whether this file runs from test/e2e (vitest) or dist/test/e2e. */
export const CLI =
  [resolve(here, '../../dist/src/cli/main.js'), resolve(here, '../../src/cli/main.js')].find((p) => p.includes('dist') && existsSync(p)) ??
  resolve(here, '../../dist/src/cli/main.js');

/**
 * A base for `leaderd local --base-port` whose ports (base+1..base+nodes for clients,
 * base+101.. for peers, base+201.. for metrics) are all free: drawn below Linux's ephemeral range
 * (32768+), so that freePort() in a test running alongside never hands one of them out.
 */
export async function freeBasePort(nodes: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + 300 * Math.floor(Math.random() * 40);
    const ports = Array.from({ length: nodes }, (_, i) => [base + 1 + i, base + 101 + i, base + 201 + i]).flat();
    let free = true;
    for (const p of ports) if (!(await portFree(`127.0.0.1:${p}`))) free = false;
    if (free) return base;
  }
  throw new Error('no free base port found in 20000-32000 after 50 tries');
}

/** How a process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Resolves when `proc` has exited (at once if it already has); rejects after `timeoutMs`. */
export function exitOf(proc: ChildProcess, timeoutMs = 15_000): Promise<Exit> {
  if (proc.exitCode !== null || proc.signalCode !== null)
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode as NodeJS.Signals | null });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`pid ${proc.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    t.unref();
    proc.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

export interface CliResult extends Exit {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Run the compiled `leaderd` CLI to completion and capture its output. A process still
 * running after `timeoutMs` is killed (by its PID) and the promise rejects, so a command
 * that unexpectedly starts serving cannot hang a test.
 */
export function runCli(
  args: readonly string[],
  opts: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const spawnOpts: SpawnOptions = {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    // LEADERD_ENDPOINTS from the developer's shell must not redirect a test's commands.
    env: { ...process.env, LEADERD_ENDPOINTS: '', ...opts.env },
  };
  const proc = spawn(process.execPath, [CLI, ...args], spawnOpts);
  let stdout = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(
        new Error(
          `leaderd ${args.join(' ')} still running after ${timeoutMs} ms (killed); stdout: ${stdout.slice(0, 500)} stderr: ${stderr.slice(0, 500)}`,
        ),
      );
    }, timeoutMs);
    // 'close' (not 'exit'): every byte of stdout/stderr has been read by then.
    proc.once('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
    proc.once('error', (err) => {
      clearTimeout(t);
      reject(err);
    });
  });
}

/** Whether `pid` is a live process; a zombie (exited, never reaped, e.g. orphaned in a container whose init does not reap) counts as gone. */
export function alive(pid: number): boolean {
  try {
    if (/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return false;
  } catch {
    // no /proc entry: gone (or not Linux; then ask kill below)
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The PIDs that wrote each node's log (every pino line carries "pid"). */
export function pidsInLogs(dir: string, ids: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const id of ids) {
    const p = join(dir, `${id}.log`);
    const pids = new Set<number>();
    if (existsSync(p)) {
      for (const l of lines(readFileSync(p, 'utf8'))) {
        try {
          const pid = (JSON.parse(l) as { pid?: unknown }).pid;
          if (typeof pid === 'number') pids.add(pid);
        } catch {
          // not a JSON log line
        }
      }
    }
    out.set(id, [...pids]);
  }
  return out;
}

/** The non-empty lines of `text`. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

/**
 * Every file under `dir` (relative path -> size and sha256), for checking that a
 * refused start left a directory as it was. `exclude` drops paths by name.
 */
export function dirDigest(dir: string, exclude: (relPath: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (exclude(r)) continue;
      const st = statSync(join(dir, r));
      if (st.isDirectory()) {
        out[`${r}/`] = 'dir';
        walk(r);
      } else {
        out[r] = `${st.size} ${createHash('sha256')
          .update(readFileSync(join(dir, r)))
          .digest('hex')}`;
      }
    }
  };
  walk('');
  return out;
}

export interface NodeSpec {
  readonly id: string;
  readonly peerPort: number;
  readonly clientPort: number;
  readonly dataDir: string;
  readonly logPath: string;
}

export interface ClusterOptions {
  readonly nodes: number;
  readonly clusterId?: string;
  readonly heartbeatMs?: number;
  readonly electionTimeoutMs?: number;
  readonly extraArgs?: readonly string[];
  /** TLS and token the harness's own clients use (for clusters started with TLS or tokens). */
  readonly security?: ClientSecurity;
}

export class LocalCluster {
  readonly root: string;
  readonly specs: NodeSpec[] = [];
  readonly procs = new Map<string, ChildProcess>();
  /** The exit of the latest process started for each node, kept after it exited. */
  readonly exits = new Map<string, Promise<Exit>>();
  readonly clusterId: string;
  private readonly clients = new Map<string, ClusterClient>();

  private constructor(readonly opts: ClusterOptions) {
    this.root = mkdtempSync(join(tmpdir(), 'leaderd-e2e-'));
    this.clusterId = opts.clusterId ?? 'e2e';
  }

  static async create(opts: ClusterOptions): Promise<LocalCluster> {
    const c = new LocalCluster(opts);
    for (let i = 1; i <= opts.nodes; i++) {
      const id = `n${i}`;
      c.specs.push({
        id,
        peerPort: await freePort(),
        clientPort: await freePort(),
        dataDir: join(c.root, id),
        logPath: join(c.root, `${id}.log`),
      });
    }
    return c;
  }

  spec(id: string): NodeSpec {
    const s = this.specs.find((x) => x.id === id);
    if (!s) throw new Error(`no node ${id}`);
    return s;
  }

  peersFlag(): string {
    return this.specs.map((s) => `${s.id}=127.0.0.1:${s.peerPort}`).join(',');
  }

  startArgs(id: string, over: Record<string, string> = {}): string[] {
    const s = this.spec(id);
    const flags: Record<string, string> = {
      '--id': id,
      '--data-dir': s.dataDir,
      '--listen-peer': `127.0.0.1:${s.peerPort}`,
      '--listen-client': `127.0.0.1:${s.clientPort}`,
      '--peers': this.peersFlag(),
      '--cluster-id': this.clusterId,
      '--log-level': 'debug',
      ...(this.opts.heartbeatMs ? { '--heartbeat-ms': String(this.opts.heartbeatMs) } : {}),
      ...(this.opts.electionTimeoutMs ? { '--election-timeout-ms': String(this.opts.electionTimeoutMs) } : {}),
      ...over,
    };
    return ['start', ...Object.entries(flags).flatMap(([k, v]) => (v === '' ? [k] : [k, v])), ...(this.opts.extraArgs ?? [])];
  }

  /** Start (or restart) node `id` as a real process; its output goes to its log file. */
  start(id: string, over: Record<string, string> = {}): ChildProcess {
    if (this.procs.has(id)) throw new Error(`${id} is already running`);
    const fd = openSync(this.spec(id).logPath, 'a');
    // The memory settings bin/leaderd and `leaderd local` give a node (src/server/memory-tuning.ts).
    const proc = spawn(process.execPath, [...NODE_MEMORY_FLAGS, CLI, ...this.startArgs(id, over)], {
      stdio: ['ignore', fd, fd],
      env: nodeProcessEnv(),
    });
    closeSync(fd);
    this.procs.set(id, proc);
    this.exits.set(
      id,
      exitOf(proc, 24 * 3600_000).catch(() => ({ code: null, signal: null })),
    );
    proc.once('exit', () => {
      if (this.procs.get(id) === proc) this.procs.delete(id);
    });
    return proc;
  }

  startAll(): void {
    for (const s of this.specs) this.start(s.id);
  }

  endpoint(id: string): string {
    return `127.0.0.1:${this.spec(id).clientPort}`;
  }

  endpoints(ids: readonly string[] = this.specs.map((s) => s.id)): string[] {
    return ids.map((id) => this.endpoint(id));
  }

  client(id: string): ClusterClient {
    let c = this.clients.get(id);
    if (!c) {
      c = new ClusterClient([this.endpoint(id)], { timeoutMs: 1000, ...(this.opts.security ? { security: this.opts.security } : {}) });
      this.clients.set(id, c);
    }
    return c;
  }

  running(): string[] {
    return [...this.procs.keys()];
  }

  async status(id: string): Promise<NodeStatus> {
    return this.client(id).getStatus(this.endpoint(id));
  }

  async leaderSeenBy(id: string): Promise<LeaderInfo> {
    return this.client(id).getLeader(this.endpoint(id));
  }

  /**
   * Wait until every running node (or `among`) names the same leader in the same term,
   * and that leader says it leads. Returns it.
   */
  async waitForLeader(opts: { among?: readonly string[]; not?: string; timeoutMs?: number } = {}): Promise<LeaderInfo> {
    const among = opts.among ?? this.running();
    const waiting = waitFor(
      `one leader agreed by ${among.join(',')}`,
      async () => {
        const views = await Promise.all(among.map((id) => this.leaderSeenBy(id)));
        const first = views[0]!;
        if (first.leaderId === '' || first.leaderId === opts.not) return undefined;
        if (!views.every((v) => v.leaderId === first.leaderId && v.term === first.term)) return undefined;
        if (!among.includes(first.leaderId)) return undefined;
        const s = await this.status(first.leaderId);
        return s.role === 'leader' && s.term === first.term ? first : undefined;
      },
      opts.timeoutMs ?? 20_000,
    );
    return waiting.catch((err: Error) => {
      // A node that failed to start (a taken port, a refused flag) is the usual cause: name it.
      const exited = among.filter((id) => !this.procs.has(id));
      throw exited.length === 0 ? err : new Error(`${err.message}; exited: ${exited.join(',')}\n${this.logTails(10)}`);
    });
  }

  kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.procs.get(id);
    if (!p) throw new Error(`${id} is not running`);
    return new Promise((res) => {
      if (p.exitCode !== null || p.signalCode !== null) return res();
      p.once('exit', () => res());
      p.kill(signal);
    });
  }

  /** Send `signal` (default SIGTERM: a clean shutdown) and return how the process ended. */
  async terminate(id: string, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<Exit> {
    const p = this.procs.get(id);
    if (!p) throw new Error(`${id} is not running`);
    const exit = exitOf(p, timeoutMs);
    p.kill(signal);
    return exit;
  }

  /** Send a signal without waiting for exit (SIGSTOP/SIGCONT). */
  signal(id: string, signal: NodeJS.Signals): void {
    const p = this.procs.get(id);
    if (!p) throw new Error(`${id} is not running`);
    p.kill(signal);
  }

  /**
   * The last `n` info-or-higher lines of each node's log, for a failed test's output
   * (the temp dir with the full logs is removed by stop()).
   */
  logTails(n = 25): string {
    return this.specs
      .map((s) => {
        let text: string;
        try {
          text = readFileSync(s.logPath, 'utf8');
        } catch {
          return `--- ${s.id}: no log`;
        }
        const info = text.split('\n').filter((l) => l !== '' && !l.startsWith('{"level":20') && !l.startsWith('{"level":10'));
        return `--- ${s.id} (${s.logPath}), last ${Math.min(n, info.length)} of ${info.length} lines at info or above:\n${info.slice(-n).join('\n')}`;
      })
      .join('\n');
  }

  /** Kill every process still running (SIGCONT first so stopped ones can die) and remove the temp dir. */
  async stop(opts: { keepData?: boolean } = {}): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    await Promise.all(
      [...this.procs.entries()].map(async ([id, p]) => {
        try {
          p.kill('SIGCONT');
        } catch {
          // already gone
        }
        await this.kill(id).catch(() => {});
      }),
    );
    if (!opts.keepData) rmSync(this.root, { recursive: true, force: true });
  }
}

// The cluster a drill starts for itself: real `leaderd start` processes with the arguments
// `leaderd local` gives its nodes, in a data dir of the drill's own, on ports nobody else
// holds. It can kill -9, pause and resume and restart a node by id, and it stops every
// process it started (by PID) however the drill ends.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bindProblem, localClientAddress, localPeerAddress } from '../cli/local-ports.js';
import { localNodeArgs, spawnLocalNode } from '../cli/local.js';
import type { DrillTarget } from './drill.js';
import { NetLab } from './netlab.js';

/** In the drill's data dir with isolation: the network namespaces (and `link IF`) it made, one per line. */
export const NETNS_FILE = 'netns';

export interface DrillClusterOptions {
  readonly nodes: number;
  readonly dataDir: string;
  /** Ports base+i (clients) and base+100+i (peers); chosen among free ones when absent. */
  readonly basePort?: number;
  readonly heartbeatMs?: string;
  readonly electionTimeoutMs?: string;
  /**
   * Each node in its own network namespace (NetLab, root): peers meet on one bridge,
   * clients and the drill on another, so a node can be cut off from its peers alone.
   */
  readonly isolation?: boolean;
  /** The leaderd CLI script the nodes run; default: this process's own (`leaderd drill`). */
  readonly cli?: string;
}

interface Node {
  readonly id: string;
  readonly args: readonly string[];
  /** Runs the node inside its namespace (isolation), or nothing. */
  readonly wrapper: readonly string[];
  proc: ChildProcess | null;
  paused: boolean;
}

/**
 * A base whose ports are all free, drawn from 20000-32000 (below Linux's ephemeral range,
 * so a port some client is handed meanwhile cannot take one of them).
 */
export async function freeLocalBasePort(nodes: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + 300 * Math.floor(Math.random() * 40);
    const addrs = Array.from({ length: nodes }, (_, k) => [localClientAddress(k + 1, base), localPeerAddress(k + 1, base)]).flat();
    let free = true;
    for (const a of addrs) if ((await bindProblem(a)) !== null) free = false;
    if (free) return base;
  }
  throw new Error('no free ports for the drill cluster in 20000-32000 after 50 tries; give --base-port');
}

export class DrillLocalCluster implements DrillTarget {
  readonly endpoints: readonly string[];
  readonly ids: readonly string[];
  readonly basePort: number;
  private readonly nodes = new Map<string, Node>();

  private constructor(
    private readonly opts: DrillClusterOptions,
    basePort: number,
    private readonly lab: NetLab | null,
  ) {
    this.basePort = basePort;
    this.ids = Array.from({ length: opts.nodes }, (_, k) => `n${k + 1}`);
    this.endpoints = this.ids.map((id, k) => {
      const local = localClientAddress(k + 1, basePort);
      return lab === null ? local : `${lab.clientAddress(id)}:${local.slice(local.lastIndexOf(':') + 1)}`;
    });
    this.can = { kill: true, pause: true, restart: true, isolate: lab !== null };
  }

  static async start(opts: DrillClusterOptions): Promise<DrillLocalCluster> {
    let lab: NetLab | null = null;
    if (opts.isolation) {
      lab = new NetLab({ clientNet: true });
      try {
        lab.create();
        for (let k = 1; k <= opts.nodes; k++) lab.addHost(`n${k}`, k);
      } catch (err) {
        lab.destroy();
        throw err;
      }
    }
    // Fresh namespaces hold no ports: the default base needs no search there.
    const base = opts.basePort ?? (lab !== null ? 7000 : await freeLocalBasePort(opts.nodes));
    const c = new DrillLocalCluster(opts, base, lab);
    mkdirSync(opts.dataDir, { recursive: true });
    if (lab !== null) {
      // Removed by stop(); listed here for the case nothing in this process can run
      // (kill -9): `ip netns del NAME` for each, and `ip link del` for the interface.
      const { namespaces, hostInterface } = lab.owned();
      writeFileSync(join(opts.dataDir, NETNS_FILE), [...namespaces, ...(hostInterface ? [`link ${hostInterface}`] : [])].join('\n') + '\n');
    }
    c.ids.forEach((id, k) => {
      const args = localNodeArgs({
        index: k + 1,
        nodes: opts.nodes,
        basePort: base,
        dataDir: opts.dataDir,
        metrics: false,
        tlsDir: null,
        flags: {
          ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
          ...(opts.electionTimeoutMs ? { electionTimeoutMs: opts.electionTimeoutMs } : {}),
        },
        ...(lab !== null ? { hosts: (i: number) => ({ peer: lab.address(`n${i}`), client: lab.clientAddress(`n${i}`) }) } : {}),
      });
      const node: Node = { id, args, wrapper: lab?.execIn(id) ?? [], proc: null, paused: false };
      c.nodes.set(id, node);
      c.spawn(node);
    });
    return c;
  }

  endpointOf(id: string): string | undefined {
    const k = this.ids.indexOf(id);
    return k < 0 ? undefined : this.endpoints[k];
  }

  readonly can: DrillTarget['can'];

  private spawn(node: Node): void {
    const proc = spawnLocalNode(node.args, join(this.opts.dataDir, `${node.id}.log`), node.wrapper, this.opts.cli);
    proc.once('exit', () => {
      if (node.proc === proc) node.proc = null;
    });
    node.proc = proc;
  }

  private node(id: string): Node {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id} in the drill cluster`);
    return n;
  }

  /** kill -9, resolved once the process is gone (so a restart cannot race it for its ports and LOCK). */
  async kill(id: string): Promise<void> {
    const n = this.node(id);
    const proc = n.proc;
    if (proc === null) return;
    const gone = new Promise<void>((res) => proc.once('exit', () => res()));
    proc.kill('SIGKILL');
    n.paused = false;
    await gone;
  }

  async restart(id: string): Promise<void> {
    const n = this.node(id);
    if (n.proc !== null) await this.kill(id);
    this.spawn(n);
  }

  async pause(id: string): Promise<void> {
    const n = this.node(id);
    n.proc?.kill('SIGSTOP');
    n.paused = n.proc !== null;
  }

  async resume(id: string): Promise<void> {
    const n = this.node(id);
    n.proc?.kill('SIGCONT');
    n.paused = false;
  }

  async isolate(id: string): Promise<void> {
    if (this.lab === null) throw new Error('isolate needs the cluster started with isolation');
    this.lab.isolate(id);
  }

  async heal(id: string): Promise<void> {
    this.lab?.heal(id);
  }

  /** Refuse node `id`'s peer traffic with TCP resets (see NetLab.reject); needs isolation. */
  reject(id: string, way: 'in' | 'both' | 'none'): void {
    if (this.lab === null) throw new Error('reject needs the cluster started with isolation');
    if (way === 'none') this.lab.unreject(id);
    else this.lab.reject(id, way);
  }

  /** SIGTERM every node (resuming a paused one first), SIGKILL what is left after 5 s; then the namespaces go. */
  async stop(): Promise<void> {
    await Promise.all(
      [...this.nodes.values()].map(async (n) => {
        const proc = n.proc;
        if (proc === null) return;
        const gone = new Promise<void>((res) => proc.once('exit', () => res()));
        if (n.paused) proc.kill('SIGCONT');
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      }),
    );
    this.lab?.destroy();
  }

  /** Synchronous last resort for process exit paths: SIGKILL whatever still runs, remove the namespaces. */
  killAllNow(): void {
    for (const n of this.nodes.values()) n.proc?.kill('SIGKILL');
    this.lab?.destroy();
  }
}

// The cluster a drill starts for itself: real `leaderd start` processes with the arguments
// `leaderd local` gives its nodes, in a data dir of the drill's own, on ports nobody else
// holds. It can kill -9, pause and resume and restart a node by id, and it stops every
// process it started (by PID) however the drill ends.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { bindProblem, localClientAddress, localPeerAddress } from '../cli/local-ports.js';
import { localNodeArgs, spawnLocalNode } from '../cli/local.js';
import type { DrillTarget } from './drill.js';

export interface DrillClusterOptions {
  readonly nodes: number;
  readonly dataDir: string;
  /** Ports base+i (clients) and base+100+i (peers); chosen among free ones when absent. */
  readonly basePort?: number;
  readonly heartbeatMs?: string;
  readonly electionTimeoutMs?: string;
}

interface Node {
  readonly id: string;
  readonly args: readonly string[];
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
  ) {
    this.basePort = basePort;
    this.ids = Array.from({ length: opts.nodes }, (_, k) => `n${k + 1}`);
    this.endpoints = this.ids.map((_, k) => localClientAddress(k + 1, basePort));
  }

  static async start(opts: DrillClusterOptions): Promise<DrillLocalCluster> {
    const base = opts.basePort ?? (await freeLocalBasePort(opts.nodes));
    const c = new DrillLocalCluster(opts, base);
    mkdirSync(opts.dataDir, { recursive: true });
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
      });
      const node: Node = { id, args, proc: null, paused: false };
      c.nodes.set(id, node);
      c.spawn(node);
    });
    return c;
  }

  endpointOf(id: string): string | undefined {
    const k = this.ids.indexOf(id);
    return k < 0 ? undefined : this.endpoints[k];
  }

  readonly can = { kill: true, pause: true, restart: true };

  private spawn(node: Node): void {
    const proc = spawnLocalNode(node.args, join(this.opts.dataDir, `${node.id}.log`));
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

  /** SIGTERM every node (resuming a paused one first), SIGKILL what is left after 5 s. */
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
  }

  /** Synchronous last resort for process exit paths: SIGKILL whatever still runs. */
  killAllNow(): void {
    for (const n of this.nodes.values()) n.proc?.kill('SIGKILL');
  }
}

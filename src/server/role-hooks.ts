// Role hooks: `leaderd start --on-leader CMD` / `--on-follower CMD`, the node-side
// counterpart of keepalived's notify scripts (move a virtual IP, flip a replica to
// primary, page someone).
//
// The leader hook follows the lease, not the Raft role: it starts when this node holds
// a valid lease and is stopped the moment the lease runs out, which is before any other
// node can be elected (followers refuse votes for a full election timeout after hearing
// from the leader; the lease is shorter by the drift margin, thesis §6.4.1). The
// follower hook runs when the lease is lost (by this node's own clock: after a stall
// the runtime delivers the missed ticks first, so a node frozen with SIGSTOP runs it
// as soon as it wakes up), and once at startup when the node first learns of a leader
// other than itself, so a node restarted after it led demotes whatever it promoted.
//
// Hooks never block the Raft loop: each is spawned (`/bin/sh -c CMD`) and watched
// asynchronously; at most one of each runs, a request while one runs is coalesced into
// one pending run; a hook that fails is logged with its exit code, never fatal.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';

export type HookKind = 'leader' | 'follower';
/** Why a hook runs: the node gained its lease, lost it, or learned its first leader after starting. */
export type HookReason = 'lease-acquired' | 'lease-lost' | 'startup';

export interface RoleHookCommands {
  readonly onLeader: string | null;
  readonly onFollower: string | null;
}

/** What the hooks need from the node runtime (LeaderdNode has all of it). */
export interface RoleSource {
  readonly id: string;
  onLeaseChange(listener: (valid: boolean) => void): () => void;
  onLeaderChange(listener: (l: { leaderId: string; term: number }) => void): () => void;
  status(): { term: number; leaderId: string };
  /** How long ago, by the node's own clock, the last lease it held ran out. */
  leaseEndedAgoMs(): number | null;
}

export interface RoleHooksOptions {
  readonly commands: RoleHookCommands;
  /**
   * The lease drift margin (ms): after the lease runs out, the time during which no
   * other node can yet be elected if clocks run at the same rate. A leader hook still
   * running at lease loss gets SIGTERM at once and SIGKILL half-way through what is left
   * of this margin.
   */
  readonly leaseDriftMs: number;
  readonly logger: Logger;
  /** Extra environment for the hooks (tests); the node's own environment is passed on too. */
  readonly env?: NodeJS.ProcessEnv;
}

/** Bytes of a hook's stdout and stderr kept for the log line at its exit (the tail). */
const OUTPUT_TAIL_BYTES = 4096;

interface RunningHook {
  readonly kind: HookKind;
  readonly child: ChildProcess;
  readonly term: number;
  readonly startedAt: number;
  killTimer: NodeJS.Timeout | null;
  terminating: boolean;
  output: string;
}

interface HookRequest {
  readonly reason: HookReason;
  readonly term: number;
  readonly leaderId: string;
  /** Wall-clock ms at which the lease ran out (follower hooks after a loss). */
  readonly leaseEndMs: number | null;
}

export class RoleHooks {
  private readonly running = new Map<HookKind, RunningHook>();
  private readonly pending = new Map<HookKind, HookRequest>();
  private readonly offs: (() => void)[] = [];
  private leaseValid = false;
  private sawLeader = false;
  private closed = false;

  constructor(
    private readonly node: RoleSource,
    private readonly opts: RoleHooksOptions,
  ) {
    this.offs.push(
      node.onLeaseChange((valid) => {
        // Defer past the runtime's observe() (which is calling us) before reading its status.
        queueMicrotask(() => this.leaseChanged(valid));
      }),
      node.onLeaderChange((l) => {
        queueMicrotask(() => this.leaderKnown(l.leaderId, l.term));
      }),
    );
  }

  /** Hooks running now (for tests and status). */
  runningKinds(): HookKind[] {
    return [...this.running.keys()];
  }

  /**
   * Stop listening; a leader hook still running is killed now (the process is about to
   * exit, and no timer would be left to enforce the grace period). A follower hook is
   * left to finish: it is where the demotion happens.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.offs.splice(0)) off();
    this.pending.clear();
    const leader = this.running.get('leader');
    if (leader) this.signal(leader, 'SIGKILL');
  }

  private leaseChanged(valid: boolean): void {
    if (this.closed || valid === this.leaseValid) return;
    this.leaseValid = valid;
    this.sawLeader = true;
    const { term, leaderId } = this.node.status();
    if (valid) {
      this.request('leader', { reason: 'lease-acquired', term, leaderId: this.node.id, leaseEndMs: null });
      return;
    }
    this.pending.delete('leader');
    const ago = this.node.leaseEndedAgoMs() ?? 0;
    const leader = this.running.get('leader');
    if (leader) this.stopLeaderHook(leader, ago);
    this.request('follower', {
      reason: 'lease-lost',
      term,
      leaderId: leaderId === this.node.id ? '' : leaderId,
      leaseEndMs: Date.now() - ago,
    });
  }

  private leaderKnown(leaderId: string, term: number): void {
    if (this.closed || this.sawLeader || leaderId === '' || leaderId === this.node.id) return;
    this.sawLeader = true;
    this.request('follower', { reason: 'startup', term, leaderId, leaseEndMs: null });
  }

  private request(kind: HookKind, req: HookRequest): void {
    const cmd = kind === 'leader' ? this.opts.commands.onLeader : this.opts.commands.onFollower;
    if (cmd === null) return;
    // A leader hook starts only once the previous ones are gone: it must not overlap the
    // demotion a follower hook may still be doing, nor a leader hook of an older term
    // still being stopped. The follower hook waits for nothing: it is what must happen
    // before another node takes over.
    const blocked = this.running.has(kind) || (kind === 'leader' && this.running.has('follower'));
    if (blocked) {
      this.pending.set(kind, req);
      return;
    }
    this.spawnHook(kind, cmd, req);
  }

  private spawnHook(kind: HookKind, cmd: string, req: HookRequest): void {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.opts.env,
      LEADERD_NODE_ID: this.node.id,
      LEADERD_TERM: String(req.term),
      LEADERD_LEADER_ID: req.leaderId,
      LEADERD_ROLE: kind,
      LEADERD_HOOK_REASON: req.reason,
      ...(req.leaseEndMs !== null ? { LEADERD_LEASE_END_MS: String(req.leaseEndMs) } : {}),
    };
    const log = this.opts.logger;
    let child: ChildProcess;
    try {
      // Its own process group, so stopping a hook stops what its shell started too.
      // stdin stays an open pipe: it reaches EOF when this node dies, however it dies.
      child = spawn('/bin/sh', ['-c', cmd], { env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      log.error({ node: this.node.id, hook: kind, err: (err as Error).message }, 'role hook could not start');
      return;
    }
    const hook: RunningHook = { kind, child, term: req.term, startedAt: Date.now(), killTimer: null, terminating: false, output: '' };
    this.running.set(kind, hook);
    const keep = (chunk: Buffer) => {
      hook.output = (hook.output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.stdin?.on('error', () => {});
    child.on('error', (err) => {
      log.error({ node: this.node.id, hook: kind, err: err.message }, 'role hook could not start');
    });
    child.on('close', (code, signal) => this.exited(hook, code, signal));
    log.info({ node: this.node.id, hook: kind, term: req.term, reason: req.reason, pid: child.pid }, 'role hook started');
  }

  private stopLeaderHook(hook: RunningHook, leaseEndedAgoMs: number): void {
    if (hook.terminating) return;
    hook.terminating = true;
    const graceMs = Math.max(0, Math.floor((this.opts.leaseDriftMs - leaseEndedAgoMs) / 2));
    this.opts.logger.warn(
      { node: this.node.id, hook: 'leader', pid: hook.child.pid, term: hook.term, graceMs },
      'lease lost: stopping the leader hook (SIGTERM, then SIGKILL)',
    );
    this.signal(hook, 'SIGTERM');
    if (graceMs === 0) this.signal(hook, 'SIGKILL');
    else hook.killTimer = setTimeout(() => this.signal(hook, 'SIGKILL'), graceMs);
  }

  private signal(hook: RunningHook, sig: NodeJS.Signals): void {
    const pid = hook.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // The group is gone already.
    }
  }

  private exited(hook: RunningHook, code: number | null, signal: NodeJS.Signals | null): void {
    if (hook.killTimer) clearTimeout(hook.killTimer);
    if (this.running.get(hook.kind) === hook) this.running.delete(hook.kind);
    const fields = {
      node: this.node.id,
      hook: hook.kind,
      term: hook.term,
      pid: hook.child.pid,
      code,
      signal,
      ms: Date.now() - hook.startedAt,
      ...(hook.output !== '' ? { output: hook.output } : {}),
    };
    if (code === 0) this.opts.logger.info(fields, 'role hook finished');
    else if (hook.terminating) this.opts.logger.info(fields, 'role hook stopped at lease loss');
    else this.opts.logger.warn(fields, `role hook failed (exit ${code ?? signal})`);
    if (this.closed) return;
    // Run what was asked for meanwhile: a follower hook first, then a leader hook if the
    // lease is (still) held.
    for (const kind of ['follower', 'leader'] as const) {
      const req = this.pending.get(kind);
      if (req === undefined) continue;
      if (kind === 'leader' && (!this.leaseValid || this.node.status().term !== req.term)) {
        this.pending.delete(kind);
        continue;
      }
      if (this.running.has(kind) || (kind === 'leader' && this.running.has('follower'))) continue;
      this.pending.delete(kind);
      const cmd = kind === 'leader' ? this.opts.commands.onLeader : this.opts.commands.onFollower;
      if (cmd !== null) this.spawnHook(kind, cmd, req);
    }
  }
}

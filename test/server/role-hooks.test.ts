// Role hooks against real shell processes, driven by a scripted lease signal: which hook
// runs when, with what environment, how a leader hook that outlives the lease is stopped,
// and that a failing hook is only logged.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RoleHooks, type RoleHookCommands, type RoleSource } from '../../src/server/role-hooks.js';
import { waitFor } from '../e2e/cluster.js';
import { resolveStartConfig } from '../../src/server/config.js';

class ScriptedNode implements RoleSource {
  readonly id = 'n1';
  term = 1;
  leaderId = '';
  endedAgo: number | null = null;
  private readonly lease = new Set<(valid: boolean) => void>();
  private readonly leader = new Set<(l: { leaderId: string; term: number }) => void>();
  onLeaseChange(l: (valid: boolean) => void) {
    this.lease.add(l);
    return () => this.lease.delete(l);
  }
  onLeaderChange(l: (v: { leaderId: string; term: number }) => void) {
    this.leader.add(l);
    return () => this.leader.delete(l);
  }
  status() {
    return { term: this.term, leaderId: this.leaderId };
  }
  leaseEndedAgoMs() {
    return this.endedAgo;
  }
  gainLease(term: number) {
    this.term = term;
    this.leaderId = this.id;
    for (const l of this.lease) l(true);
    for (const l of this.leader) l({ leaderId: this.id, term });
  }
  loseLease(endedAgo = 0) {
    this.endedAgo = endedAgo;
    for (const l of this.lease) l(false);
  }
  learnLeader(leaderId: string, term: number) {
    this.term = term;
    this.leaderId = leaderId;
    for (const l of this.leader) l({ leaderId, term });
  }
}

interface LogLine {
  msg: string;
  hook?: string;
  code?: number | null;
  signal?: string | null;
  graceMs?: number;
}

let dir: string;
let hooks: RoleHooks | null = null;
let logLines: LogLine[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'leaderd-hooks-'));
  logLines = [];
});

afterEach(async () => {
  hooks?.close();
  hooks = null;
  // Let killed hooks be reaped before their directory goes.
  await new Promise((r) => setTimeout(r, 50));
  rmSync(dir, { recursive: true, force: true });
});

function start(node: ScriptedNode, commands: Partial<RoleHookCommands>, leaseDriftMs = 30): RoleHooks {
  const logger = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        logLines.push(JSON.parse(line) as LogLine);
      },
    },
  );
  hooks = new RoleHooks(node, {
    commands: { onLeader: commands.onLeader ?? null, onFollower: commands.onFollower ?? null },
    leaseDriftMs,
    logger,
  });
  return hooks;
}

const record = (file: string) =>
  `echo "$LEADERD_ROLE $LEADERD_NODE_ID $LEADERD_TERM [$LEADERD_LEADER_ID] $LEADERD_HOOK_REASON \${LEADERD_LEASE_END_MS:-none}" >> ${file}`;

function linesOf(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}

describe('role hooks', () => {
  it('runs the leader hook with the lease and the follower hook at its loss, with the node id, term and leader', async () => {
    const node = new ScriptedNode();
    const out = join(dir, 'out');
    const h = start(node, { onLeader: record(out), onFollower: record(out) });
    node.gainLease(4);
    await waitFor('leader hook', () => (linesOf(out).length === 1 ? true : undefined), 5000);
    expect(linesOf(out)).toEqual(['leader n1 4 [n1] lease-acquired none']);
    await waitFor('leader hook exit', () => (h.runningKinds().length === 0 ? true : undefined), 5000);
    const before = Date.now();
    node.loseLease(12);
    await waitFor('follower hook', () => (linesOf(out).length === 2 ? true : undefined), 5000);
    const [role, id, term, leader, reason, endMs] = linesOf(out)[1]!.split(' ');
    expect([role, id, term, leader, reason]).toEqual(['follower', 'n1', '4', '[]', 'lease-lost']);
    // The lease ended 12 ms before the node noticed (a stall), and the hook is told so.
    expect(Number(endMs)).toBeLessThanOrEqual(before - 12 + 50);
    expect(Number(endMs)).toBeGreaterThan(before - 12 - 1000);
  });

  it('runs the follower hook once at startup, when the first leader is another node', async () => {
    const node = new ScriptedNode();
    const out = join(dir, 'out');
    start(node, { onFollower: record(out) });
    node.learnLeader('n2', 3);
    node.learnLeader('n3', 5);
    await waitFor('follower hook', () => (linesOf(out).length >= 1 ? true : undefined), 5000);
    await new Promise((r) => setTimeout(r, 200));
    expect(linesOf(out)).toEqual(['follower n1 3 [n2] startup none']);
  });

  it('stops a leader hook still running at lease loss with SIGTERM, its children included', async () => {
    const node = new ScriptedNode();
    const out = join(dir, 'out');
    // The shell's child (sleep) would outlive a SIGTERM sent to the shell alone.
    const h = start(node, { onLeader: `trap 'echo term >> ${out}; exit 0' TERM; sleep 30 & wait` }, 400);
    node.gainLease(2);
    await waitFor('leader hook running', () => (h.runningKinds().includes('leader') ? true : undefined), 5000);
    await new Promise((r) => setTimeout(r, 100)); // the shell has installed its trap
    node.loseLease(0);
    await waitFor('leader hook stopped', () => (h.runningKinds().length === 0 ? true : undefined), 5000);
    expect(linesOf(out)).toEqual(['term']);
    const stop = logLines.find((l) => l.msg.startsWith('lease lost: stopping the leader hook'));
    expect(stop?.graceMs).toBe(200);
  });

  it('kills a leader hook that ignores SIGTERM within half the drift margin left', async () => {
    const node = new ScriptedNode();
    const h = start(node, { onLeader: `trap '' TERM; while :; do sleep 0.05; done` }, 60);
    node.gainLease(2);
    await waitFor('leader hook running', () => (h.runningKinds().includes('leader') ? true : undefined), 5000);
    await new Promise((r) => setTimeout(r, 100));
    const lostAt = Date.now();
    node.loseLease(20); // 40 ms of the margin left: SIGKILL after 20 ms
    await waitFor('leader hook killed', () => (h.runningKinds().length === 0 ? true : undefined), 5000);
    const exit = logLines.find((l) => l.msg === 'role hook stopped at lease loss');
    expect(exit?.signal).toBe('SIGKILL');
    expect(logLines.find((l) => l.msg.startsWith('lease lost'))?.graceMs).toBe(20);
    // Reaped well within a second even on a loaded machine.
    expect(Date.now() - lostAt).toBeLessThan(1000);
  });

  it('logs a failing hook with its exit code and keeps running hooks afterwards', async () => {
    const node = new ScriptedNode();
    const out = join(dir, 'out');
    const h = start(node, { onLeader: 'exit 3', onFollower: `/nonexistent/cmd; ${record(out)}` });
    node.gainLease(2);
    await waitFor('failed hook logged', () => logLines.find((l) => l.msg === 'role hook failed (exit 3)'), 5000);
    expect(logLines.find((l) => l.msg === 'role hook failed (exit 3)')?.code).toBe(3);
    node.loseLease();
    await waitFor('follower hook', () => (linesOf(out).length === 1 ? true : undefined), 5000);
    await waitFor('all exited', () => (h.runningKinds().length === 0 ? true : undefined), 5000);
  });

  it('runs at most one hook of each kind: requests meanwhile are coalesced into one run', async () => {
    const node = new ScriptedNode();
    const out = join(dir, 'out');
    const h = start(node, { onLeader: record(out), onFollower: `sleep 0.3; ${record(out)}` });
    node.gainLease(2);
    await waitFor('leader hook done', () => (linesOf(out).length === 1 && h.runningKinds().length === 0 ? true : undefined), 5000);
    // A flapping lease: three losses while the first follower hook still runs.
    node.loseLease();
    await waitFor('follower hook running', () => (h.runningKinds().includes('follower') ? true : undefined), 5000);
    for (let t = 3; t <= 5; t++) {
      node.gainLease(t);
      await new Promise((r) => setTimeout(r, 5));
      node.loseLease();
      await new Promise((r) => setTimeout(r, 5));
      expect(h.runningKinds()).toEqual(['follower']);
    }
    await waitFor('hooks settled', () => (linesOf(out).length === 3 && h.runningKinds().length === 0 ? true : undefined), 5000);
    // One follower run for the first loss, one coalesced run for the rest; the leader
    // hooks asked for while a follower hook ran were dropped, as the lease was gone again.
    expect(linesOf(out).map((l) => l.split(' ').slice(0, 3).join(' '))).toEqual(['leader n1 2', 'follower n1 2', 'follower n1 5']);
  });
});

describe('--on-leader / --on-follower settings', () => {
  it('are taken from flags or the config file, and an empty command is refused with one line', () => {
    const cfg = resolveStartConfig({ id: 'n1', 'on-leader': 'ip addr add 10.0.0.5/24 dev eth0' }, { 'on-follower': 'true' });
    expect([cfg.onLeader, cfg.onFollower]).toEqual(['ip addr add 10.0.0.5/24 dev eth0', 'true']);
    expect(resolveStartConfig({ id: 'n1' }).onLeader).toBeNull();
    expect(() => resolveStartConfig({ id: 'n1', 'on-follower': ' ' })).toThrow(/^--on-follower needs a shell command/);
  });
});

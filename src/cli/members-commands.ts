// `leaderd members list|add|remove|promote`: membership over the Cluster RPCs, one member
// at a time. `list` adds what the membership record does not hold: each member's own view
// (role, term, applied index), its lag behind the leader's commit index, and whether it answers.
import type { LeaderdClient, Member, NodeStatus } from '../client/leaderd-client.js';
import { parseAddress, parseId } from '../server/config.js';
import { MAX_PRIORITY } from '../server/member-registry.js';
import { out, parseTimeout, table, withClient, type ClientFlags } from './client-context.js';
import { CliError, EXIT_UNAVAILABLE, UsageError } from './usage.js';

export interface MemberRow {
  readonly id: string;
  readonly peerAddress: string;
  readonly clientAddress: string;
  readonly learner: boolean;
  readonly priority: number;
  readonly drained: boolean;
  /** leader, follower, candidate, learner, or null when it did not answer. */
  readonly role: string | null;
  readonly term: number | null;
  readonly appliedIndex: number | null;
  /** The leader's commit index minus this member's applied index (null when either is unknown). */
  readonly lag: number | null;
  readonly healthy: boolean;
  /** Why it is not healthy: did not answer, knows no leader, refuses a peer. */
  readonly problem?: string;
}

function usageParse<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Each member with its own answer to GetStatus, asked at its client address, all at once. */
async function memberRows(c: LeaderdClient, members: readonly Member[]): Promise<MemberRow[]> {
  const statuses = await Promise.all(
    members.map((m) => (m.clientAddress === '' ? Promise.resolve(null) : c.status(m.clientAddress).catch(() => null))),
  );
  const leader = statuses.find((s): s is NodeStatus => s?.role === 'leader');
  const commit = leader === undefined ? null : Number(leader.commitIndex);
  return members.map((m, i) => {
    const s = statuses[i] ?? null;
    const problem =
      s === null
        ? 'does not answer'
        : s.leaderId === ''
          ? 'knows no leader'
          : s.refusedPeers.length > 0
            ? `refuses or is refused by ${s.refusedPeers.map((p) => p.peerId).join(',')}`
            : undefined;
    return {
      id: m.id,
      peerAddress: m.peerAddress,
      clientAddress: m.clientAddress,
      learner: m.learner,
      priority: m.priority,
      drained: m.drained,
      role: s?.role ?? null,
      term: s === null ? null : Number(s.term),
      appliedIndex: s === null ? null : Number(s.appliedIndex),
      lag: s === null || commit === null ? null : Math.max(0, commit - Number(s.appliedIndex)),
      healthy: problem === undefined,
      ...(problem !== undefined ? { problem } : {}),
    };
  });
}

function printMembers(rows: readonly MemberRow[], json: boolean | undefined): void {
  if (json) return out(JSON.stringify(rows));
  const n = (x: number | null) => (x === null ? '-' : String(x));
  out(
    table([
      ['ID', 'PEER', 'CLIENT', 'VOTER', 'PRIORITY', 'ROLE', 'TERM', 'APPLIED', 'LAG', 'HEALTH'],
      ...rows.map((r) => [
        r.id,
        r.peerAddress,
        r.clientAddress || '-',
        r.learner ? 'learner' : 'voter',
        `${r.priority}${r.priority === 0 ? ' (never leader)' : ''}${r.drained ? ' drained' : ''}`,
        r.role ?? '-',
        n(r.term),
        n(r.appliedIndex),
        n(r.lag),
        r.healthy ? 'ok' : (r.problem ?? 'unhealthy'),
      ]),
    ]),
  );
}

export async function runMembersList(flags: ClientFlags): Promise<void> {
  await withClient(flags, async (c) => printMembers(await memberRows(c, await c.members()), flags.json));
}

/** --priority N: a whole number from 0 to MAX_PRIORITY, or a usage error. */
function parsePriority(value: string): number {
  const n = /^\d{1,4}$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n > MAX_PRIORITY)
    throw new UsageError(`--priority must be a whole number from 0 (never leader) to ${MAX_PRIORITY}, got '${value}'`);
  return n;
}

export async function runMembersAdd(
  id: string,
  flags: ClientFlags & { peerAddress?: string; clientAddress?: string; learner?: boolean; priority?: string },
): Promise<void> {
  usageParse(() => parseId(id, 'member id'));
  const priority = flags.priority === undefined ? undefined : parsePriority(flags.priority);
  if (flags.peerAddress === undefined || flags.clientAddress === undefined)
    throw new UsageError(
      "members add needs --peer-address HOST:PORT and --client-address HOST:PORT (the new member's --listen-peer and --listen-client)",
    );
  const peerAddress = usageParse(() => parseAddress(flags.peerAddress!, '--peer-address'));
  const clientAddress = usageParse(() => parseAddress(flags.clientAddress!, '--client-address'));
  await withClient(flags, async (c) => {
    if (!flags.json)
      process.stderr.write(
        flags.learner ? `adding ${id} as a learner...\n` : `adding ${id}: as a learner until it has caught up, then as a voter...\n`,
      );
    const members = await c.addMember({
      id,
      peerAddress,
      clientAddress,
      learner: flags.learner === true,
      ...(priority !== undefined ? { priority } : {}),
    });
    printMembers(await memberRows(c, members), flags.json);
  });
}

export async function runMembersRemove(id: string, flags: ClientFlags): Promise<void> {
  usageParse(() => parseId(id, 'member id'));
  await withClient(flags, async (c) => {
    const before = await c.members();
    if (!before.some((m) => m.id === id)) throw new UsageError(`${id} is not a member (members: ${before.map((m) => m.id).join(', ')})`);
    // Removing the leader would leave the cluster leaderless until an election timeout;
    // a switchover first costs a few round trips instead (Raft thesis §3.10 then §4.2.2).
    const leader = await c.leader();
    if (leader.leaderId === id) {
      const alive = await c.status(leader.leaderAddress).then(
        () => true,
        () => false,
      );
      if (alive) {
        if (!flags.json) process.stderr.write(`${id} leads: handing leadership to another voter first...\n`);
        const moved = await c.transferLeader('');
        if (moved.leaderId === id) throw new UsageError(`${id} still leads after the transfer; try again (no other voter caught up?)`);
      } else {
        // The dead member was the leader a moment ago and the others still name it until
        // their election timeout: the change can only be made by the leader they elect next.
        if (!flags.json) process.stderr.write(`${id} led and does not answer: waiting for the others to elect a leader...\n`);
        await untilLeaderOtherThan(c, id, parseTimeout(flags) * 6);
      }
    }
    const members = await c.removeMember(id);
    printMembers(await memberRows(c, members), flags.json);
  });
}

async function untilLeaderOtherThan(c: LeaderdClient, id: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const l = await c.leader().catch(() => null);
    if (l !== null && l.leaderId !== '' && l.leaderId !== id) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new CliError(
    [`no member other than ${id} became leader within ${timeoutMs} ms; is a majority of the others up?`],
    EXIT_UNAVAILABLE,
  );
}

export async function runMembersPromote(id: string, flags: ClientFlags): Promise<void> {
  usageParse(() => parseId(id, 'member id'));
  await withClient(flags, async (c) => {
    const members = await c.promoteMember(id);
    printMembers(await memberRows(c, members), flags.json);
  });
}

export async function runMembersUpdate(id: string, flags: ClientFlags & { priority?: string }): Promise<void> {
  usageParse(() => parseId(id, 'member id'));
  if (flags.priority === undefined) throw new UsageError('members update needs --priority N (0 = never leader, default 1)');
  const priority = parsePriority(flags.priority);
  await withClient(flags, async (c) => {
    await requireMember(c, id);
    printMembers(await memberRows(c, await c.updateMember(id, { priority })), flags.json);
  });
}

/**
 * `leaderd drain ID` / `undrain ID`. A drain of the leader returns once leadership has
 * moved (or says why it has not), so a maintenance script can stop the node right after.
 */
export async function runDrain(id: string, drained: boolean, flags: ClientFlags): Promise<void> {
  usageParse(() => parseId(id, 'member id'));
  await withClient(flags, async (c) => {
    await requireMember(c, id);
    // Asked before the change: the leader hands over within a heartbeat of applying it.
    const led = drained && (await c.leader()).leaderId === id;
    const members = await c.updateMember(id, { drained });
    if (led) {
      if (!flags.json) process.stderr.write(`${id} is drained and leads: waiting for it to hand leadership over...\n`);
      await untilLeaderOtherThan(c, id, parseTimeout(flags) * 6);
    }
    printMembers(await memberRows(c, members), flags.json);
  });
}

async function requireMember(c: LeaderdClient, id: string): Promise<void> {
  const members = await c.members();
  if (!members.some((m) => m.id === id)) throw new UsageError(`${id} is not a member (members: ${members.map((m) => m.id).join(', ')})`);
}

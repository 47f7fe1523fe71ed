// Invariant checkers. They sit outside the nodes (TigerBeetle's state checker,
// hashicorp/raft fuzzy/verifier.go): each is a pure function of what the simulator
// observed, returning violations, so each can be fed a broken history in a test.
// The History holds what was observed so far; the simulator records into it only after
// the checks for the same observation have run.
//
// Names of the invariants follow the Raft paper, Figure 3.
import type { Entry, NodeId, Role } from '../../src/raft/types.js';
import { entryAt, snapIndex, termAt, type LogState } from './disk.js';

export type InvariantName =
  | 'election-safety'
  | 'lease-exclusivity'
  | 'disruption'
  | 'commit-rule'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'durability'
  | 'read-linearizability'
  | 'write-outcome'
  | 'lost-incarnation'
  | 'liveness'
  | 'core-contract';

export interface Violation {
  readonly invariant: InvariantName;
  readonly message: string;
}

const latin1 = new TextDecoder('latin1');

/** Identity of an entry's content: two entries with the same key are the same entry. */
export function entryKey(e: Pick<Entry, 'term' | 'type' | 'data'>): string {
  return `${e.term}/${e.type}/${latin1.decode(e.data)}`;
}

export interface CommittedEntry {
  readonly term: number;
  readonly key: string;
  /** The observing node's term when the commit was first seen: every leader of a later term must hold it. */
  readonly observedTerm: number;
  readonly by: NodeId;
}

export interface AppliedEntry {
  readonly key: string;
  readonly by: NodeId;
}

/** What the simulator has observed so far. */
export class History {
  /** Every (term, leader) ever observed (Election Safety). */
  readonly leaders = new Map<number, NodeId>();
  /** (index/term) -> what precedes it and what it holds, as first written anywhere (Log Matching). */
  readonly logEntries = new Map<string, { readonly prevTerm: number; readonly key: string; readonly by: NodeId }>();
  /** index -> the entry committed there (Leader Completeness, Durability). */
  readonly committed = new Map<number, CommittedEntry>();
  /** Highest index known committed anywhere. */
  maxCommitted = 0;
  /** Highest index of a `normal` entry known committed anywhere (what a read must reflect). */
  maxCommittedNormal = 0;
  /** index -> the entry first applied there (State Machine Safety). */
  readonly applied = new Map<number, AppliedEntry>();
  /** Leaders already checked for completeness, as `${term}`. */
  readonly completenessChecked = new Set<number>();
  /** Write (unique value) -> the index it was applied at, as first seen anywhere. */
  readonly writesApplied = new Map<string, { readonly index: number; readonly by: NodeId }>();
  /** Writes the runtime reported as acknowledged: value -> index. */
  readonly writesAcked = new Map<string, number>();
  /** Writes the runtime reported with outcome 'not-applied'. */
  readonly writesNotApplied = new Set<string>();
}

// ---------------------------------------------------------------------------
// Election Safety: at most one leader can be elected in a given term (§5.2).

export interface RoleObservation {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
}

export function checkElectionSafety(h: History, nodes: readonly RoleObservation[]): Violation[] {
  const out: Violation[] = [];
  const now = new Map<number, NodeId>();
  for (const n of nodes) {
    if (n.role !== 'leader') continue;
    const known = h.leaders.get(n.term) ?? now.get(n.term);
    if (known !== undefined && known !== n.id) {
      out.push({ invariant: 'election-safety', message: `two leaders in term ${n.term}: ${known} and ${n.id}` });
    }
    now.set(n.term, n.id);
  }
  return out;
}

export function recordLeaders(h: History, nodes: readonly RoleObservation[]): void {
  for (const n of nodes) if (n.role === 'leader' && !h.leaders.has(n.term)) h.leaders.set(n.term, n.id);
}

// ---------------------------------------------------------------------------
// Lease Exclusivity: no two nodes believe they hold the leader lease at the same
// virtual instant (thesis §6.4.1), given clock drift within the configured bound.

export interface LeaseObservation {
  readonly id: NodeId;
  readonly up: boolean;
  readonly leaseValid: boolean;
}

export function checkLeaseExclusivity(time: number, nodes: readonly LeaseObservation[]): Violation[] {
  const holders = nodes.filter((n) => n.up && n.leaseValid).map((n) => n.id);
  if (holders.length <= 1) return [];
  return [
    {
      invariant: 'lease-exclusivity',
      message: `at t=${Math.floor(time)} ${holders.length} nodes hold a valid lease: ${holders.join(', ')}`,
    },
  ];
}

// ---------------------------------------------------------------------------
// Log Matching: if two logs contain an entry with the same index and term, the logs are
// identical in all entries up through that index (§5.3). Checked by induction as entries
// are written: an (index, term) must always hold the same content and always follow the
// same term at index-1; then equal (index, term) implies equal prefixes.

export interface CampaignObservation {
  readonly id: NodeId;
  readonly up: boolean;
  readonly role: Role;
  readonly term: number;
  readonly leaseValid: boolean;
}

/**
 * No disruption (thesis §9.6 with §6.4): a node campaigns in a new term only after a
 * majority granted its pre-vote, and a node that heard from a leader within an election
 * timeout grants none; so while a leader holds a valid lease (a quorum heard it that
 * recently) nobody reaches a real campaign that would depose it. A leadership transfer
 * voids the old leader's lease before its TimeoutNow leaves, so it passes too.
 */
export function checkNoDisruption(candidate: NodeId, term: number, nodes: readonly CampaignObservation[]): Violation[] {
  const holder = nodes.find((n) => n.up && n.id !== candidate && n.role === 'leader' && n.leaseValid && n.term < term);
  if (holder === undefined) return [];
  return [
    {
      invariant: 'disruption',
      message: `${candidate} campaigns in term ${term} while ${holder.id}, leader of term ${holder.term}, holds a valid lease (its voters should have refused the pre-vote)`,
    },
  ];
}

export function checkLogMatching(h: History, node: NodeId, log: LogState, from: number, to: number): Violation[] {
  const out: Violation[] = [];
  for (let i = Math.max(from, snapIndex(log) + 1); i <= to; i++) {
    const e = entryAt(log, i);
    if (e === undefined) break;
    const prevTerm = termAt(log, i - 1);
    const seen = h.logEntries.get(`${i}/${e.term}`);
    if (seen === undefined) continue;
    if (seen.key !== entryKey(e)) {
      out.push({ invariant: 'log-matching', message: `${node} holds a different entry at ${i}/${e.term} than ${seen.by} did` });
    } else if (prevTerm !== undefined && prevTerm !== seen.prevTerm) {
      out.push({
        invariant: 'log-matching',
        message: `${node} has ${i}/${e.term} after term ${prevTerm} at ${i - 1}, ${seen.by} had it after term ${seen.prevTerm}`,
      });
    }
  }
  return out;
}

export function recordLogEntries(h: History, node: NodeId, log: LogState, from: number, to: number): void {
  for (let i = Math.max(from, snapIndex(log) + 1); i <= to; i++) {
    const e = entryAt(log, i);
    const prevTerm = termAt(log, i - 1);
    if (e === undefined || prevTerm === undefined) break;
    const k = `${i}/${e.term}`;
    if (!h.logEntries.has(k)) h.logEntries.set(k, { prevTerm, key: entryKey(e), by: node });
  }
}

/** Direct form over whole logs, O(n² · length): for tests and post-mortems. */
export function checkLogMatchingFull(logs: readonly { readonly id: NodeId; readonly log: LogState }[]): Violation[] {
  const out: Violation[] = [];
  for (let a = 0; a < logs.length; a++) {
    for (let b = a + 1; b < logs.length; b++) {
      const la = logs[a]!;
      const lb = logs[b]!;
      const lo = Math.max(snapIndex(la.log), snapIndex(lb.log)) + 1;
      const hi = Math.min(la.log.entries.length + snapIndex(la.log), lb.log.entries.length + snapIndex(lb.log));
      // Find the highest index where both agree on the term; everything from lo to it must be equal.
      let top = 0;
      for (let i = hi; i >= lo; i--) {
        if (termAt(la.log, i) === termAt(lb.log, i)) {
          top = i;
          break;
        }
      }
      for (let i = lo; i <= top; i++) {
        const ea = entryAt(la.log, i)!;
        const eb = entryAt(lb.log, i)!;
        if (entryKey(ea) !== entryKey(eb)) {
          out.push({
            invariant: 'log-matching',
            message: `${la.id} and ${lb.id} agree on ${top}/${termAt(la.log, top)} but differ at ${i}`,
          });
          break;
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Leader Completeness: an entry committed in a term is present in the logs of the
// leaders of all higher terms (§5.4). `log` is the leader's log once its first Ready as
// leader was persisted, so it is the whole log the core holds.

export function checkLeaderCompleteness(h: History, leader: NodeId, term: number, log: LogState): Violation[] {
  const out: Violation[] = [];
  const si = snapIndex(log);
  for (const [i, c] of h.committed) {
    if (c.observedTerm >= term || i <= si) continue;
    const e = entryAt(log, i);
    if (e === undefined || entryKey(e) !== c.key) {
      out.push({
        invariant: 'leader-completeness',
        message: `leader ${leader} of term ${term} lacks ${i}/${c.term}, committed (seen by ${c.by} in term ${c.observedTerm}); it has ${
          e ? `${i}/${e.term}` : 'nothing'
        } there`,
      });
      if (out.length >= 3) break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Durability: what is committed stays committed. (a) Two nodes never report different
// entries committed at one index; (b) a node never overwrites an entry at or below its
// own persisted commit index; (c) nothing is applied at a committed index but the
// committed entry (an acknowledged write is never replaced).

/** (a): the node's log at (from, to] is what it now claims committed. */
export function checkCommitAgreement(h: History, node: NodeId, log: LogState, from: number, to: number): Violation[] {
  const out: Violation[] = [];
  for (let i = Math.max(from + 1, snapIndex(log) + 1); i <= to; i++) {
    const e = entryAt(log, i);
    if (e === undefined) {
      out.push({ invariant: 'core-contract', message: `${node} reports commit ${to} but its log ends at ${i - 1}` });
      break;
    }
    const c = h.committed.get(i);
    if (c !== undefined && c.key !== entryKey(e)) {
      out.push({ invariant: 'durability', message: `${node} commits ${i}/${e.term} but ${c.by} committed ${i}/${c.term}` });
    }
  }
  return out;
}

/**
 * Figure 2 with §5.4.2: a leader advances its commit index only to an entry of its own
 * term (counting replicas of an older entry can commit it while a candidate with a
 * newer conflicting entry can still be elected: Figure 8). Checked on what a node that
 * led `term` writes as its commit index in that term. Earlier entries are committed
 * with it, indirectly, and a follower's commit index may point anywhere.
 */
export function checkLeaderCommitRule(h: History, node: NodeId, term: number, log: LogState, commit: number): Violation[] {
  if (h.leaders.get(term) !== node) return [];
  const t = termAt(log, commit);
  if (t === undefined || t === term) return [];
  return [
    {
      invariant: 'commit-rule',
      message: `${node}, leader of term ${term}, sets its commit index to ${commit}, an entry of term ${t}: committed by counting replicas of an earlier term's entry (Figure 8)`,
    },
  ];
}

export function recordCommitted(h: History, node: NodeId, nodeTerm: number, log: LogState, from: number, to: number): void {
  for (let i = Math.max(from + 1, snapIndex(log) + 1); i <= to; i++) {
    const e = entryAt(log, i);
    if (e === undefined) break;
    if (!h.committed.has(i)) h.committed.set(i, { term: e.term, key: entryKey(e), observedTerm: nodeTerm, by: node });
    if (e.type === 'normal' && i > h.maxCommittedNormal) h.maxCommittedNormal = i;
  }
  if (to > h.maxCommitted) h.maxCommitted = to;
}

/** (b): `before` is the node's log before writing `entries`; `commit` its persisted commit index. */
export function checkCommittedNotOverwritten(node: NodeId, before: LogState, commit: number, entries: readonly Entry[]): Violation[] {
  for (const e of entries) {
    if (e.index > commit) break;
    const old = entryAt(before, e.index);
    if (old !== undefined && entryKey(old) !== entryKey(e)) {
      return [
        {
          invariant: 'durability',
          message: `${node} overwrites committed ${e.index}/${old.term} with ${e.index}/${e.term} (its commit is ${commit})`,
        },
      ];
    }
  }
  return [];
}

// ---------------------------------------------------------------------------
// State Machine Safety: if a server has applied a log entry at a given index, no other
// server will ever apply a different entry for that index (§5.4.3). Also (c) above.

export function checkApplied(h: History, node: NodeId, index: number, key: string): Violation[] {
  const out: Violation[] = [];
  const a = h.applied.get(index);
  if (a !== undefined && a.key !== key) {
    out.push({ invariant: 'state-machine-safety', message: `${node} applies ${index} as ${short(key)}; ${a.by} applied ${short(a.key)}` });
  }
  const c = h.committed.get(index);
  if (c !== undefined && c.key !== key) {
    out.push({ invariant: 'durability', message: `${node} applies ${index} as ${short(key)} but ${c.by} committed ${short(c.key)} there` });
  }
  return out;
}

export function recordApplied(h: History, node: NodeId, index: number, key: string): void {
  if (!h.applied.has(index)) h.applied.set(index, { key, by: node });
}

function short(key: string): string {
  return key.length > 40 ? `${key.slice(0, 37)}...` : key;
}

// ---------------------------------------------------------------------------
// Linearizable reads (thesis §6.4): a read index must cover every write committed
// before the read was requested, else the read could miss an acknowledged write.

export function checkReadIndex(node: NodeId, requestId: string, index: number, committedAtRequest: number): Violation[] {
  if (index < 0 || index >= committedAtRequest) return [];
  return [
    {
      invariant: 'read-linearizability',
      message: `${node} read ${requestId} served at index ${index}, but ${committedAtRequest} was committed before it was requested`,
    },
  ];
}

// ---------------------------------------------------------------------------
// Write outcomes (thesis §6.3: each command takes effect exactly once). Every write the
// workload proposes carries a unique value, so the same value at two indexes means the
// write was applied twice. An acknowledged write must be the entry at the index it was
// acknowledged with; a write reported 'not-applied' (the client may safely retry it)
// must never be applied anywhere, before or after the report.

/** `node` applies the write `value` at `index`. */
export function checkWriteApplied(h: History, node: NodeId, value: string, index: number): Violation[] {
  const out: Violation[] = [];
  const seen = h.writesApplied.get(value);
  if (seen !== undefined && seen.index !== index) {
    out.push({
      invariant: 'write-outcome',
      message: `write ${value} applied twice: at ${seen.index} (by ${seen.by}) and at ${index} (by ${node})`,
    });
  }
  if (h.writesNotApplied.has(value)) {
    out.push({ invariant: 'write-outcome', message: `${node} applies write ${value} at ${index}, reported 'not-applied' to its client` });
  }
  const acked = h.writesAcked.get(value);
  if (acked !== undefined && acked !== index) {
    out.push({ invariant: 'write-outcome', message: `${node} applies write ${value} at ${index}, acknowledged at ${acked}` });
  }
  return out;
}

export function recordWriteApplied(h: History, node: NodeId, value: string, index: number): void {
  if (!h.writesApplied.has(value)) h.writesApplied.set(value, { index, by: node });
}

/** The runtime acknowledged `value` as applied at `index` on `node` (which has applied it by now). */
export function checkWriteAcked(h: History, node: NodeId, value: string, index: number): Violation[] {
  const seen = h.writesApplied.get(value);
  if (seen !== undefined && seen.index === index) return [];
  return [
    {
      invariant: 'write-outcome',
      message: `${node} acknowledged write ${value} at ${index}, but ${seen ? `it was applied at ${seen.index}` : 'it was never applied'}`,
    },
  ];
}

/** The runtime reported `value` as 'not-applied'. */
export function checkWriteNotApplied(h: History, node: NodeId, value: string): Violation[] {
  const seen = h.writesApplied.get(value);
  if (seen === undefined) return [];
  return [
    {
      invariant: 'write-outcome',
      message: `${node} reported write ${value} 'not-applied', but ${seen.by} applied it at ${seen.index}`,
    },
  ];
}

// ---------------------------------------------------------------------------
// No voter with a lost incarnation counted: a member whose data dir was lost (wiped,
// replaced, a copy of another member's) comes back with a new incarnation and no memory
// of its votes or of the entries it acknowledged; if its vote or acknowledgement counts
// toward an election or a commit, a quorum may no longer intersect the previous ones
// (thesis §4.1 relies on every voter's persistent state). `admitted` is the incarnation
// the member had when it became a member; `current` the one it runs with now.

export function checkIncarnationCounted(
  member: NodeId,
  admitted: number | undefined,
  current: number,
  counted: string,
  by: NodeId,
): Violation[] {
  if (admitted === undefined || admitted === current) return [];
  return [
    {
      invariant: 'lost-incarnation',
      message: `${by} counted ${counted} from ${member} incarnation ${current}, which lost the data of incarnation ${admitted}`,
    },
  ];
}

// ---------------------------------------------------------------------------
// Liveness: once faults stop, a leader is elected and a proposal commits and is applied
// by every voter within a bound (TigerBeetle's liveness phase).

export interface LivenessOutcome {
  /** Ticks (nominal) from the end of faults until a leader was seen, or null if never. */
  readonly leaderAfterTicks: number | null;
  /**
   * Ticks until a read asked of the leader before the phase wrote anything was served,
   * or null if never. A new leader learns its commit index by committing an entry of its
   * own term (its no-op, §5.4.2); without one, reads wait for a client's write.
   */
  readonly readAfterTicks: number | null;
  /** Ticks until the probe proposal was applied by every voter, or null if never. */
  readonly appliedAfterTicks: number | null;
  readonly boundTicks: number;
  readonly detail: string;
}

export function checkLiveness(o: LivenessOutcome): Violation[] {
  if (o.leaderAfterTicks === null || o.leaderAfterTicks > o.boundTicks) {
    return [{ invariant: 'liveness', message: `no leader within ${o.boundTicks} ticks after faults stopped (${o.detail})` }];
  }
  if (o.readAfterTicks === null || o.readAfterTicks > o.boundTicks * 2) {
    return [
      {
        invariant: 'liveness',
        message: `no read served by the leader within ${o.boundTicks * 2} ticks after faults stopped, before any write (${o.detail})`,
      },
    ];
  }
  if (o.appliedAfterTicks === null || o.appliedAfterTicks > o.boundTicks * 2) {
    return [
      {
        invariant: 'liveness',
        message: `probe proposal not applied by all voters within ${o.boundTicks * 2} ticks after faults stopped (${o.detail})`,
      },
    ];
  }
  return [];
}

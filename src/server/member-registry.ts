// Who the members are, as replicated state owned by the runtime (not by flags).
//
// Scenario that makes this necessary: a node restarted with a different --peers used to
// rebuild its voter set from the flag until the first snapshot or conf change, so
// restarting one node of three with two extra members in --peers made it count five
// voters (issue 7, scenario 2): its majority was no longer the cluster's.
//
// So: the bootstrap membership is persisted with the data the first time (in the batch
// that claims the data dir), and afterwards --peers supplies addresses only. Every later
// change is a conf-change entry whose context carries the member's record; snapshots
// carry the records in a runtime section framing the state machine's own snapshot, so a
// member that installs a snapshot learns them like one that replays the log.
import { encodeConfChange } from '../raft/conf-change.js';
import type { ConfChange, Entry, NodeId, SnapshotData } from '../raft/types.js';

/** What the cluster knows about one member; more fields (a certificate, say) may follow. */
export interface MemberRecord {
  readonly peerAddress: string;
  readonly clientAddress: string;
  /** The incarnation of the member's data dir, when known at the change ('' if not). */
  readonly incarnation: string;
  /**
   * Preference for leadership: the leader hands over to a healthy member of higher
   * priority (failback); 0 = never leader (a disaster-recovery replica). Absent =
   * DEFAULT_PRIORITY; in an updateMember context, absent = unchanged.
   */
  readonly priority?: number;
  /** Drained by an operator: refuses leadership (hands it over if it leads). Absent = false, or unchanged in an update. */
  readonly drained?: boolean;
}

/** Priority of a member whose record names none (every member of a cluster that never set one). */
export const DEFAULT_PRIORITY = 1;
/** Highest priority accepted (a bound so a typo such as 1e9 is refused rather than recorded). */
export const MAX_PRIORITY = 1000;

export function priorityOf(r: MemberRecord | undefined): number {
  return r?.priority ?? DEFAULT_PRIORITY;
}

/** Why a member may not lead, or null when it may. */
export function leadershipRefusal(r: MemberRecord | undefined): 'priority-0' | 'drained' | null {
  if (priorityOf(r) === 0) return 'priority-0';
  if (r?.drained === true) return 'drained';
  return null;
}

/** The membership a data dir was created with: the voters and their peer addresses, or "join". */
export interface Bootstrap {
  /** True for a node started with --join: it takes its membership from the leader. */
  readonly join: boolean;
  readonly members: ReadonlyMap<NodeId, string>;
  /**
   * True when the bootstrap voters are the first entries of the log (data dirs created
   * by this version on); false for data dirs from before, whose log starts with the
   * configuration already in place at index 0.
   */
  readonly inLog: boolean;
}

/** Meta key of the bootstrap membership. */
export const BOOTSTRAP_META = 'bootstrap';

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeBootstrap(b: Bootstrap): Uint8Array {
  return enc.encode(JSON.stringify({ join: b.join, members: [...b.members], inLog: b.inLog }));
}

export function decodeBootstrap(data: Uint8Array): Bootstrap {
  const raw = JSON.parse(dec.decode(data)) as { join?: unknown; members?: unknown; inLog?: unknown };
  if (!Array.isArray(raw.members)) throw new Error('bootstrap membership record: members is not a list');
  const members = new Map<NodeId, string>();
  for (const m of raw.members as unknown[]) {
    if (!Array.isArray(m) || typeof m[0] !== 'string' || typeof m[1] !== 'string')
      throw new Error('bootstrap membership record: malformed member');
    members.set(m[0], m[1]);
  }
  return { join: raw.join === true, members, inLog: raw.inLog === true };
}

/**
 * The first entries of a new cluster's log: one addVoter per bootstrap member, in id
 * order, in term 1, committed (etcd does the same). Every bootstrap member writes the
 * same entries, so their logs agree (Log Matching). Scenario that makes this necessary:
 * with the bootstrap configuration only at index 0, a member added later (leaderd start
 * --join) that is sent the log from index 1 instead of a snapshot rebuilds its
 * configuration from the changes in the log alone: it misses the bootstrap voters, finds
 * itself the only voter and elects itself beside the real leader (the simulator found it,
 * seed 183 with --join-empty). The context is empty so that the entries do not depend on
 * how each member's --peers spells the addresses.
 */
export function bootstrapEntries(members: Iterable<NodeId>): Entry[] {
  return [...members].sort().map((nodeId, i) => ({
    index: i + 1,
    term: 1,
    type: 'conf' as const,
    data: encodeConfChange({ op: 'addVoter', nodeId, context: '' }),
  }));
}

/** A conf change's context: a member record (JSON), or, from before records, a bare peer address. */
export function encodeMemberContext(r: MemberRecord): string {
  return JSON.stringify({
    peerAddress: r.peerAddress,
    clientAddress: r.clientAddress,
    incarnation: r.incarnation,
    ...(r.priority !== undefined ? { priority: r.priority } : {}),
    ...(r.drained !== undefined ? { drained: r.drained } : {}),
  });
}

export function decodeMemberContext(context: string | undefined): MemberRecord | null {
  if (context === undefined || context === '') return null;
  if (!context.startsWith('{')) return { peerAddress: context, clientAddress: '', incarnation: '' };
  try {
    const raw = JSON.parse(context) as Record<string, unknown>;
    const s = (k: string) => (typeof raw[k] === 'string' ? raw[k] : '');
    const { priority, drained } = raw;
    return {
      peerAddress: s('peerAddress'),
      clientAddress: s('clientAddress'),
      incarnation: s('incarnation'),
      ...(Number.isSafeInteger(priority) && (priority as number) >= 0 && (priority as number) <= MAX_PRIORITY
        ? { priority: priority as number }
        : {}),
      ...(typeof drained === 'boolean' ? { drained } : {}),
    };
  } catch {
    return null;
  }
}

/** The records as of the last applied entry. Deterministic: every replica applies the same changes. */
export class MemberRegistry {
  private records = new Map<NodeId, MemberRecord>();

  /** Seed from the bootstrap membership (before any snapshot or conf change). */
  static fromBootstrap(b: Bootstrap): MemberRegistry {
    const r = new MemberRegistry();
    for (const [id, peerAddress] of b.members) r.records.set(id, { peerAddress, clientAddress: '', incarnation: '' });
    return r;
  }

  get(id: NodeId): MemberRecord | undefined {
    return this.records.get(id);
  }

  /** A committed conf change. */
  apply(cc: ConfChange): void {
    if (cc.op === 'removeVoter') {
      this.records.delete(cc.nodeId);
      return;
    }
    const rec = decodeMemberContext(cc.context);
    if (rec === null) return;
    if (cc.op !== 'updateMember') {
      this.records.set(cc.nodeId, rec);
      return;
    }
    // An update names only what it changes; the rest of the record stays.
    const before: MemberRecord = this.records.get(cc.nodeId) ?? { peerAddress: '', clientAddress: '', incarnation: '' };
    const priority = rec.priority ?? before.priority;
    const drained = rec.drained ?? before.drained;
    this.records.set(cc.nodeId, {
      peerAddress: rec.peerAddress || before.peerAddress,
      clientAddress: rec.clientAddress || before.clientAddress,
      incarnation: rec.incarnation || before.incarnation,
      ...(priority !== undefined ? { priority } : {}),
      ...(drained !== undefined ? { drained } : {}),
    });
  }

  /** The records, for status and for the leader's "what is not recorded yet" check. */
  entries(): IterableIterator<[NodeId, MemberRecord]> {
    return this.records.entries();
  }

  encode(): Uint8Array {
    return enc.encode(JSON.stringify([...this.records]));
  }

  restore(data: Uint8Array): void {
    const raw = JSON.parse(dec.decode(data)) as unknown;
    if (!Array.isArray(raw)) throw new Error('member registry: not a list');
    const next = new Map<NodeId, MemberRecord>();
    for (const item of raw as unknown[]) {
      if (!Array.isArray(item) || typeof item[0] !== 'string') throw new Error('member registry: malformed record');
      const rec = decodeMemberContext(JSON.stringify(item[1]));
      if (rec !== null) next.set(item[0], rec);
    }
    this.records = next;
  }
}

// A snapshot is [magic][u32 BE length][runtime section][state machine snapshot]. A
// snapshot without the magic is from before the runtime section: all of it is the state
// machine's, and the registry keeps what bootstrap and the log gave it.
const MAGIC = enc.encode('\u0000leaderd-runtime-v1\u0000');

/** What goes before the state machine's snapshot: the magic, the runtime section's length, the section. */
export function frameHeader(runtime: Uint8Array): Uint8Array {
  const out = new Uint8Array(MAGIC.length + 4 + runtime.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(MAGIC.length, runtime.length);
  out.set(runtime, MAGIC.length + 4);
  return out;
}

/**
 * Reads a snapshot's frame through `data` (a file, say) without reading the rest: the
 * runtime section (null for a snapshot from before it) and where the state machine's
 * snapshot starts.
 */
export function readFrame(data: SnapshotData): { runtime: Uint8Array | null; userStart: number } {
  const head = MAGIC.length + 4;
  if (data.byteLength < head) return { runtime: null, userStart: 0 };
  const h = data.subarray(0, head);
  if (!MAGIC.every((b, i) => h[i] === b)) return { runtime: null, userStart: 0 };
  const len = new DataView(h.buffer, h.byteOffset, h.byteLength).getUint32(MAGIC.length);
  if (head + len > data.byteLength) throw new Error('snapshot: runtime section longer than the snapshot');
  return { runtime: data.subarray(head, head + len), userStart: head + len };
}

// The in-memory Raft log: a snapshot prefix plus the entries after it, with the
// bookkeeping that tells the driver what still has to reach disk.
//
// The core keeps the uncompacted log in memory, so it never waits on storage reads.
// That memory is bounded by the runtime's compaction policy, by bytes as well as by
// entries (a snapshot every so many entries or bytes, a trailing tail bounded both ways)
// and by the leader's bound on uncommitted bytes.
//
// The log may reach back before the latest snapshot: after a snapshot the runtime keeps
// a trailing tail of entries (etcd keeps 5,000), so a follower only slightly behind
// catches up from the log instead of being sent the whole state (thesis §5.1: sending a
// snapshot is costly; the entries are cheap to keep).
import type { ConfState, Entry, Snapshot, SnapshotMeta } from './types.js';
import { applyConfChange, decodeConfChange } from './conf-change.js';
import { invariant } from './invariant.js';

export class RaftLog {
  /** The latest snapshot: covers every index <= snapshot.index. Index 0 / term 0 for a log never compacted. */
  snapshotMeta: SnapshotMeta;
  /**
   * Entries up to and including `offset` are gone (compacted); entries[i] has index
   * offset + 1 + i. offset <= snapshotMeta.index: the gap between them is the tail.
   */
  private offset: number;
  /** Term of the entry at `offset`, so an append right after it can name its predecessor. */
  private offsetTerm: number;
  private entries: Entry[];
  committed: number;
  applied: number;
  /** Entries with index >= unstableFrom have not been handed to storage yet. */
  private unstableFrom: number;
  /**
   * Every entry of this log up to here is on stable storage (the driver reported its
   * write done). Trails unstableFrom while writes are in flight (asyncStorageWrites).
   */
  durable: number;

  constructor(meta: SnapshotMeta, entries: readonly Entry[], committed: number) {
    this.snapshotMeta = meta;
    // Storage may hand back a tail kept from before the snapshot: the first entry held
    // becomes the offset (its term is what an append after it needs).
    const first = entries[0];
    if (first !== undefined && first.index <= meta.index) {
      this.offset = first.index;
      this.offsetTerm = first.term;
      this.entries = entries.slice(1);
    } else {
      this.offset = meta.index;
      this.offsetTerm = meta.term;
      this.entries = [...entries];
    }
    // What storage handed back must be a log: contiguous up to and past its snapshot, the
    // commit index inside it. Anything else is a corrupted or mismatched data dir.
    for (let i = 0; i < this.entries.length; i++) {
      const at = this.entries[i]!.index;
      invariant(at === this.offset + 1 + i, 'initial-state', () => ({ position: i, index: at, expected: this.offset + 1 + i }));
    }
    invariant(this.lastIndex() >= meta.index, 'initial-state', () => ({ lastIndex: this.lastIndex(), snapshot: meta.index }));
    const atSnap = this.entry(meta.index);
    invariant(atSnap === undefined || atSnap.term === meta.term, 'initial-state', () => ({
      index: meta.index,
      term: atSnap?.term,
      snapshotTerm: meta.term,
    }));
    this.committed = Math.max(committed, meta.index);
    invariant(this.committed <= this.lastIndex(), 'initial-state', () => ({ commit: committed, lastIndex: this.lastIndex() }));
    this.applied = meta.index;
    this.unstableFrom = this.lastIndex() + 1;
    this.durable = this.lastIndex();
  }

  /** The first index still held (entries before it were compacted away). */
  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** Term of the entry at `index`, or undefined when it was compacted away or does not exist yet. */
  term(index: number): number | undefined {
    if (index === this.snapshotMeta.index) return this.snapshotMeta.term;
    if (index === this.offset) return this.offsetTerm;
    if (index < this.offset || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offset - 1]!.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.offset || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offset - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Election restriction (§5.4.1): is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries in [lo, hi], cut after `maxBytes` of payload but always at least one.
   * Undefined when lo was compacted away (the caller must send a snapshot).
   */
  slice(lo: number, hi: number, maxBytes = Infinity): Entry[] | undefined {
    if (lo <= this.offset) return undefined;
    hi = Math.min(hi, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= hi; i++) {
      const e = this.entries[i - this.offset - 1]!;
      bytes += e.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    invariant(first === this.lastIndex() + 1, 'log-gap', () => ({ first, lastIndex: this.lastIndex() }));
    for (const e of entries) this.entries.push(e);
  }

  /**
   * The follower side of AppendEntries (Figure 2, receiver steps 3-4): drop any
   * conflicting suffix and append what is new. Caller has checked that
   * (prevLogIndex, prevLogTerm) matches. Returns the entries that changed the log.
   */
  maybeAppend(entries: readonly Entry[]): { appended: readonly Entry[]; truncated: boolean } {
    let i = 0;
    let truncated = false;
    while (i < entries.length) {
      const e = entries[i]!;
      const t = e.index <= this.snapshotMeta.index ? e.term : this.term(e.index);
      if (t === undefined) break; // beyond our last index: append from here
      if (t !== e.term) {
        // Log Matching and Leader Completeness say this cannot happen; if it does, the
        // log on disk is not what was acknowledged and carrying on would lose data.
        invariant(e.index > this.committed, 'committed-entry-conflict', () => ({
          index: e.index,
          term: t,
          leaderTerm: e.term,
          committed: this.committed,
        }));
        this.truncateFrom(e.index);
        truncated = true;
        break;
      }
      i++;
    }
    const appended = entries.slice(i);
    this.append(appended);
    return { appended, truncated };
  }

  private truncateFrom(index: number): void {
    this.entries.length = index - this.offset - 1;
    if (this.unstableFrom > index) this.unstableFrom = index;
    // The disk still holds (or is writing) the replaced entries: they are not ours.
    if (this.durable >= index) this.durable = index - 1;
  }

  /**
   * Fast backtracking (thesis §5.3 note; etcd's findConflictByTerm): the largest index
   * <= `index` whose term is <= `term`. Everything above it is known not to match.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    while (i > this.offset) {
      const t = this.term(i)!;
      if (t <= term) return { index: i, term: t };
      i--;
    }
    return { index: i, term: this.term(i) ?? 0 };
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    invariant(index <= this.lastIndex(), 'commit-beyond-last', () => ({ index, lastIndex: this.lastIndex(), committed: this.committed }));
    this.committed = index;
    return true;
  }

  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex();
  }

  unstableEntries(): Entry[] {
    if (this.unstableFrom > this.lastIndex()) return [];
    return this.entries.slice(this.unstableFrom - this.offset - 1);
  }

  /** Storage was handed everything up to (index, term); only if that entry is still ours. */
  stableTo(index: number, term: number): void {
    if (this.term(index) === term && index >= this.unstableFrom) this.unstableFrom = index + 1;
  }

  /**
   * Storage wrote everything up to (index, term) durably; only if that entry is still
   * ours (a write of entries replaced meanwhile by a new leader's proves nothing about
   * the log as it is now). Writes complete in order, so everything before it is durable too.
   */
  durableTo(index: number, term: number): void {
    if (index > this.durable && this.term(index) === term) this.durable = index;
  }

  committedToApply(): Entry[] {
    if (this.applied >= this.committed) return [];
    return this.slice(this.applied + 1, this.committed) ?? [];
  }

  /**
   * The state machine applied everything up to `index`. Going backwards would re-apply
   * entries (a lock granted twice); past the commit index, it applied something that
   * may yet be replaced.
   */
  appliedTo(index: number): void {
    invariant(index >= this.applied, 'applied-regression', () => ({ index, applied: this.applied }));
    invariant(index <= this.committed, 'applied-beyond-commit', () => ({ index, committed: this.committed }));
    this.applied = index;
  }

  /**
   * The local state machine took a snapshot at `meta.index`: forget the entries up to
   * `compactTo` (<= meta.index), keeping the ones after it as a tail for lagging followers.
   */
  compact(meta: SnapshotMeta, compactTo: number = meta.index): void {
    invariant(meta.index < this.unstableFrom, 'compact-unstable', () => ({ index: meta.index, unstableFrom: this.unstableFrom }));
    invariant(compactTo <= meta.index, 'compact-beyond-applied', () => ({ index: meta.index, compactTo }));
    const to = Math.max(compactTo, this.offset);
    const term = this.term(to)!;
    this.entries = this.entries.slice(to - this.offset);
    this.offset = to;
    this.offsetTerm = term;
    this.snapshotMeta = meta;
  }

  /**
   * Where compaction may cut so that at most `entries` entries, and at most `bytes` of
   * payload, stay before `index` (always at least the entry at `index` itself is dropped
   * when both are 0).
   */
  tailStart(index: number, entries: number, bytes: number): number {
    let to = index;
    let kept = 0;
    while (to > this.offset && index - to < entries) {
      kept += this.entries[to - this.offset - 1]!.data.length;
      if (kept > bytes) break;
      to--;
    }
    return to;
  }

  /** A snapshot from the leader replaces the whole log (extended paper §7, Figure 13 step 7-8). */
  restore(snapshot: Snapshot): void {
    this.snapshotMeta = snapshot.meta;
    this.offset = snapshot.meta.index;
    this.offsetTerm = snapshot.meta.term;
    this.entries = [];
    this.committed = snapshot.meta.index;
    this.unstableFrom = snapshot.meta.index + 1;
    // The disk holds another log until the snapshot's write completes (durableTo then).
    this.durable = 0;
  }

  /** The configuration in force at `upTo` (thesis §4.1: the latest one in the log, committed or not). */
  confAt(upTo: number): { conf: ConfState; index: number } {
    let conf = this.snapshotMeta.conf;
    let index = this.snapshotMeta.index;
    const last = Math.min(upTo, this.lastIndex());
    for (let i = this.snapshotMeta.index + 1; i <= last; i++) {
      const e = this.entries[i - this.offset - 1]!;
      if (e.type === 'conf') {
        conf = applyConfChange(conf, decodeConfChange(e.data));
        index = i;
      }
    }
    return { conf, index };
  }
}

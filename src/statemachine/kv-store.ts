// leaderd's coordination state machine: a key-value store with cluster-wide revisions
// (in the manner of etcd's MVCC store, but keeping only the latest version of each key
// plus a bounded history of changes for watches), leases that own keys, and
// exactly-once sessions. Applied from the Raft log, one committed entry at a time, on
// every node; nothing here reads a clock or does I/O, so all nodes agree.
import type { Entry } from '../raft/types.js';
import { BTree, compareKeys, KeyIndex, NONE, type IndexCapture } from './key-index.js';
import {
  DEFAULT_SESSION_LIMITS,
  resultFromJson,
  resultToJson,
  SessionTable,
  type PreparedSessions,
  type SessionLimits,
} from './sessions.js';
import {
  encodeSnapshot,
  PIECE_BYTES,
  PIECE_KEYS,
  recordBytes,
  SnapshotDecoder,
  snapshotPreludeBytes,
  type SnapshotHeader,
} from './kv-snapshot.js';
import {
  decodeCommand,
  kvBytes,
  kvBytesOf,
  type Command,
  type CommandResult,
  type Compare,
  type Envelope,
  type KeyValue,
  type Op,
  type OpResult,
  type WatchEvent,
} from './commands.js';

interface Lease {
  readonly id: number;
  readonly ttlMs: number;
  readonly keys: Set<string>;
}

export interface HistoryEntry {
  readonly revision: number;
  readonly events: readonly WatchEvent[];
}

export type RevisionListener = (h: HistoryEntry) => void;
/** Called after a snapshot replaced the state: revisions up to the new one may never have been seen here. */
export type RestoreListener = () => void;
interface KeyedListener {
  readonly fn: RevisionListener;
  live: boolean;
}
export type LeaseListener = (change: { type: 'granted'; id: number; ttlMs: number } | { type: 'ended'; id: number }) => void;

export class CompactedError extends Error {
  override readonly name = 'CompactedError';
  constructor(
    readonly requested: number,
    readonly oldest: number,
  ) {
    super(`revision ${requested} is no longer retained; the oldest revision a watch can start from is ${oldest}`);
  }
}

const EMPTY = new Uint8Array(0);
/** How many bare client ids the retired scheme remembered; kept so old logs replay as they applied. */
const LEGACY_MAX_SESSIONS = 10_000;

/** A key of the creation-order index: a queue (election or lock name) holds at most one key per lease. */
type Queued = readonly [createRevision: number, key: string];
const compareQueued = (a: Queued, b: Queued): number => a[0] - b[0] || compareKeys(a[1], b[1]);

export interface KvStoreOptions {
  /** Revisions of change history kept for watches; default 10,000. */
  readonly historyRevisions?: number;
  /** Bytes of values that history may hold (it keeps at least the latest revision); default 64 MiB. */
  readonly historyBytes?: number;
  /** Bounds of the exactly-once sessions and their cached answers (sessions.ts). */
  readonly sessions?: Partial<SessionLimits>;
  /**
   * Keys under this prefix are also kept in creation order per parent ("directory", up to
   * the last '/'), so `oldest()` finds an election's leader or a lock's holder without
   * scanning the queue; default '_leaderd/' (where Election and Lock keep their keys).
   */
  readonly queuePrefix?: string;
}

export class KvStore {
  /** The revision of the last change (0 for an empty store). */
  revision = 0;
  /** Index of the last Raft entry applied. */
  appliedIndex = 0;
  /** Sum of kvBytes over every key: what the storage quota (--quota-bytes) is checked against. */
  private usedBytes = 0;
  /** sharedEntryBytes(): value bytes held as views of their entries, as a running total. */
  private entryBytesShared = 0;
  /**
   * Every key in order (key-index.ts: off the V8 heap). A B+ tree, not a sorted array: a write among n keys costs
   * O(log n) instead of shifting O(n) entries, so a prefix delete of k keys costs
   * O(k log n) on every replica rather than O(k·n) (long enough, at 200,000 keys, for
   * leases to lapse while each node applies it).
   */
  private index = new KeyIndex();
  /** Queue directory -> its keys by creation revision (see KvStoreOptions.queuePrefix). */
  private queues: Queues = new Map();
  private readonly queuePrefix: string;
  private leases = new Map<number, Lease>();
  private nextLeaseId = 1;
  /** Exactly-once sessions (sessions.ts). */
  readonly sessions: SessionTable;
  /**
   * The retired scheme: clientId -> last seq applied and its result, for entries written
   * to the log before sessions existed (new requests with a bare client id are refused),
   * so replaying an old log gives the answers it gave then. Map order = least recently used.
   */
  private legacySessions: LegacySessions = new Map();
  /** Retained revisions, oldest first, from history[historyStart] on (a queue without O(n) shifts). */
  private history: (Revision | null)[] = [];
  private historyStart = 0;
  /** Watches may start at this revision or later. */
  private firstRetained = 1;
  private readonly revisionListeners = new Set<RevisionListener>();
  /**
   * Listeners for one key, or for the keys under a prefix: a write wakes only the
   * watches it concerns. With one Set of all watchers, each write ran every open
   * watch's filter: 2,000 idle watches made every Put on that node pay 2,000 calls.
   */
  private readonly keyListeners = new Map<string, Set<KeyedListener>>();
  private readonly prefixListeners = new Map<string, Set<KeyedListener>>();
  /** Registered prefixes by length (length -> count): an event's key is looked up once per distinct length. */
  private readonly prefixLengths = new Map<number, number>();
  private keyedCount = 0;
  private readonly restoreListeners = new Set<RestoreListener>();
  private readonly leaseListeners = new Set<LeaseListener>();
  /** The rows of the revision being applied: a PUT's row, or minus the row a DELETE removed. */
  private pendingEvents: number[] = [];
  private pendingSize = 0;
  private readonly historyRevisions: number;
  private readonly historyBytes: number;
  private historySize = 0;

  constructor(opts: KvStoreOptions = {}) {
    this.historyRevisions = opts.historyRevisions ?? 10_000;
    this.historyBytes = opts.historyBytes ?? 64 << 20;
    this.sessions = new SessionTable({ ...DEFAULT_SESSION_LIMITS, ...opts.sessions });
    this.queuePrefix = opts.queuePrefix ?? '_leaderd/';
  }

  // -------------------------------------------------------------------------
  // Apply

  /** Apply one committed entry. Entries that are not commands (no-ops, config) only advance the applied index. */
  apply(entry: Entry): CommandResult | null {
    this.appliedIndex = entry.index;
    if (entry.type !== 'normal') return null;
    let env: Envelope;
    try {
      env = decodeCommand(entry.data);
    } catch {
      // Validated before proposing; an undecodable entry (another version's command?) changes nothing.
      return null;
    }
    if (env.session) {
      const early = this.sessions.begin(env.session);
      if (early) return early;
      const result = this.applyCommand(env.cmd, env.quota);
      this.sessions.record(env.session, result);
      return result;
    }
    if (env.clientId !== undefined && env.seq !== undefined) {
      const s = this.legacySessions.get(env.clientId);
      if (s && env.seq <= s.seq) {
        if (env.seq === s.seq) return s.result;
        return {
          ok: false,
          error: 'stale-sequence',
          message: `sequence ${env.seq} of client ${env.clientId} is older than ${s.seq}, already applied`,
        };
      }
      const result = this.applyCommand(env.cmd, env.quota);
      this.legacySessions.delete(env.clientId);
      this.legacySessions.set(env.clientId, { seq: env.seq, result });
      if (this.legacySessions.size > LEGACY_MAX_SESSIONS) this.legacySessions.delete(this.legacySessions.keys().next().value!);
      return result;
    }
    return this.applyCommand(env.cmd, env.quota);
  }

  /**
   * Why `cmd` would be refused by the storage quota if applied now, or null. The leader
   * asks before proposing (admission: the client gets the refusal without a log entry);
   * apply asks again with the quota stamped in the entry, which catches writes that each
   * passed admission but together overshoot (all proposed before the first applied).
   */
  quotaRefusal(cmd: Command, quota: number): string | null {
    switch (cmd.type) {
      case 'put':
        return this.overQuota([cmd], quota);
      case 'txn':
        return this.overQuota(this.branch(cmd.compare, cmd.success, cmd.failure).ops, quota);
      default:
        // Deletes, revokes, expiries and sessions free space or hold none in the key
        // space: they stay allowed past the quota, so an operator can always recover.
        return null;
    }
  }

  /** StateMachine.sharedEntryBytes: up by each value kept as a view of its entry's bytes, down by each that leaves (replaced or deleted). */
  sharedEntryBytes(): number {
    return this.entryBytesShared;
  }

  /** Bytes the store holds against the quota (sum of kvBytes over every key). */
  get bytes(): number {
    return this.usedBytes;
  }

  private overQuota(ops: readonly Op[], quota: number | undefined): string | null {
    if (quota === undefined) return null;
    // Ops run in order, so a key written twice in one txn counts once, as it ends up.
    // A prefix delete is not counted as freeing anything: erring towards refusal keeps
    // the bound exact without scanning the prefix twice.
    let growth = 0;
    const sizes = new Map<string, number>();
    const sizeOf = (key: string) => {
      const known = sizes.get(key);
      if (known !== undefined) return known;
      const row = this.index.find(key);
      return row === NONE ? 0 : kvBytes(key, this.index.valueLength(row));
    };
    for (const op of ops) {
      if (op.type === 'put') {
        const size = kvBytes(op.key, op.value.length);
        growth += size - sizeOf(op.key);
        sizes.set(op.key, size);
      } else if (op.type === 'delete' && !op.prefix) {
        growth -= sizeOf(op.key);
        sizes.set(op.key, 0);
      }
    }
    // A write that does not grow the store (overwriting a value with a smaller one) is
    // allowed even past the quota: it is one of the ways out.
    if (growth <= 0 || this.usedBytes + growth <= quota) return null;
    return (
      `storage quota exceeded: the store holds ${this.usedBytes} bytes of its ${quota}-byte quota (--quota-bytes) ` +
      `and this write would add ${growth}; delete keys or revoke leases to free space (deletes are always allowed), ` +
      `or restart the members with a larger --quota-bytes`
    );
  }

  private applyCommand(cmd: Command, quota: number | undefined): CommandResult {
    switch (cmd.type) {
      case 'put': {
        if (cmd.lease !== 0 && !this.leases.has(cmd.lease)) return leaseNotFound(cmd.lease);
        const over = this.overQuota([cmd], quota);
        if (over !== null) return { ok: false, error: 'quota-exceeded', message: over };
        const rev = this.revision + 1;
        this.doPut(cmd.key, cmd.value, cmd.lease, rev);
        this.commitRevision(rev);
        return { ok: true, type: 'put', revision: rev };
      }
      case 'delete': {
        const rev = this.revision + 1;
        const deleted = this.doDelete(cmd.key, cmd.prefix);
        if (deleted > 0) this.commitRevision(rev);
        return { ok: true, type: 'delete', revision: this.revision, deleted };
      }
      case 'txn':
        return this.applyTxn(cmd.compare, cmd.success, cmd.failure, quota);
      case 'leaseGrant': {
        const id = this.nextLeaseId++;
        this.leases.set(id, { id, ttlMs: cmd.ttlMs, keys: new Set() });
        for (const l of this.leaseListeners) l({ type: 'granted', id, ttlMs: cmd.ttlMs });
        return { ok: true, type: 'leaseGrant', id, ttlMs: cmd.ttlMs, revision: this.revision };
      }
      case 'leaseRevoke':
      case 'leaseExpire': {
        const lease = this.leases.get(cmd.id);
        if (!lease) {
          // An expiry racing a revoke (or a second expiry) is harmless.
          if (cmd.type === 'leaseExpire') return { ok: true, type: 'leaseRevoke', revision: this.revision };
          return leaseNotFound(cmd.id);
        }
        const rev = this.revision + 1;
        let deleted = 0;
        for (const key of [...lease.keys].sort()) deleted += this.doDelete(key, false);
        this.leases.delete(cmd.id);
        if (deleted > 0) this.commitRevision(rev);
        for (const l of this.leaseListeners) l({ type: 'ended', id: cmd.id });
        return { ok: true, type: 'leaseRevoke', revision: this.revision };
      }
      case 'sessionOpen':
        return { ok: true, type: 'sessionOpen', id: this.sessions.open(cmd.ttlMs), ttlMs: cmd.ttlMs };
      case 'sessionClose':
      case 'sessionExpire':
        // Ending a session that already ended (a close racing an expiry) is harmless.
        this.sessions.end(cmd.id, cmd.type === 'sessionClose' ? 'closed' : 'expired');
        return { ok: true, type: 'sessionClose' };
    }
  }

  /** The branch of a txn that its comparisons select against the current state. */
  private branch(
    compare: readonly Compare[],
    success: readonly Op[],
    failure: readonly Op[],
  ): { succeeded: boolean; ops: readonly Op[]; compared: Map<string, KeyValue | null> } {
    const compared = new Map<string, KeyValue | null>();
    let succeeded = true;
    for (const c of compare) {
      const kv = this.get(c.key);
      compared.set(c.key, kv);
      if (!compareHolds(kv, c)) succeeded = false;
    }
    return { succeeded, ops: succeeded ? success : failure, compared };
  }

  private applyTxn(compare: readonly Compare[], success: readonly Op[], failure: readonly Op[], quota: number | undefined): CommandResult {
    const { succeeded, ops, compared } = this.branch(compare, success, failure);
    for (const op of ops) if (op.type === 'put' && op.lease !== 0 && !this.leases.has(op.lease)) return leaseNotFound(op.lease);
    const over = this.overQuota(ops, quota);
    if (over !== null) return { ok: false, error: 'quota-exceeded', message: over };
    const rev = this.revision + 1;
    let wrote = false;
    const responses: OpResult[] = [];
    for (const op of ops) {
      switch (op.type) {
        case 'put':
          this.doPut(op.key, op.value, op.lease, rev);
          wrote = true;
          responses.push({ type: 'put', revision: rev });
          break;
        case 'delete': {
          const deleted = this.doDelete(op.key, op.prefix);
          if (deleted > 0) wrote = true;
          responses.push({ type: 'delete', revision: rev, deleted });
          break;
        }
        case 'get':
          responses.push({ type: 'get', kv: this.get(op.key), revision: wrote ? rev : this.revision });
          break;
      }
    }
    if (wrote) this.commitRevision(rev);
    return { ok: true, type: 'txn', succeeded, responses, revision: this.revision, compared };
  }

  private doPut(key: string, value: Uint8Array, lease: number, rev: number): void {
    const ix = this.index;
    const old = ix.find(key);
    let createRevision = rev;
    let version = 1;
    if (old !== NONE) {
      const oldLease = ix.lease(old);
      if (oldLease !== 0 && oldLease !== lease) this.leases.get(oldLease)?.keys.delete(key);
      this.usedBytes -= kvBytes(key, ix.valueLength(old));
      if (ix.sharesEntry(old)) this.entryBytesShared -= ix.valueLength(old);
      createRevision = ix.createRevision(old);
      version = ix.version(old) + 1;
    }
    if (lease !== 0) this.leases.get(lease)!.keys.add(key);
    const row = ix.put(key, old, value, createRevision, rev, version, lease);
    this.usedBytes += kvBytes(key, value.length);
    if (ix.sharesEntry(row)) this.entryBytesShared += value.length;
    if (old === NONE) enqueue(this.queues, this.queuePrefix, key, rev);
    // The history's reference, held until the revision leaves it.
    ix.retain(row);
    this.pendingEvents.push(row);
    this.pendingSize += kvBytes(key, value.length) + EVENT_BYTES;
  }

  private doDelete(key: string, prefix: boolean): number {
    const ix = this.index;
    const gone: number[] = [];
    if (prefix) {
      this.forPrefix(key, '', (row) => void gone.push(row));
      // The DELETE events' references, taken before the tree lets go of the rows.
      for (const row of gone) ix.retain(row);
      ix.removeRange(key, prefixEnd(key), gone);
    } else {
      const old = ix.find(key);
      if (old !== NONE) {
        gone.push(old);
        ix.retain(old);
        ix.remove(old);
      }
    }
    for (const row of gone) {
      const size = kvBytesOf(ix.keyLength(row), ix.valueLength(row));
      this.usedBytes -= size;
      if (ix.sharesEntry(row)) this.entryBytesShared -= ix.valueLength(row);
      const lease = ix.lease(row);
      if (lease !== 0) this.leases.get(lease)?.keys.delete(ix.key(row));
      if (ix.hasPrefix(row, this.queuePrefix)) this.dequeue(ix.key(row), ix.createRevision(row));
      this.pendingEvents.push(-row);
      this.pendingSize += kvBytesOf(ix.keyLength(row), 0) + EVENT_BYTES;
    }
    return gone.length;
  }

  private commitRevision(rev: number): void {
    this.revision = rev;
    const r: Revision = { revision: rev, rows: Int32Array.from(this.pendingEvents), size: this.pendingSize };
    this.pendingEvents = [];
    this.pendingSize = 0;
    this.history.push(r);
    this.historySize += r.size;
    // Bounded by count and by bytes (values may be up to a MiB each); the oldest go first.
    const retained = () => this.history.length - this.historyStart;
    while (retained() > 1 && (retained() > this.historyRevisions || this.historySize > this.historyBytes)) {
      const evicted = this.history[this.historyStart]!;
      this.historySize -= evicted.size;
      for (const row of evicted.rows) this.index.release(Math.abs(row));
      // Let go of it now, not at the next compaction of the array: until then up to
      // 1,024 evicted revisions stayed reachable, and with 1 MiB values overwritten
      // that was up to a GiB held past the byte bound.
      this.history[this.historyStart] = null;
      this.historyStart++;
    }
    this.firstRetained = this.history[this.historyStart]!.revision;
    if (this.historyStart > 1024 && this.historyStart * 2 > this.history.length) {
      this.history = this.history.slice(this.historyStart);
      this.historyStart = 0;
    }
    if (this.revisionListeners.size === 0 && this.keyedCount === 0) return;
    // Events as objects only for whoever listens (the history keeps rows).
    const h = this.entryOf(r);
    for (const l of this.revisionListeners) l(h);
    if (this.keyedCount > 0) this.wakeKeyed(h);
  }

  /** A retained revision's events as objects of their own. */
  private entryOf(r: Revision): HistoryEntry {
    // Every woken watch stream reads the new revision through historyAt: made once while
    // any of them holds it (2,000 streams on a Txn of 128 puts made 256,000 events each).
    const made = r.entry?.deref();
    if (made !== undefined) return made;
    const ix = this.index;
    const events: WatchEvent[] = Array.from(r.rows, (row) =>
      row > 0
        ? { type: 'PUT', kv: ix.kv(row) }
        : { type: 'DELETE', kv: { key: ix.key(-row), value: EMPTY, createRevision: 0, modRevision: r.revision, version: 0, lease: 0 } },
    );
    const h = { revision: r.revision, events };
    r.entry = new WeakRef(h);
    return h;
  }

  private wakeKeyed(h: HistoryEntry): void {
    const woken = new Set<KeyedListener>();
    const add = (set: Set<KeyedListener> | undefined) => set?.forEach((l) => woken.add(l));
    for (const e of h.events) {
      const key = e.kv.key;
      add(this.keyListeners.get(key));
      for (const len of this.prefixLengths.keys()) if (len <= key.length) add(this.prefixListeners.get(key.slice(0, len)));
    }
    // A listener cancelled by an earlier one in this same revision is not called.
    for (const l of woken) if (l.live) l.fn(h);
  }

  // -------------------------------------------------------------------------
  // Reads (from local state: the caller has made them linearizable, or asked for serializable)

  get(key: string): KeyValue | null {
    const row = this.index.find(key);
    return row === NONE ? null : this.index.kv(row);
  }

  /** Keys under `prefix` after `startAfter`, in order; with `limit`, at most that many (visits limit + 1). */
  range(prefix: string, limit = 0, startAfter = ''): { kvs: KeyValue[]; more: boolean } {
    const kvs: KeyValue[] = [];
    let more = false;
    this.forPrefix(prefix, startAfter, (row) => {
      if (limit > 0 && kvs.length === limit) {
        more = true;
        return false;
      }
      kvs.push(this.index.kv(row));
      return true;
    });
    return { kvs, more };
  }

  /** Key rows held (key-index.ts): one per key, plus those retained watch events still hold. */
  get heldRows(): number {
    return this.index.heldRows;
  }

  /** Number of keys (O(1)). */
  get size(): number {
    return this.index.size;
  }

  /**
   * The key directly under `dir` (which ends with '/') with the lowest create revision:
   * the leader of an election, the holder of a lock. O(log n) for a dir under the queue
   * prefix; a scan of the dir otherwise.
   */
  oldest(dir: string): KeyValue | null {
    if (dir.startsWith(this.queuePrefix)) {
      const q = this.queues.get(dir);
      const first = q?.minKey();
      return first ? this.get(first[1]) : null;
    }
    const ix = this.index;
    let best = NONE;
    this.forPrefix(dir, '', (row) => {
      if ((best === NONE || ix.createRevision(row) < ix.createRevision(best)) && ix.key(row).indexOf('/', dir.length) === -1) best = row;
    });
    return best === NONE ? null : ix.kv(best);
  }

  leaseInfo(id: number): { ttlMs: number; keys: string[] } | null {
    const l = this.leases.get(id);
    return l ? { ttlMs: l.ttlMs, keys: [...l.keys].sort() } : null;
  }

  leaseIds(): { id: number; ttlMs: number }[] {
    return [...this.leases.values()].map((l) => ({ id: l.id, ttlMs: l.ttlMs }));
  }

  // -------------------------------------------------------------------------
  // Watches

  /**
   * History from `start` on (inclusive), then every new revision through `listener`.
   * Throws CompactedError when `start` is older than what is retained.
   */
  watchFrom(start: number, listener: RevisionListener): { backlog: HistoryEntry[]; cancel: () => void } {
    if (start !== 0 && start <= this.revision && start < this.firstRetained) throw new CompactedError(start, this.firstRetained);
    const backlog: HistoryEntry[] = [];
    for (let r = Math.max(start, this.firstRetained); start !== 0 && r <= this.revision; r++) backlog.push(this.historyAt(r)!);
    this.revisionListeners.add(listener);
    return { backlog, cancel: () => this.revisionListeners.delete(listener) };
  }

  /**
   * Every new revision that changes `key` (or, with `prefix`, a key under it), once per
   * revision however many of its events match. Costs a write O(events x distinct prefix
   * lengths) lookups, not one call per open watch.
   */
  watchKeys(key: string, prefix: boolean, listener: RevisionListener): () => void {
    const l: KeyedListener = { fn: listener, live: true };
    const map = prefix ? this.prefixListeners : this.keyListeners;
    let set = map.get(key);
    if (!set) {
      map.set(key, (set = new Set()));
      if (prefix) this.prefixLengths.set(key.length, (this.prefixLengths.get(key.length) ?? 0) + 1);
    }
    set.add(l);
    this.keyedCount++;
    return () => {
      if (!l.live) return;
      l.live = false;
      this.keyedCount--;
      set.delete(l);
      if (set.size > 0 || map.get(key) !== set) return;
      map.delete(key);
      if (!prefix) return;
      const n = this.prefixLengths.get(key.length)! - 1;
      if (n === 0) this.prefixLengths.delete(key.length);
      else this.prefixLengths.set(key.length, n);
    };
  }

  /** Sizes an operator watches (metrics): keys, live leases, client sessions, revision subscribers (watch streams). */
  counts(): { keys: number; leases: number; sessions: number; watchers: number; bytes: number } {
    return {
      keys: this.index.size,
      leases: this.leases.size,
      sessions: this.sessions.size,
      watchers: this.revisionListeners.size + this.keyedCount,
      bytes: this.usedBytes,
    };
  }

  /** The oldest revision whose changes are still retained (revision + 1 when none are). */
  get oldestRetained(): number {
    return this.firstRetained;
  }

  /** The changes of revision `rev`, or null if it is not retained (compacted, before a snapshot, or not yet made). O(events). */
  historyAt(rev: number): HistoryEntry | null {
    if (rev < this.firstRetained || rev > this.revision) return null;
    const r = this.history[this.historyStart + (rev - this.firstRetained)];
    return r ? this.entryOf(r) : null;
  }

  /** `listener` runs after each snapshot restore (history is gone: a watcher behind the new revision has a gap). */
  onRestore(listener: RestoreListener): () => void {
    this.restoreListeners.add(listener);
    return () => this.restoreListeners.delete(listener);
  }

  onLeaseChange(listener: LeaseListener): () => void {
    this.leaseListeners.add(listener);
    return () => this.leaseListeners.delete(listener);
  }

  // -------------------------------------------------------------------------
  // Snapshots

  /**
   * The whole state in one buffer, in a binary format (kv-snapshot.ts): a small JSON
   * header (revision, leases, sessions), then every key as a length-prefixed record.
   * Values are copied as bytes, never through one JSON string: a JSON snapshot with
   * base64 values stops at Node's maximum string length (~512 MiB of text, ~380 MiB of
   * values), and every node would fail at the same snapshot index, then again on restart.
   */
  snapshot(): Uint8Array {
    const steps = this.snapshotInSlices();
    for (;;) {
      const r = steps.next();
      if (r.done === true) return r.value;
    }
  }

  /**
   * The snapshot as pieces of at most a few MiB (PIECE_BYTES, PIECE_KEYS keys), for a
   * runtime that writes them to a file: the state is never held a second time whole.
   * The state is captured at this call: the header (revision, leases, sessions) at once,
   * and the key index as a copy-on-write clone of the B+ tree (O(1); key rows are never
   * changed in place, only replaced, and none the clone reaches is reused while it is
   * open), so the store may go on applying writes between pieces without any of them
   * reaching this snapshot. A piece's bytes hold until the call after the one that
   * returned it: its buffer may then be written again (copy a piece to keep it).
   */
  snapshotPieces(): Generator<Uint8Array, void, void> {
    const { header, capture } = this.capture();
    // Two or three buffers in turn, not a new one a piece: the runtime writes each piece to
    // its file before asking for the next, and a gigabyte's 256 fresh 4 MiB buffers left
    // 84-116 MiB of dead pieces on a node until V8's next full collection.
    const free: Buffer[] = [];
    return encodeSnapshot(
      header,
      capture.size,
      capturedKvs(this.index, capture),
      () => free.pop() ?? Buffer.allocUnsafe(PIECE_BYTES),
      (buf) => free.push(buf),
    );
  }

  /**
   * snapshot() in slices of bounded work, of the state as of this call (as
   * snapshotPieces), so a leader with a gigabyte of state does not stop answering for as
   * long as one whole pass over it takes.
   */
  snapshotInSlices(): Generator<void, Uint8Array, void> {
    return this.snapshotWithPrefix(0);
  }

  /** snapshotInSlices(), written after `prefixBytes` free bytes at the start of the result (StateMachine.snapshotWithPrefix). */
  snapshotWithPrefix(prefixBytes: number): Generator<void, Uint8Array, void> {
    const { header, capture } = this.capture();
    return snapshotWhole(header, this.index, capture, prefixBytes);
  }

  private capture(): { header: Buffer; capture: IndexCapture } {
    const header: SnapshotHeader = {
      revision: this.revision,
      appliedIndex: this.appliedIndex,
      nextLeaseId: this.nextLeaseId,
      leases: [...this.leases.values()].map((l) => [l.id, l.ttlMs]),
      sessions: [...this.legacySessions].map(([id, s]) => [id, s.seq, resultToJson(s.result)]),
      exactlyOnce: this.sessions.toJson(),
    };
    return { header: Buffer.from(JSON.stringify(header)), capture: this.index.capture() };
  }

  restore(data: Uint8Array): void {
    const steps = this.restoreInSlices(data);
    while (steps.next().done !== true);
  }

  /**
   * restore() in slices of bounded work (RESTORE_FEED_BYTES of the snapshot each): the
   * driver runs the iterator and may yield to the event loop between slices, so
   * installing a snapshot of a gigabyte does not stall heartbeats and lease renewals for
   * seconds. As restoreFromPieces: the store stays unchanged and readable until the last
   * step swaps the new state in at once, and an error (truncated, malformed) changes nothing.
   */
  *restoreInSlices(data: Uint8Array): Generator<void, void, void> {
    const r = this.restoreFromPieces();
    for (let at = 0; at < data.length; at += RESTORE_FEED_BYTES) {
      r.push(data.subarray(at, at + RESTORE_FEED_BYTES));
      yield;
    }
    const steps = r.finish();
    while (steps.next().done !== true) yield;
  }

  /**
   * restore() fed the snapshot in pieces of any size and split points, in order (a
   * record may straddle pieces). Each push decodes what it can into a new state built
   * aside (index, quota count, queues, leases), copying values out, so no piece is kept
   * and the snapshot is never held whole. finish() checks that the snapshot was complete
   * and returns the step that swaps the new state in at once; until then the store is
   * unchanged and readable, and an error from push() or finish() changes nothing.
   */
  restoreFromPieces(): { push(piece: Uint8Array): void; finish(): Iterator<void, void> } {
    let next: RestoredState | null = null;
    // Built aside, with slabs of its own: the decoder copies values straight into them.
    const index = new KeyIndex();
    const decoder = new SnapshotDecoder(
      {
        header: (h, format) => {
          checkHeader(h, format);
          const legacy: LegacySessions = new Map();
          for (const [id, seq, result] of h.sessions) legacy.set(id, { seq, result: resultFromJson(result) });
          const leases = new Map<number, Lease>();
          for (const [id, ttlMs] of h.leases) leases.set(id, { id, ttlMs, keys: new Set() });
          next = {
            header: h,
            format,
            lastKey: null,
            index,
            pendingRows: [],
            usedBytes: 0,
            queues: new Map(),
            leases,
            legacy,
            sessions: SessionTable.prepare(h.exactlyOnce),
          };
        },
        record: (key, length, createRevision, modRevision, version, lease) => {
          const s = next!;
          checkRecord(key, createRevision, modRevision, version, lease, s.header.revision);
          // A binary snapshot lists keys in index order (a JSON one in the order of its day):
          // a key out of order or repeated is a corrupt stream, not a state to install.
          if (s.format === 2 && s.lastKey !== null && compareKeys(s.lastKey, key) >= 0)
            throw new Error(`snapshot: key ${JSON.stringify(key)} out of order after ${JSON.stringify(s.lastKey)}`);
          s.lastKey = key;
          const row = index.placed(key, length, createRevision, modRevision, version, lease);
          if (s.format === 2) s.pendingRows.push(row);
          else if (!index.add(row)) throw new Error(`snapshot: key ${JSON.stringify(key)} appears twice`);
          s.usedBytes += kvBytes(key, length);
          enqueue(s.queues, this.queuePrefix, key, createRevision);
          if (lease !== 0) s.leases.get(lease)?.keys.add(key);
        },
      },
      index.arena,
    );
    // The keys of a binary snapshot come in order: each piece's are loaded at once
    // (KeyIndex.load), ~6x faster than inserting them one by one, with full leaves.
    const load = () => {
      const s = next;
      if (s === null || s.pendingRows.length === 0) return;
      index.load(s.pendingRows);
      s.pendingRows = [];
    };
    return {
      push: (piece) => {
        decoder.push(piece);
        load();
      },
      finish: () => {
        decoder.end();
        load();
        const s = next!;
        let done = false;
        return {
          next: () => {
            if (!done) this.install(s);
            done = true;
            return { done: true, value: undefined };
          },
        };
      },
    };
  }

  /** The last step of a restore: the state decoded aside replaces this one at once. */
  private install(s: RestoredState): void {
    const ended = [...this.leases.keys()];
    this.index = s.index;
    this.usedBytes = s.usedBytes;
    this.queues = s.queues;
    this.leases = s.leases;
    this.legacySessions = s.legacy;
    this.revision = s.header.revision;
    this.appliedIndex = s.header.appliedIndex;
    this.nextLeaseId = s.header.nextLeaseId;
    this.sessions.install(s.sessions);
    // History before the snapshot is gone: watches must start after it.
    this.history = [];
    this.historyStart = 0;
    this.historySize = 0;
    this.firstRetained = this.revision + 1;
    for (const id of ended) if (!this.leases.has(id)) for (const l of this.leaseListeners) l({ type: 'ended', id });
    for (const l of this.leases.values()) for (const f of this.leaseListeners) f({ type: 'granted', id: l.id, ttlMs: l.ttlMs });
    for (const l of this.restoreListeners) l();
  }

  // -------------------------------------------------------------------------
  // Key order

  /** Visit the rows of keys under `prefix` after `startAfter` in order until `f` returns false: O(log n + visited). */
  private forPrefix(prefix: string, startAfter: string, f: (row: number) => boolean | void): void {
    const ix = this.index;
    const from = startAfter > prefix ? startAfter : prefix;
    let first = true;
    for (const row of ix.rowsFrom(from)) {
      if (!ix.hasPrefix(row, prefix)) break;
      // Only the first key visited can be startAfter itself.
      if (first && ix.isKey(row, startAfter)) {
        first = false;
        continue;
      }
      first = false;
      if (f(row) === false) break;
    }
  }

  private dequeue(key: string, createRevision: number): void {
    const dir = queueOf(this.queuePrefix, key);
    if (dir === null) return;
    const q = this.queues.get(dir);
    if (!q) return;
    q.delete([createRevision, key]);
    // Names come and go (one per election or lock ever used): an empty queue must not stay behind.
    if (q.size === 0) this.queues.delete(dir);
  }
}
/** Queue directory -> its keys by creation revision (see KvStoreOptions.queuePrefix). */
type Queues = Map<string, BTree<Queued, true>>;
type LegacySessions = Map<string, { seq: number; result: CommandResult }>;

/** A snapshot's state, decoded aside by restoreFromPieces until the last step installs it. */
interface RestoredState {
  readonly header: SnapshotHeader;
  readonly format: 1 | 2;
  lastKey: string | null;
  readonly index: KeyIndex;
  /** Rows of a binary snapshot decoded from the current piece, in key order, not yet in the index's tree. */
  pendingRows: number[];
  usedBytes: number;
  readonly queues: Queues;
  readonly leases: Map<number, Lease>;
  readonly legacy: LegacySessions;
  readonly sessions: PreparedSessions;
}

function queueOf(queuePrefix: string, key: string): string | null {
  if (!key.startsWith(queuePrefix)) return null;
  return key.slice(0, key.lastIndexOf('/') + 1);
}

function enqueue(queues: Queues, queuePrefix: string, key: string, createRevision: number): void {
  const dir = queueOf(queuePrefix, key);
  if (dir === null) return;
  let q = queues.get(dir);
  if (!q) queues.set(dir, (q = new BTree<Queued, true>(undefined, compareQueued)));
  q.set([createRevision, key], true);
}

/** Refuses a header whose fields are not what a snapshot writes (a corrupt one may still be valid JSON). */
function checkHeader(h: SnapshotHeader, format: 1 | 2): void {
  const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const ok =
    typeof h === 'object' &&
    h !== null &&
    count(h.revision) &&
    count(h.appliedIndex) &&
    count(h.nextLeaseId) &&
    Array.isArray(h.leases) &&
    h.leases.every((l) => Array.isArray(l) && l.length === 2 && count(l[0]) && count(l[1])) &&
    Array.isArray(h.sessions) &&
    h.sessions.every((x) => Array.isArray(x) && x.length === 3 && typeof x[0] === 'string' && count(x[1])) &&
    // Binary snapshots came after exactly-once sessions: theirs always has the table.
    (format === 1 || h.exactlyOnce !== undefined);
  if (!ok) throw new Error('snapshot: malformed header');
}

/** Refuses a key whose revisions could not have been written (a corrupt number, NaN, a revision ahead of the store's). */
function checkRecord(key: string, createRevision: number, modRevision: number, version: number, lease: number, revision: number): void {
  const int = (v: number) => Number.isSafeInteger(v) && v >= 0;
  const ok =
    int(createRevision) &&
    int(modRevision) &&
    int(version) &&
    int(lease) &&
    createRevision >= 1 &&
    createRevision <= modRevision &&
    modRevision <= revision &&
    version >= 1;
  if (!ok) throw new Error(`snapshot: malformed revisions of key ${JSON.stringify(key)}`);
}

/** Bytes of the snapshot fed to each step of restoreInSlices. */
const RESTORE_FEED_BYTES = 256 << 10;

/** A capture's keys as KeyValues, in order; the capture ends when they are done (or dropped). */
function* capturedKvs(ix: KeyIndex, capture: IndexCapture): Generator<KeyValue, void, void> {
  try {
    for (const row of capture.rows()) yield ix.kv(row);
  } finally {
    capture.end();
  }
}

/** The binary snapshot of a capture after `header` in one buffer, after `prefixBytes` left free; yields between pieces. */
function* snapshotWhole(header: Buffer, ix: KeyIndex, capture: IndexCapture, prefixBytes: number): Generator<void, Uint8Array, void> {
  try {
    let size = prefixBytes + snapshotPreludeBytes(header);
    let n = 0;
    for (const row of capture.rows()) {
      size += recordBytes(ix.kv(row));
      if (++n % PIECE_KEYS === 0) yield;
    }
    const out = Buffer.allocUnsafe(size);
    let given = false;
    const space = () => {
      if (given) throw new Error(`snapshot: more than the ${size} bytes counted`);
      given = true;
      return out.subarray(prefixBytes);
    };
    let at = prefixBytes;
    for (const piece of encodeSnapshot(header, capture.size, capturedKvs(ix, capture), space)) {
      at += piece.length;
      yield;
    }
    if (at !== size) throw new Error(`snapshot: wrote ${at} bytes of ${size}`);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } finally {
    capture.end();
  }
}

/**
 * The least string greater than every string starting with `prefix`, or null when there
 * is none (the empty prefix, or one of only U+FFFF code units): the exclusive end of a
 * prefix range in code-unit order.
 */
export function prefixEnd(prefix: string): string | null {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xffff) end--;
  if (end === 0) return null;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}

/**
 * What a retained event counts against the history's byte bound, besides its key and
 * value as the quota counts them (kvBytes): its row and what delivering it costs. Measured
 * (npm run bench:kv-memory's store, 8-byte values) at ~170 bytes an event with its
 * record on the heap; the former estimate (key length + value + 64, ~84 for such an
 * event) let the history hold about twice its byte bound.
 */
const EVENT_BYTES = 96;

/** A retained revision: its events as rows (a PUT's row, or minus the row a DELETE removed), each holding a reference. */
interface Revision {
  readonly revision: number;
  readonly rows: Int32Array;
  /** What it counts against the history's byte bound. */
  readonly size: number;
  /** Its events as objects, while anyone holds them (entryOf). */
  entry?: WeakRef<HistoryEntry>;
}

function leaseNotFound(id: number): CommandResult {
  return { ok: false, error: 'lease-not-found', message: `lease ${id} not found (expired, revoked or never granted)` };
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function compareHolds(kv: KeyValue | null, c: Compare): boolean {
  let cmp: number;
  if (c.target === 'VALUE') {
    // An absent key compares like an empty value, but never EQUAL to one (etcd semantics
    // differ here; absent-vs-empty matters for compare-and-swap, see kv-service).
    if (kv === null) return c.result === 'NOT_EQUAL';
    cmp = compareBytes(kv.value, c.value ?? EMPTY);
  } else {
    const actual =
      kv === null
        ? 0
        : c.target === 'VERSION'
          ? kv.version
          : c.target === 'CREATE_REVISION'
            ? kv.createRevision
            : c.target === 'MOD_REVISION'
              ? kv.modRevision
              : kv.lease;
    cmp = actual - (c.number ?? 0);
  }
  switch (c.result) {
    case 'EQUAL':
      return cmp === 0;
    case 'NOT_EQUAL':
      return cmp !== 0;
    case 'GREATER':
      return cmp > 0;
    case 'LESS':
      return cmp < 0;
  }
}

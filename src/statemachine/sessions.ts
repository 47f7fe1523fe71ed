// Exactly-once sessions (Raft thesis §6.3), part of the replicated state.
//
// - A session is opened through the log: its id comes from a counter in the replicated
//   state, so every replica agrees on it, and an id is never given out twice (the
//   counter travels in snapshots). A restarted client opens a new session: two processes
//   can never share one, whatever label they use.
// - Each write carries (session, seq). Several writes of a session may be outstanding at
//   once, each with its own seq: the answer of every applied seq is cached until the
//   client says it has seen it (first_incomplete: the lowest seq it still waits for).
// - A session ends when its client closes it, when the leader expires it after an idle
//   TTL (a command in the log, so every replica ends it at the same index), or when it
//   would exceed its share of the response cache. A write of a session that ended, or was
//   never opened, is refused (session-expired) — now and on every later retry, since the
//   id is never reused. Ending a session is therefore always safe; forgetting an answer a
//   client may still need is not, and never happens.
import { kvBytes, type CommandResult, type KeyValue, type OpResult, type SessionTag } from './commands.js';

export interface SessionLimits {
  /** Live sessions at most; opening one more ends the least recently used. */
  readonly maxSessions: number;
  /** Cached answers of one session, bytes; a write that would exceed it ends its session. */
  readonly maxSessionBytes: number;
  /** Cached answers of all sessions, bytes; beyond it the least recently used sessions end. */
  readonly maxTotalBytes: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxSessions: 50_000,
  maxSessionBytes: 4 << 20,
  maxTotalBytes: 64 << 20,
};

export type SessionEndReason = 'closed' | 'expired' | 'cache-full' | 'evicted';

export type SessionChange =
  | { readonly type: 'opened'; readonly id: number; readonly ttlMs: number }
  /** A write of the session was applied (or answered from the cache): the client is alive. */
  | { readonly type: 'active'; readonly id: number }
  | { readonly type: 'ended'; readonly id: number; readonly reason: SessionEndReason };

export type SessionListener = (change: SessionChange) => void;

export interface Session {
  readonly id: number;
  readonly ttlMs: number;
  /** Every seq below this was answered and seen by the client. */
  firstIncomplete: number;
  readonly answers: Map<number, { readonly result: CommandResult; readonly bytes: number }>;
  bytes: number;
}

export class SessionTable {
  private nextId = 1;
  /** Map order = least recently used first. */
  private readonly live = new Map<number, Session>();
  private totalBytes = 0;
  private readonly listeners = new Set<SessionListener>();

  constructor(private readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS) {}

  onChange(listener: SessionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(c: SessionChange): void {
    for (const l of this.listeners) l(c);
  }

  open(ttlMs: number): number {
    const id = this.nextId++;
    this.live.set(id, { id, ttlMs, firstIncomplete: 0, answers: new Map(), bytes: 0 });
    this.emit({ type: 'opened', id, ttlMs });
    while (this.live.size > this.limits.maxSessions) this.end(this.live.keys().next().value!, 'evicted');
    return id;
  }

  /** End a session (a no-op for one already ended). */
  end(id: number, reason: SessionEndReason): void {
    const s = this.live.get(id);
    if (!s) return;
    this.live.delete(id);
    this.totalBytes -= s.bytes;
    this.emit({ type: 'ended', id, reason });
  }

  /**
   * Before applying a write tagged `tag`: the answer to give without applying it (the
   * cached one, or a refusal), or null to apply it and then record() the result.
   */
  begin(tag: SessionTag): CommandResult | null {
    const s = this.live.get(tag.id);
    if (!s) {
      const why = tag.id < this.nextId ? 'has ended (expired, closed, or ended to bound its response cache)' : 'was never opened';
      return {
        ok: false,
        error: 'session-expired',
        message: `session ${tag.id} ${why}; this write was not applied and never will be: open a new session`,
      };
    }
    if (tag.firstIncomplete > s.firstIncomplete) {
      for (const [seq, a] of s.answers) {
        if (seq >= tag.firstIncomplete) continue;
        s.answers.delete(seq);
        s.bytes -= a.bytes;
        this.totalBytes -= a.bytes;
      }
      s.firstIncomplete = tag.firstIncomplete;
    }
    this.live.delete(s.id);
    this.live.set(s.id, s);
    this.emit({ type: 'active', id: s.id });
    const cached = s.answers.get(tag.seq);
    if (cached) return cached.result;
    if (tag.seq < s.firstIncomplete)
      return {
        ok: false,
        error: 'stale-sequence',
        message: `seq ${tag.seq} of session ${tag.id} is below ${s.firstIncomplete}, whose answers the client said it has seen; not applied`,
      };
    return null;
  }

  /** Remember the result of the write tagged `tag`, just applied. */
  record(tag: SessionTag, result: CommandResult): void {
    const s = this.live.get(tag.id);
    if (!s) return;
    const bytes = resultBytes(result);
    if (s.bytes + bytes > this.limits.maxSessionBytes) {
      // This answer is still returned to the proposer; a retry of it is refused instead
      // of being applied a second time.
      this.end(s.id, 'cache-full');
      return;
    }
    s.answers.set(tag.seq, { result, bytes });
    s.bytes += bytes;
    this.totalBytes += bytes;
    while (this.totalBytes > this.limits.maxTotalBytes && this.live.size > 0) this.end(this.live.keys().next().value!, 'evicted');
  }

  /** The TTL of a live session, null once it ended (or was never opened). */
  ttlOf(id: number): number | null {
    return this.live.get(id)?.ttlMs ?? null;
  }

  /** Live sessions and their TTLs. */
  list(): { id: number; ttlMs: number }[] {
    return [...this.live.values()].map((s) => ({ id: s.id, ttlMs: s.ttlMs }));
  }

  /** Live sessions. */
  get size(): number {
    return this.live.size;
  }

  get cachedBytes(): number {
    return this.totalBytes;
  }

  toJson(): unknown {
    return {
      nextId: this.nextId,
      live: [...this.live.values()].map((s) => [
        s.id,
        s.ttlMs,
        s.firstIncomplete,
        [...s.answers].map(([seq, a]) => [seq, resultToJson(a.result)]),
      ]),
    };
  }

  /** Replace everything with a snapshot's table (undefined: a snapshot from before sessions). */
  restore(j: unknown): void {
    this.install(SessionTable.prepare(j));
  }

  /**
   * A snapshot's table, decoded aside: throws on a malformed one without touching any
   * table, so a restore that fails here leaves the store as it was.
   */
  static prepare(j: unknown): PreparedSessions {
    const t = (j ?? { nextId: 1, live: [] }) as { nextId: number; live: [number, number, number, [number, unknown][]][] };
    const int = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v);
    const ok =
      typeof t === 'object' &&
      t !== null &&
      int(t.nextId) &&
      Array.isArray(t.live) &&
      t.live.every((x) => Array.isArray(x) && x.length === 4 && int(x[0]) && int(x[1]) && int(x[2]) && Array.isArray(x[3]));
    if (!ok) throw new Error('snapshot: malformed session table');
    const live = new Map<number, Session>();
    let totalBytes = 0;
    for (const [id, ttlMs, firstIncomplete, answers] of t.live) {
      const s: Session = { id, ttlMs, firstIncomplete, answers: new Map(), bytes: 0 };
      for (const [seq, r] of answers) {
        const result = resultFromJson(r);
        const bytes = resultBytes(result);
        s.answers.set(seq, { result, bytes });
        s.bytes += bytes;
      }
      totalBytes += s.bytes;
      live.set(id, s);
    }
    return { nextId: t.nextId, live, totalBytes };
  }

  /** Replace everything with a prepared table (taken over, not copied). */
  install(p: PreparedSessions): void {
    const ended = [...this.live.keys()];
    this.live.clear();
    for (const [id, s] of p.live) this.live.set(id, s);
    this.totalBytes = p.totalBytes;
    this.nextId = p.nextId;
    for (const id of ended) if (!this.live.has(id)) this.emit({ type: 'ended', id, reason: 'closed' });
    for (const s of this.live.values()) this.emit({ type: 'opened', id: s.id, ttlMs: s.ttlMs });
  }
}

/** A snapshot's session table, decoded but not yet installed (SessionTable.prepare). */
export interface PreparedSessions {
  readonly nextId: number;
  readonly live: ReadonlyMap<number, Session>;
  readonly totalBytes: number;
}

function cachedKvBytes(kv: KeyValue | null): number {
  return kv ? kvBytes(kv.key, kv.value.length) : 8;
}

/** What a cached answer costs, roughly (values dominate: a compare-and-swap answer holds the current value). */
export function resultBytes(r: CommandResult): number {
  let n = 64;
  if (!r.ok) return n + r.message.length * 2;
  if (r.type === 'txn') {
    for (const [k, kv] of r.compared) n += k.length * 2 + cachedKvBytes(kv);
    for (const x of r.responses) n += x.type === 'get' ? cachedKvBytes(x.kv) : 32;
  }
  return n;
}

// Cached answers go into snapshots, so a retry after a snapshot install still gets the
// original answer.
export function resultToJson(r: CommandResult): unknown {
  if (r.ok && r.type === 'txn') {
    return {
      ...r,
      compared: [...r.compared].map(([k, v]) => [k, v && kvToJson(v)]),
      responses: r.responses.map((x) => (x.type === 'get' ? { ...x, kv: x.kv && kvToJson(x.kv) } : x)),
    };
  }
  return r;
}

export function resultFromJson(j: unknown): CommandResult {
  const r = j as CommandResult;
  if (r.ok && r.type === 'txn') {
    const raw = j as { compared: [string, unknown][]; responses: { type: string; kv?: unknown }[] };
    return {
      ...r,
      compared: new Map(raw.compared.map(([k, v]) => [k, v ? kvFromJson(v) : null])),
      responses: raw.responses.map((x) => (x.type === 'get' ? { ...x, kv: x.kv ? kvFromJson(x.kv) : null } : x)) as OpResult[],
    };
  }
  return r;
}

function kvToJson(kv: KeyValue): unknown {
  return { ...kv, value: Buffer.from(kv.value).toString('base64') };
}

function kvFromJson(j: unknown): KeyValue {
  const o = j as KeyValue & { value: string };
  return { ...o, value: new Uint8Array(Buffer.from(o.value, 'base64')) };
}

// Exactly-once sessions in the replicated store (Raft thesis §6.3). Issue 7, scenario 1:
// under the retired client-id scheme a restarted client reusing its id had its first put
// acknowledged unapplied, two writes before a restart blocked every later one, and a
// late retry of an evicted client's write applied twice.
import { describe, expect, it } from 'vitest';
import { KvStore } from '../../src/statemachine/kv-store.js';
import { encodeCommand, type Command, type CommandResult, type Envelope } from '../../src/statemachine/commands.js';
import type { SessionChange } from '../../src/statemachine/sessions.js';
import type { Entry } from '../../src/raft/types.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (u: Uint8Array) => new TextDecoder().decode(u);

function replica(opts: ConstructorParameters<typeof KvStore>[0] = {}) {
  const store = new KvStore(opts);
  let index = 0;
  const apply = (env: Envelope | Command): CommandResult => {
    const e: Envelope = 'cmd' in env ? env : { cmd: env };
    const entry: Entry = { index: ++index, term: 1, type: 'normal', data: encodeCommand(e) };
    return store.apply(entry)!;
  };
  const open = (ttlMs = 10_000) => (apply({ type: 'sessionOpen', ttlMs }) as { id: number }).id;
  const put = (session: number, seq: number, key: string, value: string, firstIncomplete = seq) =>
    apply({ cmd: { type: 'put', key, value: enc(value), lease: 0 }, session: { id: session, seq, firstIncomplete } });
  const value = (key: string) => {
    const kv = store.get(key);
    return kv ? dec(kv.value) : null;
  };
  return { store, apply, open, put, value };
}

describe('exactly-once sessions (scenario 1)', () => {
  it('a restarted client gets a new session: its first put applies although it reuses seq 1', () => {
    const r = replica();
    const before = r.open();
    const first = r.put(before, 1, 'balance', '100');
    const after = r.open();
    expect(after).toBeGreaterThan(before);
    const second = r.put(after, 1, 'balance', '500');
    expect(second).toMatchObject({ ok: true, type: 'put' });
    expect((second as { revision: number }).revision).toBeGreaterThan((first as { revision: number }).revision);
    expect(r.value('balance')).toBe('500');
  });

  it('two writes before a restart do not block any write after it', () => {
    const r = replica();
    const s1 = r.open();
    r.put(s1, 1, 'a', '1');
    r.put(s1, 2, 'a', '2');
    const s2 = r.open();
    for (let seq = 1; seq <= 3; seq++) expect(r.put(s2, seq, 'a', `new${seq}`)).toMatchObject({ ok: true });
    expect(r.value('a')).toBe('new3');
    expect(r.store.get('a')!.version).toBe(5);
  });

  it('several writes of one session may be outstanding: applied in any order, each once, each retry gets its own answer', () => {
    const r = replica();
    const s = r.open();
    const three = r.put(s, 3, 'c', '3', 1);
    const one = r.put(s, 1, 'a', '1', 1);
    const two = r.put(s, 2, 'b', '2', 1);
    expect(r.put(s, 1, 'a', '1', 1)).toEqual(one);
    expect(r.put(s, 3, 'c', '3', 1)).toEqual(three);
    expect(r.put(s, 2, 'b', '2', 1)).toEqual(two);
    for (const k of ['a', 'b', 'c']) expect(r.store.get(k)!.version).toBe(1);
    expect(r.store.revision).toBe(3);
  });

  it('answers are dropped once the client says it has seen them; a late retry below first_incomplete is refused, not applied', () => {
    const r = replica();
    const s = r.open();
    r.put(s, 1, 'k', 'a', 1);
    const bytesWithOne = r.store.sessions.cachedBytes;
    expect(bytesWithOne).toBeGreaterThan(0);
    r.put(s, 2, 'k', 'b', 2);
    // seq 1 was seen: its answer is gone, only seq 2's is kept.
    expect(r.store.sessions.cachedBytes).toBe(bytesWithOne);
    const rev = r.store.revision;
    expect(r.put(s, 1, 'k', 'a', 1)).toMatchObject({ ok: false, error: 'stale-sequence' });
    expect(r.store.revision).toBe(rev);
    expect(r.value('k')).toBe('b');
  });

  it('a write of an expired, closed or never-opened session is refused and never applied, also after a snapshot', () => {
    const r = replica();
    const s = r.open();
    const closed = r.open();
    r.put(s, 1, 'k', 'v');
    expect(r.apply({ type: 'sessionExpire', id: s })).toMatchObject({ ok: true });
    expect(r.apply({ type: 'sessionClose', id: closed })).toMatchObject({ ok: true });
    const rev = r.store.revision;
    for (const [id, seq] of [
      [s, 1],
      [s, 2],
      [closed, 1],
      [999, 1],
    ] as const)
      expect(r.put(id, seq, 'k', 'again')).toMatchObject({ ok: false, error: 'session-expired' });
    expect(r.store.revision).toBe(rev);
    expect(r.store.get('k')!.version).toBe(1);
    // Another replica installs a snapshot: same refusals, and the counter goes on (ids are never reused).
    const other = replica();
    other.store.restore(r.store.snapshot());
    expect(other.put(s, 1, 'k', 'again')).toMatchObject({ ok: false, error: 'session-expired' });
    expect(other.open()).toBe(closed + 1);
    expect(r.open()).toBe(closed + 1);
  });

  it('a cached answer survives a snapshot: a retry on the restored replica gets it without applying again', () => {
    const r = replica();
    const s = r.open();
    const write = {
      cmd: {
        type: 'txn' as const,
        compare: [{ key: 'k', target: 'CREATE_REVISION' as const, result: 'EQUAL' as const, number: 0 }],
        success: [{ type: 'put' as const, key: 'k', value: enc('x'), lease: 0 }],
        failure: [],
      },
      session: { id: s, seq: 1, firstIncomplete: 1 },
    };
    const cas = r.apply(write);
    const other = replica();
    other.store.restore(r.store.snapshot());
    expect(other.apply(write)).toEqual(cas);
    expect(other.store.get('k')!.version).toBe(1);
  });

  it('too many sessions: the least recently used one ends, and a late retry of its write is refused, never applied twice', () => {
    const r = replica({ sessions: { maxSessions: 2 } });
    const old = r.open();
    expect(r.put(old, 1, 'k', 'v')).toMatchObject({ ok: true, revision: 1 });
    const ended: SessionChange[] = [];
    r.store.sessions.onChange((c) => c.type === 'ended' && ended.push(c));
    r.open();
    r.open();
    expect(ended).toEqual([{ type: 'ended', id: old, reason: 'evicted' }]);
    expect(r.put(old, 1, 'k', 'v')).toMatchObject({ ok: false, error: 'session-expired' });
    expect(r.store.revision).toBe(1);
    expect(r.store.get('k')!.version).toBe(1);
  });

  it('the answer cache is bounded in bytes: a session that would exceed its share ends instead of forgetting an answer', () => {
    const r = replica({ sessions: { maxSessionBytes: 3000, maxTotalBytes: 4000 } });
    r.apply({ type: 'put', key: 'big', value: new Uint8Array(1000), lease: 0 });
    const cas = (id: number, seq: number) =>
      r.apply({
        cmd: { type: 'txn', compare: [{ key: 'big', target: 'VERSION', result: 'EQUAL', number: 99 }], success: [], failure: [] },
        session: { id, seq, firstIncomplete: 1 },
      });
    const s = r.open();
    // Each failed compare caches the 1000-byte current value; the third would pass 3000 bytes.
    expect(cas(s, 1)).toMatchObject({ ok: true, succeeded: false });
    expect(cas(s, 2)).toMatchObject({ ok: true, succeeded: false });
    expect(r.store.sessions.ttlOf(s)).not.toBeNull();
    expect(cas(s, 3)).toMatchObject({ ok: true, succeeded: false });
    expect(r.store.sessions.ttlOf(s)).toBeNull();
    // Every answer it held is refused rather than recomputed.
    for (const seq of [1, 2, 3]) expect(cas(s, seq)).toMatchObject({ ok: false, error: 'session-expired' });
    expect(r.store.sessions.cachedBytes).toBe(0);
    // Across sessions: beyond the total, the least recently used ends first.
    const a = r.open();
    const b = r.open();
    cas(a, 1);
    cas(a, 2);
    cas(b, 1);
    cas(b, 2);
    expect(r.store.sessions.cachedBytes).toBeLessThanOrEqual(4000);
    expect(r.store.sessions.ttlOf(a)).toBeNull();
    expect(r.store.sessions.ttlOf(b)).not.toBeNull();
  });

  it('reports opened, active and ended sessions, so the leader can expire the idle ones', () => {
    const r = replica();
    const seen: SessionChange[] = [];
    r.store.sessions.onChange((c) => seen.push(c));
    const s = r.open(1234);
    r.put(s, 1, 'k', 'v');
    r.apply({ type: 'sessionExpire', id: s });
    expect(seen).toEqual([
      { type: 'opened', id: s, ttlMs: 1234 },
      { type: 'active', id: s },
      { type: 'ended', id: s, reason: 'expired' },
    ]);
  });
});

// Random sequences of persist / compact / putMeta / reopen against a real LevelDB,
// checked against a deliberately naive in-memory model of the same contract (whole
// arrays filtered and concatenated; no index arithmetic shared with the implementation).
// Some calls are not awaited before the next, as the runtime may do.

import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Entry, HardState, Snapshot } from '../../src/raft/types.js';
import { LevelStorage } from '../../src/storage/leveldb-storage.js';
import { makeTempDir, normEntries, normSnapshot, normState, removeDir } from './helpers.js';

const BOOT = { voters: ['a', 'b', 'c'], learners: [] };
const META_KEYS = ['x', 'y', 'z'] as const;

type Op =
  | { kind: 'append'; back: number; count: number; bump: number; withHard: boolean; sync: boolean; wait: boolean }
  | { kind: 'hard'; bump: number; vote: string | null; commitSeed: number; sync: boolean; wait: boolean }
  | { kind: 'install'; ahead: number; match: boolean; follow: number; wait: boolean }
  | { kind: 'compact'; at: number; stale: boolean; wait: boolean }
  | { kind: 'meta'; key: (typeof META_KEYS)[number]; value: Uint8Array; wait: boolean }
  | { kind: 'reopen' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      back: fc.nat({ max: 6 }),
      count: fc.integer({ min: 1, max: 5 }),
      bump: fc.nat({ max: 1 }),
      withHard: fc.boolean(),
      sync: fc.boolean(),
      wait: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('hard' as const),
      bump: fc.nat({ max: 1 }),
      vote: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: null }),
      commitSeed: fc.nat(),
      sync: fc.boolean(),
      wait: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('install' as const),
      ahead: fc.nat({ max: 12 }),
      match: fc.boolean(),
      follow: fc.nat({ max: 3 }),
      wait: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('compact' as const), at: fc.nat(), stale: fc.boolean(), wait: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('meta' as const),
      key: fc.constantFrom(...META_KEYS),
      value: fc.uint8Array({ maxLength: 8 }),
      wait: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

class Model {
  hard: HardState = { term: 0, votedFor: null, commit: 0 };
  snap: Snapshot | null = null;
  log: Entry[] = [];
  meta = new Map<string, Uint8Array>();
  maxTerm = 0;
  private seq = 0;

  get snapIndex(): number {
    return this.snap?.meta.index ?? 0;
  }
  get last(): number {
    return this.snapIndex + this.log.length;
  }
  termAt(index: number): number | undefined {
    if (this.snap !== null && index === this.snap.meta.index) return this.snap.meta.term;
    if (this.snap === null && index === 0) return 0;
    return this.log.find((e) => e.index === index)?.term;
  }
  makeEntries(from: number, count: number, term: number): Entry[] {
    return Array.from({ length: count }, (_, i) => ({
      index: from + i,
      term,
      type: 'normal' as const,
      data: new TextEncoder().encode(`payload-${this.seq++}`),
    }));
  }
  makeSnapshot(index: number, term: number): Snapshot {
    return { meta: { index, term, conf: BOOT }, data: new TextEncoder().encode(`snap-${this.seq++}`) };
  }
  append(es: readonly Entry[]): void {
    const fresh = es.filter((e) => e.index > this.snapIndex);
    const head = fresh[0];
    if (head === undefined) return;
    this.log = [...this.log.filter((e) => e.index < head.index), ...fresh];
  }
  install(s: Snapshot): void {
    this.log = this.termAt(s.meta.index) === s.meta.term ? this.log.filter((e) => e.index > s.meta.index) : [];
    this.snap = s;
  }
}

const dirs: string[] = [];
const stores: LevelStorage[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  for (const d of dirs.splice(0)) await removeDir(d);
});

async function expectMatches(s: LevelStorage, m: Model): Promise<void> {
  expect([s.firstIndex(), s.lastIndex()]).toEqual([m.snapIndex + 1, m.last]);
  for (const k of META_KEYS) expect(s.getMeta(k)).toEqual(m.meta.get(k));
}

async function run(ops: readonly Op[]): Promise<void> {
  const dir = await makeTempDir();
  dirs.push(dir);
  const openStore = async (): Promise<LevelStorage> => {
    const s = await LevelStorage.open({ dir, clusterId: 'c1', nodeId: 'a' });
    stores.push(s);
    return s;
  };
  let s = await openStore();
  const m = new Model();
  let pending: Array<Promise<void>> = [];
  const issue = async (p: Promise<void>, wait: boolean): Promise<void> => {
    if (wait) await p;
    else pending.push(p);
  };
  const reopenAndCompare = async (): Promise<void> => {
    await Promise.all(pending);
    pending = [];
    await expectMatches(s, m);
    await s.close();
    s = await openStore();
    expect(normState(s.initialState(BOOT))).toEqual({
      hardState: m.hard,
      snapshot: normSnapshot(m.snap),
      entries: normEntries(m.log),
    });
    await expectMatches(s, m);
  };

  for (const op of ops) {
    switch (op.kind) {
      case 'append': {
        m.maxTerm += op.bump;
        const es = m.makeEntries(Math.max(1, m.last + 1 - op.back), op.count, m.maxTerm);
        m.append(es);
        const hardState = op.withHard ? { term: m.maxTerm, votedFor: null, commit: 0 } : null;
        if (hardState !== null) m.hard = hardState;
        await issue(s.persist({ hardState, entries: es, snapshot: null }, op.sync), op.wait);
        break;
      }
      case 'hard': {
        m.maxTerm += op.bump;
        m.hard = { term: m.maxTerm, votedFor: op.vote, commit: op.commitSeed % (m.last + 1) };
        await issue(s.persist({ hardState: m.hard, entries: [], snapshot: null }, op.sync), op.wait);
        break;
      }
      case 'install': {
        const index = m.snapIndex + op.ahead;
        const held = m.termAt(index);
        let term: number;
        if (op.match && held !== undefined) {
          term = held;
        } else {
          m.maxTerm += 1;
          term = m.maxTerm;
        }
        const snap = m.makeSnapshot(index, term);
        m.install(snap);
        const es = m.makeEntries(index + 1, op.follow, m.maxTerm);
        m.append(es);
        await issue(s.persist({ hardState: null, entries: es, snapshot: snap }, true), op.wait);
        break;
      }
      case 'compact': {
        if (op.stale && m.snap !== null) {
          // Not newer than the stored snapshot: must change nothing.
          await issue(s.compact(m.makeSnapshot(m.snapIndex, m.snap.meta.term)), op.wait);
          break;
        }
        if (m.log.length === 0) break;
        const index = m.snapIndex + 1 + (op.at % m.log.length);
        const term = m.termAt(index);
        if (term === undefined) throw new Error('model lost an entry');
        const snap = m.makeSnapshot(index, term);
        m.install(snap);
        await issue(s.compact(snap), op.wait);
        break;
      }
      case 'meta': {
        m.meta.set(op.key, op.value);
        await issue(s.putMeta(op.key, op.value), op.wait);
        break;
      }
      case 'reopen':
        await reopenAndCompare();
        break;
      default: {
        const never: never = op;
        throw new Error(`unhandled op ${JSON.stringify(never)}`);
      }
    }
  }
  await reopenAndCompare();
  await s.close();
}

describe('storage against a model', () => {
  it('any sequence of persist, compact and putMeta reads back as the model after reopen', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
        try {
          await run(ops);
        } finally {
          for (const s of stores.splice(0)) await s.close().catch(() => undefined);
          for (const d of dirs.splice(0)) await removeDir(d);
        }
      }),
      { numRuns: 150 },
    );
  });
});

// Linearizability checker for a map of independent registers (Put / Get / CompareAndSwap).
//
// The search is Wing & Gong's, with Lowe's memoization and Horn & Kroening's bookkeeping, as
// Knossos and Porcupine use it: walk a time-ordered list of call/return events, try to
// linearize each operation whose call precedes the earliest pending return, and backtrack when
// that return is reached with its operation still unplaced. A (linearized set, register value)
// pair already explored is never explored again: the rest of the search depends only on
// those two. Keys are checked separately, which is sound because linearizability is local
// (Herlihy & Wing 1990, "P-compositionality"), and keeps each search small.
import type { CheckOptions, CheckResult, KeyResult, Operation, Verdict } from './history.js';

const DEFAULT_MAX_STEPS = 5_000_000;

/**
 * An operation compiled against one key's value table: register values are small integers
 * (0 = absent) so states compare and hash cheaply.
 */
interface Compiled {
  readonly op: Operation;
  /** Index of this operation within its key, which is also its bit in the linearized set. */
  readonly index: number;
  /** Completed with a known result: must be linearized, before its return. */
  readonly definite: boolean;
  readonly kind: 'put' | 'get' | 'cas-ok' | 'cas-failed' | 'cas-unknown';
  /** put/cas: value id written. get: value id read (0 = not found). */
  readonly value: number;
  /** cas: value id expected (0 = absent). */
  readonly expected: number;
  /** cas-failed: value id reported as current, or -1 when the server did not say. */
  readonly current: number;
  /**
   * Unknown writes with the same effect (same kind, expected and value) are interchangeable:
   * in any linearization the earlier-invoked one can take the later one's place, since neither
   * has a return time. So each may be linearized only after this earlier twin (-1: none),
   * which turns 2^k subsets of k twins into k+1 counts.
   */
  readonly twinBefore: number;
}

/** Applies an operation to the register; null when its recorded result is impossible there. */
function step(state: number, c: Compiled): number | null {
  switch (c.kind) {
    case 'put':
      return c.value;
    case 'get':
      return state === c.value ? state : null;
    case 'cas-ok':
      return state === c.expected ? c.value : null;
    case 'cas-failed':
      if (state === c.expected) return null;
      return c.current === -1 || c.current === state ? state : null;
    case 'cas-unknown':
      return state === c.expected ? c.value : state;
  }
}

function validate(history: readonly Operation[]): void {
  const ids = new Set<number>();
  for (const op of history) {
    const where = `operation #${op.id}`;
    if (ids.has(op.id)) throw new TypeError(`${where}: duplicate id`);
    ids.add(op.id);
    if (!Number.isFinite(op.call)) throw new TypeError(`${where}: call time is not finite`);
    if (op.ret !== null && !(op.ret >= op.call)) throw new TypeError(`${where}: returns before its call`);
    if (op.kind === 'put' && typeof op.input.value !== 'string') {
      throw new TypeError(`${where}: put without input.value`);
    }
    if (op.kind === 'cas') {
      if (typeof op.input.value !== 'string') throw new TypeError(`${where}: cas without input.value`);
      if (op.input.expected === undefined) {
        throw new TypeError(`${where}: cas without input.expected (use null for "absent")`);
      }
    }
    if (op.status !== 'ok') continue;
    if (op.ret === null) throw new TypeError(`${where}: status ok but ret is null`);
    const out = op.output;
    if (op.kind === 'get') {
      if (out === undefined || typeof out.found !== 'boolean') {
        throw new TypeError(`${where}: ok get without output.found`);
      }
      if (out.found && typeof out.value !== 'string') {
        throw new TypeError(`${where}: get found a value but output.value is missing`);
      }
    }
    if (op.kind === 'cas' && (out === undefined || typeof out.succeeded !== 'boolean')) {
      throw new TypeError(`${where}: ok cas without output.succeeded`);
    }
  }
}

function compile(ops: readonly Operation[]): { compiled: Compiled[]; values: string[] } {
  const ids = new Map<string, number>();
  const values: string[] = [];
  const intern = (v: string | null | undefined): number => {
    if (v === null || v === undefined) return 0;
    let id = ids.get(v);
    if (id === undefined) {
      values.push(v);
      id = values.length;
      ids.set(v, id);
    }
    return id;
  };
  const compiled = ops.map((op, index): Compiled => {
    const definite = op.status === 'ok';
    const base = { op, index, definite, value: 0, expected: 0, current: -1, twinBefore: -1 };
    switch (op.kind) {
      case 'put':
        return { ...base, kind: 'put', value: intern(op.input.value) };
      case 'get':
        return { ...base, kind: 'get', value: op.output?.found === true ? intern(op.output.value) : 0 };
      case 'cas': {
        const value = intern(op.input.value);
        const expected = intern(op.input.expected);
        if (!definite) return { ...base, kind: 'cas-unknown', value, expected };
        if (op.output?.succeeded === true) return { ...base, kind: 'cas-ok', value, expected };
        const cur = op.output?.current;
        return { ...base, kind: 'cas-failed', value, expected, current: cur === undefined ? -1 : intern(cur) };
      }
    }
  });
  const lastTwin = new Map<string, number>();
  const byCall = [...compiled].sort((a, b) => a.op.call - b.op.call || a.index - b.index);
  for (const c of byCall) {
    if (c.definite) continue;
    const effect = `${c.kind}:${c.expected}:${c.value}`;
    const before = lastTwin.get(effect);
    if (before !== undefined) compiled[c.index] = { ...c, twinBefore: before };
    lastTwin.set(effect, c.index);
  }
  return { compiled, values };
}

/** One event in the doubly linked call/return list (Lowe's "lift" removes a linearized pair). */
interface Event {
  readonly call: boolean;
  readonly c: Compiled;
  readonly time: number;
  /** On a call event: its return event, or null when the operation may return at +infinity. */
  match: Event | null;
  prev: Event | null;
  next: Event | null;
}

function buildEvents(compiled: readonly Compiled[]): Event {
  const events: Event[] = [];
  for (const c of compiled) {
    const call: Event = { call: true, c, time: c.op.call, match: null, prev: null, next: null };
    events.push(call);
    // An operation whose outcome is unknown never has to be linearized before anything: its
    // return is at +infinity, so it has no return event at all and the search stops as soon
    // as every definite operation is placed (the rest go at the end, or never happened).
    if (c.definite && c.op.ret !== null) {
      const ret: Event = { call: false, c, time: c.op.ret, match: null, prev: null, next: null };
      call.match = ret;
      events.push(ret);
    }
  }
  // At equal times a call sorts before a return: timestamps that coincide cannot order two
  // operations, so they are treated as concurrent and the checker never invents an order.
  events.sort((a, b) => a.time - b.time || (a.call === b.call ? a.c.index - b.c.index : a.call ? -1 : 1));
  const head: Event = { call: false, c: compiled[0]!, time: -Infinity, match: null, prev: null, next: null };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  return head;
}

function unlink(e: Event): void {
  e.prev!.next = e.next;
  if (e.next !== null) e.next.prev = e.prev;
}

function relink(e: Event): void {
  e.prev!.next = e;
  if (e.next !== null) e.next.prev = e;
}

function lift(call: Event): void {
  unlink(call);
  if (call.match !== null) unlink(call.match);
}

/** Exact inverse of lift, valid because lifts and unlifts nest like a stack. */
function unlift(call: Event): void {
  if (call.match !== null) relink(call.match);
  relink(call);
}

/**
 * Memo of explored (linearized set, state) pairs. The set is a bitset hashed incrementally
 * with one random word per operation (Zobrist), so a lookup costs one bucket scan.
 */
class Explored {
  private readonly buckets = new Map<number, { bits: Uint32Array; state: number }[]>();

  /** Records the pair; false if it was already there. */
  add(hash: number, bits: Uint32Array, state: number): boolean {
    const h = (hash ^ Math.imul(state + 1, 0x9e3779b1)) | 0;
    let bucket = this.buckets.get(h);
    if (bucket === undefined) {
      bucket = [];
      this.buckets.set(h, bucket);
    }
    for (const seen of bucket) {
      if (seen.state === state && sameBits(seen.bits, bits)) return false;
    }
    bucket.push({ bits: bits.slice(), state });
    return true;
  }
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Deterministic per-operation hash words, so results never depend on Math.random. */
function zobrist(n: number): Int32Array {
  const out = new Int32Array(n);
  let s = 0x2545f491;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    out[i] = t ^ (t >>> 14);
  }
  return out;
}

interface SearchOutcome {
  readonly verdict: Verdict;
  readonly steps: number;
  /** Operation indices of the longest linearizable prefix found, in linearization order. */
  readonly longest: readonly number[];
}

function search(compiled: readonly Compiled[], maxSteps: number): SearchOutcome {
  const n = compiled.length;
  const head = buildEvents(compiled);
  const bits = new Uint32Array(Math.max(1, Math.ceil(n / 32)));
  const z = zobrist(n);
  const explored = new Explored();
  const stack: { call: Event; state: number }[] = [];
  const definiteTotal = compiled.reduce((k, c) => k + (c.definite ? 1 : 0), 0);
  let remaining = definiteTotal;
  let longestDefinite = 0;
  let state = 0;
  let hash = 0;
  let steps = 0;
  let longest: number[] = [];
  let entry = head.next;

  while (remaining > 0) {
    if (++steps > maxSteps) return { verdict: 'unknown', steps: steps - 1, longest };
    // remaining > 0 means some definite operation's return event is still listed, and the
    // scan always stops at the first return event, so it never runs off the end.
    const e = entry!;
    if (e.call) {
      const twin = e.c.twinBefore;
      if (twin !== -1 && (bits[twin >>> 5]! & (1 << (twin & 31))) === 0) {
        entry = e.next;
        continue;
      }
      const next = step(state, e.c);
      if (next !== null) {
        const i = e.c.index;
        bits[i >>> 5]! ^= 1 << (i & 31);
        hash ^= z[i]!;
        if (explored.add(hash, bits, next)) {
          stack.push({ call: e, state });
          state = next;
          lift(e);
          if (e.c.definite) remaining--;
          // "Longest" counts definite operations only, so the explanation is not padded with
          // unknown writes that were placed merely because they always can be.
          if (definiteTotal - remaining > longestDefinite) {
            longestDefinite = definiteTotal - remaining;
            longest = stack.map((s) => s.call.c.index);
          }
          entry = head.next;
          continue;
        }
        bits[i >>> 5]! ^= 1 << (i & 31);
        hash ^= z[i]!;
      }
      entry = e.next;
    } else {
      // The earliest pending return was reached with its operation unplaced: undo the most
      // recent placement and try the next candidate after it.
      const top = stack.pop();
      if (top === undefined) return { verdict: 'not-linearizable', steps, longest };
      const i = top.call.c.index;
      bits[i >>> 5]! ^= 1 << (i & 31);
      hash ^= z[i]!;
      state = top.state;
      unlift(top.call);
      if (top.call.c.definite) remaining++;
      entry = top.call.next;
    }
  }
  return { verdict: 'linearizable', steps, longest: stack.map((s) => s.call.c.index) };
}

function fmtTime(t: number | null): string {
  if (t === null || !Number.isFinite(t)) return '∞';
  return String(Math.round(t * 1000) / 1000);
}

function fmtValue(v: string | null | undefined): string {
  return v === null || v === undefined ? 'absent' : JSON.stringify(v);
}

/** One line per operation, e.g. `#7 client 2 get "k" [30, 40] -> "b"`. */
export function formatOperation(op: Operation): string {
  let what: string;
  switch (op.kind) {
    case 'put':
      what = `put ${fmtValue(op.input.value)}`;
      break;
    case 'get':
      what = 'get';
      break;
    case 'cas':
      what = `cas ${fmtValue(op.input.expected)} -> ${fmtValue(op.input.value)}`;
      break;
  }
  const ret = op.status === 'ok' ? `${fmtTime(op.ret)}]` : `${op.ret === null ? '∞' : fmtTime(op.ret)})`;
  let result: string;
  if (op.status !== 'ok') {
    result = op.status === 'fail' ? 'not applied' : 'outcome unknown';
  } else if (op.kind === 'get') {
    result = op.output?.found === true ? `read ${fmtValue(op.output.value)}` : 'read absent';
  } else if (op.kind === 'cas') {
    const cur = op.output?.current;
    result = op.output?.succeeded === true ? 'succeeded' : `failed${cur === undefined ? '' : ` (current ${fmtValue(cur)})`}`;
  } else {
    result = 'ok';
  }
  return `#${op.id} client ${op.client} ${what} on ${JSON.stringify(op.key)} [${fmtTime(op.call)}, ${ret} ${result}`;
}

/** Why operation c cannot be the next one linearized when the register holds `state`. */
function whyNot(state: number, c: Compiled, values: readonly string[]): string {
  const name = (v: number): string => (v === 0 ? 'absent' : JSON.stringify(values[v - 1]));
  switch (c.kind) {
    case 'get':
      return `read ${name(c.value)} but the register holds ${name(state)}`;
    case 'cas-ok':
      return `succeeded expecting ${name(c.expected)} but the register holds ${name(state)}`;
    case 'cas-failed':
      return state === c.expected
        ? `failed although the register holds the expected ${name(state)}`
        : `reported current ${name(c.current)} but the register holds ${name(state)}`;
    case 'put':
    case 'cas-unknown':
      return 'always applicable';
  }
}

function explain(compiled: readonly Compiled[], values: readonly string[], longest: readonly number[]): string {
  const placed = new Set(longest);
  let state = 0;
  for (const i of longest) state = step(state, compiled[i]!) ?? state;
  const holds = state === 0 ? 'absent' : JSON.stringify(values[state - 1]);
  // The operation that forces the issue: the unplaced definite one that returns first. Every
  // candidate for the next slot must have been invoked no later than that return.
  let deadline: Compiled | undefined;
  for (const c of compiled) {
    if (placed.has(c.index) || !c.definite) continue;
    if (deadline === undefined || c.op.ret! < deadline.op.ret!) deadline = c;
  }
  const lines: string[] = [];
  lines.push(`longest linearizable prefix: ${longest.length} of ${compiled.length} operations`);
  for (const i of longest) lines.push(`  ${formatOperation(compiled[i]!.op)}`);
  lines.push(`register after that prefix: ${holds}`);
  if (deadline === undefined) return lines.join('\n');
  lines.push(`next must come one of these (invoked by ${fmtTime(deadline.op.ret)}, when #${deadline.op.id} returned):`);
  const candidates = compiled.filter((c) => !placed.has(c.index) && c.op.call <= deadline.op.ret!).sort((a, b) => a.op.call - b.op.call);
  for (const c of candidates) {
    const why = step(state, c) === null ? whyNot(state, c, values) : 'fits here, but no order of the rest does';
    lines.push(`  ${formatOperation(c.op)}: ${why}`);
  }
  return lines.join('\n');
}

/**
 * Drops unknown writes whose value nothing ever observed. Each one left in the search doubles
 * the subsets of unknown operations it may explore (they never return, so they stay candidates
 * to the end), and a cluster test that kills leaders leaves many of them behind.
 *
 * Sound because: take any valid linearization containing such a write U (value v). First drop
 * every unknown operation that was a no-op in it (still valid). Between U and the next write W
 * only reads of v, CASes expecting v, or failed CASes could sit, and only ones that returned
 * after U's call. None of the first two exist, and a failed CAS reporting its current value
 * would report v, which none does. A failed CAS
 * that did not report its current value observes only "not the expected value", which v might
 * have provided, so U is kept if any such CAS could follow it (returned after U's call). So
 * nothing lies between U and W, W is a put, and dropping U leaves the rest valid.
 */
function dropUnobservedUnknownWrites(ops: readonly Operation[]): Operation[] {
  // For each value: the latest return of an operation that observed it. An observation that
  // returned before U was even invoked cannot follow U in any linearization.
  const lastObserved = new Map<string, number>();
  const observe = (v: string, at: number): void => {
    lastObserved.set(v, Math.max(lastObserved.get(v) ?? -Infinity, at));
  };
  let lastBlindFailure = -Infinity;
  for (const op of ops) {
    // An unknown op has no return: it may observe at any time after its call.
    const at = op.status === 'ok' ? op.ret! : Infinity;
    if (op.kind === 'cas') {
      if (typeof op.input.expected === 'string') observe(op.input.expected, at);
      if (op.status === 'ok' && op.output?.succeeded !== true) {
        const cur = op.output?.current;
        if (cur === undefined) lastBlindFailure = Math.max(lastBlindFailure, at);
        else if (cur !== null) observe(cur, at);
      }
    }
    if (op.kind === 'get' && op.status === 'ok' && op.output?.found === true && op.output.value !== undefined) {
      observe(op.output.value, at);
    }
  }
  return ops.filter(
    (op) => op.status !== 'unknown' || op.call <= lastBlindFailure || op.call <= (lastObserved.get(op.input.value!) ?? -Infinity),
  );
}

function checkKey(key: string, all: readonly Operation[], maxSteps: number): KeyResult {
  const ops = dropUnobservedUnknownWrites(all);
  const { compiled, values } = compile(ops);
  if (compiled.length === 0) return { key, verdict: 'linearizable', operations: all.length, steps: 0 };
  const r = search(compiled, maxSteps);
  const base = { key, verdict: r.verdict, operations: all.length, steps: r.steps };
  switch (r.verdict) {
    case 'linearizable':
      return base;
    case 'unknown':
      return {
        ...base,
        explanation: `search budget of ${maxSteps} steps exhausted; longest linearizable prefix found: ${r.longest.length} of ${compiled.length} operations`,
      };
    case 'not-linearizable':
      return { ...base, explanation: explain(compiled, values, r.longest) };
  }
}

/**
 * Checks that a history of register operations is linearizable, key by key.
 *
 * 'fail' operations are dropped (never applied); 'unknown' gets are dropped (reads have no
 * effect); 'unknown' puts and CASes may take effect at any point after their call, or never.
 * A key whose search exceeds `maxSteps` gets verdict 'unknown' and makes `ok` false.
 */
export function checkLinearizable(history: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  validate(history);
  const maxSteps = opts.maxSteps ?? DEFAULT_MAX_STEPS;
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    if (op.status === 'fail') continue;
    if (op.status === 'unknown' && op.kind === 'get') continue;
    let list = byKey.get(op.key);
    if (list === undefined) {
      list = [];
      byKey.set(op.key, list);
    }
    list.push(op);
  }
  const keys = [...byKey.keys()].sort().map((k) => checkKey(k, byKey.get(k)!, maxSteps));
  const verdict: Verdict = keys.some((k) => k.verdict === 'not-linearizable')
    ? 'not-linearizable'
    : keys.some((k) => k.verdict === 'unknown')
      ? 'unknown'
      : 'linearizable';
  return {
    ok: verdict === 'linearizable',
    verdict,
    keys,
    operations: keys.reduce((k, r) => k + r.operations, 0),
  };
}

// Generates histories that are linearizable by construction: concurrent clients run against
// one in-memory register map, and each operation takes effect at a moment chosen at random
// strictly inside its [call, ret] interval. Unknown writes may take effect at any later time,
// even after their client has moved on, or never; failed writes never do. Used by the
// property and performance tests (and usable by anyone who needs a valid history to mutate).
import type { Operation } from './history.js';
import { HistoryRecorder } from './recorder.js';

/** Integer source; src/raft/rand.ts seededRandom fits, as does a fast-check choice list. */
export interface Chooser {
  int(maxExclusive: number): number;
}

export interface SimulateOptions {
  readonly clients: number;
  readonly keys: readonly string[];
  readonly opsPerClient: number;
  /** Distinct values written per key; 0 = every write is a fresh value. */
  readonly values: number;
  /** Percent of writes the server reports as not applied. */
  readonly failPercent: number;
  /** Percent of operations whose outcome is lost (timeouts, leader change). */
  readonly unknownPercent: number;
  /**
   * Whether a failed CAS reports the value it compared against (leaderd's
   * CompareAndSwapResponse always does). Default 'sometimes'.
   */
  readonly reportCurrent?: 'always' | 'sometimes';
}

type ClientState =
  | { phase: 'idle' }
  | { phase: 'called'; id: number }
  | { phase: 'applied'; id: number; output: { found?: boolean; value?: string; succeeded?: boolean; current?: string | null } };

export function simulateHistory(rng: Chooser, o: SimulateOptions): Operation[] {
  let now = 0;
  const rec = new HistoryRecorder(() => now);
  const register = new Map<string, string | null>();
  const pending = new Map<number, { key: string; kind: 'put' | 'get' | 'cas'; value?: string; expected?: string | null }>();
  const clients: ClientState[] = Array.from({ length: o.clients }, () => ({ phase: 'idle' }));
  const budget = Array.from({ length: o.clients }, () => o.opsPerClient);
  /** Unknown writes that have not taken effect yet and still may. */
  const limbo: number[] = [];
  let fresh = 0;
  const pickValue = (): string => (o.values > 0 ? `v${rng.int(o.values)}` : `v${fresh++}`);

  const apply = (id: number): { found?: boolean; value?: string; succeeded?: boolean; current?: string | null } => {
    const p = pending.get(id)!;
    const cur = register.get(p.key) ?? null;
    switch (p.kind) {
      case 'put':
        register.set(p.key, p.value!);
        return {};
      case 'get':
        return cur === null ? { found: false } : { found: true, value: cur };
      case 'cas':
        if (cur === p.expected) {
          register.set(p.key, p.value!);
          return { succeeded: true };
        }
        if (o.reportCurrent !== 'always' && rng.int(2) === 0) return { succeeded: false };
        return { succeeded: false, current: cur };
    }
  };

  for (;;) {
    type Action = { kind: 'invoke' | 'decide' | 'return'; client: number } | { kind: 'limbo'; at: number };
    const actions: Action[] = [];
    clients.forEach((c, client) => {
      if (c.phase === 'idle' && budget[client]! > 0) actions.push({ kind: 'invoke', client });
      if (c.phase === 'called') actions.push({ kind: 'decide', client });
      if (c.phase === 'applied') actions.push({ kind: 'return', client });
    });
    limbo.forEach((_, at) => actions.push({ kind: 'limbo', at }));
    if (actions.length === 0) break;
    // Choice 0 (what a shrunk or exhausted choice list yields) must still move time on, or
    // every operation collapses into one instant and the history is all-concurrent.
    now += [1, 0, 2][rng.int(3)]!;
    const a = actions[rng.int(actions.length)]!;
    if (a.kind === 'limbo') {
      const [id] = limbo.splice(a.at, 1);
      apply(id!);
      continue;
    }
    const c = clients[a.client]!;
    switch (a.kind) {
      case 'invoke': {
        budget[a.client]!--;
        const key = o.keys[rng.int(o.keys.length)]!;
        const k = rng.int(3);
        let id: number;
        if (k === 0) {
          const value = pickValue();
          id = rec.invoke(a.client, key, 'put', { value });
          pending.set(id, { key, kind: 'put', value });
        } else if (k === 1) {
          id = rec.invoke(a.client, key, 'get', {});
          pending.set(id, { key, kind: 'get' });
        } else {
          const e = rng.int(3);
          const expected = e === 0 ? null : e === 1 ? (register.get(key) ?? null) : pickValue();
          const value = pickValue();
          id = rec.invoke(a.client, key, 'cas', { expected, value });
          pending.set(id, { key, kind: 'cas', expected, value });
        }
        clients[a.client] = { phase: 'called', id };
        break;
      }
      case 'decide': {
        if (c.phase !== 'called') throw new Error('unreachable');
        const roll = rng.int(100);
        const write = pending.get(c.id)!.kind !== 'get';
        if (write && roll < o.failPercent) {
          rec.fail(c.id);
          clients[a.client] = { phase: 'idle' };
        } else if (roll >= 100 - o.unknownPercent) {
          // Took effect now, or later, or never: the client cannot tell which.
          const when = rng.int(3);
          if (when === 0) apply(c.id);
          else if (when === 1 && write) limbo.push(c.id);
          rec.unknown(c.id);
          clients[a.client] = { phase: 'idle' };
        } else {
          clients[a.client] = { phase: 'applied', id: c.id, output: apply(c.id) };
        }
        break;
      }
      case 'return':
        if (c.phase !== 'applied') throw new Error('unreachable');
        rec.complete(c.id, c.output);
        clients[a.client] = { phase: 'idle' };
        break;
    }
  }
  return rec.history();
}

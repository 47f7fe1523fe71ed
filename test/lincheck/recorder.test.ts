// The recorder is what the cluster tests trust to turn client calls into a history; a wrong
// timestamp or a lost status would make the checker judge a different execution.
import { describe, expect, it } from 'vitest';
import { checkLinearizable } from './checker.js';
import { HistoryRecorder } from './recorder.js';

function clock(): { now: () => number; at: (t: number) => void } {
  let t = 0;
  return { now: () => t, at: (x) => (t = x) };
}

describe('HistoryRecorder', () => {
  it('records call and return times, inputs, outputs and statuses', () => {
    const c = clock();
    const rec = new HistoryRecorder(c.now);
    c.at(1);
    const p = rec.invoke(1, 'k', 'put', { value: 'a' });
    c.at(2);
    const g = rec.invoke(2, 'k', 'get');
    c.at(3);
    rec.complete(p);
    c.at(4);
    rec.complete(g, { found: true, value: 'a' });
    c.at(5);
    const f = rec.invoke(1, 'k', 'cas', { expected: null, value: 'b' });
    c.at(6);
    rec.fail(f);
    c.at(7);
    const u = rec.invoke(1, 'k', 'put', { value: 'c' });
    c.at(8);
    rec.unknown(u);
    expect(rec.history()).toEqual([
      { id: p, client: 1, key: 'k', kind: 'put', call: 1, ret: 3, input: { value: 'a' }, output: {}, status: 'ok' },
      { id: g, client: 2, key: 'k', kind: 'get', call: 2, ret: 4, input: {}, output: { found: true, value: 'a' }, status: 'ok' },
      { id: f, client: 1, key: 'k', kind: 'cas', call: 5, ret: 6, input: { expected: null, value: 'b' }, status: 'fail' },
      { id: u, client: 1, key: 'k', kind: 'put', call: 7, ret: null, input: { value: 'c' }, status: 'unknown' },
    ]);
    expect(checkLinearizable(rec.history()).verdict).toBe('linearizable');
  });

  it('an operation still in flight when the history is taken counts as unknown', () => {
    const rec = new HistoryRecorder();
    const id = rec.invoke(1, 'k', 'put', { value: 'a' });
    expect(rec.history()[0]).toMatchObject({ id, ret: null, status: 'unknown' });
  });

  it('uses performance.now() by default', () => {
    const before = performance.now();
    const rec = new HistoryRecorder();
    const id = rec.invoke(1, 'k', 'get');
    rec.complete(id, { found: false });
    const op = rec.history()[0]!;
    expect(op.call).toBeGreaterThanOrEqual(before);
    expect(op.ret!).toBeGreaterThanOrEqual(op.call);
    expect(op.ret!).toBeLessThanOrEqual(performance.now());
  });

  it('refuses a second operation from a client with one in flight', () => {
    const rec = new HistoryRecorder();
    rec.invoke(1, 'k', 'get');
    expect(() => rec.invoke(1, 'k', 'get')).toThrow(/still in flight/);
    expect(() => rec.invoke(2, 'k', 'get')).not.toThrow();
  });

  it('refuses to settle an operation twice', () => {
    const rec = new HistoryRecorder();
    const id = rec.invoke(1, 'k', 'put', { value: 'a' });
    rec.unknown(id);
    expect(() => rec.complete(id)).toThrow(/already settled as unknown/);
    expect(() => rec.fail(99)).toThrow(/no operation #99/);
  });

  it('a history is a snapshot: later changes do not alter it', () => {
    const rec = new HistoryRecorder();
    const id = rec.invoke(1, 'k', 'put', { value: 'a' });
    const before = rec.history();
    rec.complete(id);
    expect(before[0]!.status).toBe('unknown');
    expect(rec.history()[0]!.status).toBe('ok');
  });
});

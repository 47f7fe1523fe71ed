// The bench's arithmetic: percentiles that are observed values, CPU profile attribution,
// and the /proc readers it takes memory and CPU figures from.
import { describe, expect, it } from 'vitest';
import { cpuSeconds, rssBytes, stats } from '../../bench/procs.js';
import { area, summarize } from '../../bench/profile-summary.js';

describe('bench utilities', () => {
  it('stats: nearest-rank percentiles, each an observed value', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
    expect(stats(xs)).toEqual({ n: 100, min: 1, median: 50, p90: 90, p99: 99, max: 100 });
    expect(stats([7])).toEqual({ n: 1, min: 7, median: 7, p90: 7, p99: 7, max: 7 });
    expect(stats([])).toBeUndefined();
    // Numeric, not lexicographic, order.
    expect(stats([10, 9, 100])?.median).toBe(10);
  });

  it('reads this process from /proc; a dead pid gives undefined', () => {
    expect(rssBytes(process.pid)).toBeGreaterThan(10 * 2 ** 20);
    expect(cpuSeconds(process.pid)).toBeGreaterThan(0);
    expect(rssBytes(2 ** 22 + 1)).toBeUndefined();
  });

  it('profile summary: self time by package and by function', () => {
    expect(area('file:///x/node_modules/@grpc/grpc-js/build/src/call.js')).toBe('@grpc/grpc-js');
    expect(area('file:///x/dist/src/server/node.js')).toBe('leaderd server');
    expect(area('node:internal/fs')).toBe('node internals');
    const s = summarize({
      nodes: [
        { id: 1, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
        { id: 2, callFrame: { functionName: 'persist', url: 'file:///x/dist/src/storage/leveldb-storage.js', lineNumber: 9 } },
      ],
      samples: [1, 2, 2, 1],
      timeDeltas: [1000, 2000, 3000, 4000],
    });
    expect(s.totalMs).toBe(10);
    expect(s.byArea.get('(idle)')).toBe(5);
    expect(s.byArea.get('leaderd storage')).toBe(5);
    expect(s.byFunction.get('persist leaderd storage:10')).toBe(5);
  });
});

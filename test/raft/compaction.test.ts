// Log compaction and snapshot transfer (extended paper §7), driven by hand through the harness.
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';
import type { Message } from '../../src/raft/types.js';

const enc = (s: string) => new TextEncoder().encode(s);

describe('log compaction (extended paper §7)', () => {
  it('a follower behind the compaction point receives the snapshot in chunks and catches up', () => {
    const ids = ['a', 'b', 'c'];
    const c = new Cluster(ids, { snapshotChunkBytes: 16 });
    c.forceElect('a');
    c.isolate('c');
    for (let i = 0; i < 30; i++) c.propose(`v${i}`);
    const a = c.node('a');
    const applied = a.status().appliedIndex;
    const state = enc(JSON.stringify(c.appliedValues('a')));
    a.compact(applied, state);
    expect(a.status().firstLogIndex).toBe(applied + 1);
    const chunks: Message[] = [];
    c.filter = (m) => {
      if (m.type === 'snap') chunks.push(m);
      return true;
    };
    c.heal();
    c.tick(5);
    c.propose('after');
    c.tick(2);
    expect(chunks.length).toBeGreaterThan(Math.floor(state.length / 16));
    const disk = c.disks.get('c')!;
    expect(disk.snapshot?.meta.index).toBe(applied);
    expect(new TextDecoder().decode(disk.snapshot!.data)).toBe(new TextDecoder().decode(state));
    expect(c.appliedValues('c')).toEqual(['after']);
    expect(c.node('c').status().commitIndex).toBe(a.status().commitIndex);
  });
});

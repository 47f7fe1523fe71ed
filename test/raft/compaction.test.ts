// Log compaction and snapshot transfer (extended paper §7), driven by hand through the harness.
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';
import { wholeSnapshot } from '../../src/raft/snapshot-data.js';
import type { Message } from '../../src/raft/types.js';

const enc = (s: string) => new TextEncoder().encode(s);

/** Heal the partition, let `id` catch up, write one more entry; the types of the messages `id` was sent. */
function rejoin(c: Cluster, id: string): string[] {
  const sent: string[] = [];
  c.filter = (m) => {
    if (m.to === id) sent.push(m.type);
    return true;
  };
  c.heal();
  c.tick(5);
  c.propose('after');
  c.tick(2);
  return sent;
}

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
    expect(new TextDecoder().decode(wholeSnapshot(disk.snapshot!.data))).toBe(new TextDecoder().decode(state));
    expect(c.appliedValues('c')).toEqual(['after']);
    expect(c.node('c').status().commitIndex).toBe(a.status().commitIndex);
  });

  it('a follower a few entries behind catches up from the trailing tail kept after a snapshot, not from the snapshot', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    c.isolate('c');
    for (let i = 0; i < 30; i++) c.propose(`v${i}`);
    const a = c.node('a');
    const applied = a.status().appliedIndex;
    a.compact(applied, enc('state'), { entries: 40, bytes: 1 << 20 });
    // The log still reaches back past c's last entry: nothing is cut that c lacks.
    expect(a.status().firstLogIndex).toBeLessThanOrEqual(c.node('c').status().lastLogIndex);
    const sent = rejoin(c, 'c');
    expect(sent).not.toContain('snap');
    expect(c.disks.get('c')!.snapshot).toBeNull();
    expect(c.appliedValues('c')).toEqual([...Array.from({ length: 30 }, (_, i) => `v${i}`), 'after']);
  });

  it('the tail is bounded by bytes as well as entries: past it a lagging follower gets the snapshot', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    c.isolate('c');
    for (let i = 0; i < 30; i++) c.propose(`value-${String(i).padStart(2, '0')}`); // 8 bytes each
    const a = c.node('a');
    const applied = a.status().appliedIndex;
    a.compact(applied, enc('state'), { entries: 1000, bytes: 80 });
    // At most 10 entries of 8 bytes stay before the snapshot index.
    expect(applied - (a.status().firstLogIndex - 1)).toBe(10);
    const sent = rejoin(c, 'c');
    expect(sent).toContain('snap');
    expect(c.disks.get('c')!.snapshot?.meta.index).toBe(applied);
    expect(c.appliedValues('c')).toEqual(['after']);
  });

  it('a leader whose followers do not acknowledge refuses proposals past maxUncommittedBytes, and accepts again once they commit', () => {
    const c = new Cluster(['a', 'b', 'c'], { maxUncommittedBytes: 100 });
    c.forceElect('a');
    const a = c.node('a');
    c.isolate('a');
    const accepted: boolean[] = [];
    for (let i = 0; i < 5; i++) accepted.push(a.propose(new Uint8Array(30)).ok);
    // 30 + 30 + 30 fit in 100 bytes; the fourth would not.
    expect(accepted).toEqual([true, true, true, false, false]);
    const refused = a.propose(new Uint8Array(20));
    expect(refused).toMatchObject({ ok: false, error: 'overloaded', leaderId: 'a' });
    c.heal();
    c.tick(3);
    c.deliverAll();
    expect(a.status().commitIndex).toBe(a.status().lastLogIndex);
    // Nothing pending: a single entry larger than the bound is still accepted, so no proposal is refused for ever.
    expect(a.propose(new Uint8Array(500)).ok).toBe(true);
    expect(a.propose(new Uint8Array(1)).ok).toBe(false);
  });
});

// InstallSnapshot against a faulty or hostile sender: every transfer declares its size
// and checksum; a receiver holds at most what was declared (and at most its limit) and
// installs nothing that does not add up, and the real leader starts a refused transfer
// over and gets it through.
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';
import { crc32Portable } from '../../src/raft/crc32.js';
import type { Message, SnapshotRequest, SnapshotResponse } from '../../src/raft/types.js';

const enc = (s: string) => new TextEncoder().encode(s);

/** a leads a, b, c; c holds the first `n` entries like everyone else. */
function cluster(over: { maxSnapshotBytes?: number } = {}): Cluster {
  const c = new Cluster(['a', 'b', 'c'], { snapshotChunkBytes: 16, ...over });
  c.forceElect('a');
  for (let i = 0; i < 5; i++) c.propose(`v${i}`);
  return c;
}

/** A chunk as a peer claiming to be leader `a` would send it to c. */
function chunk(c: Cluster, over: Partial<SnapshotRequest> & Pick<SnapshotRequest, 'offset' | 'data' | 'done'>): SnapshotRequest {
  const a = c.node('a').status();
  return {
    type: 'snap',
    clusterId: 'test-cluster',
    from: 'a',
    to: 'c',
    term: a.term,
    meta: { index: a.commitIndex + 100, term: a.term, conf: { voters: ['a', 'b', 'c'], learners: [] } },
    round: 1,
    totalSize: 64,
    checksum: 0,
    ...over,
  };
}

/** Step `msgs` into c as if they arrived from the network; return c's answers. */
function sendToC(c: Cluster, msgs: SnapshotRequest[]): SnapshotResponse[] {
  for (const m of msgs) expect(c.node('c').step(m)).toEqual({ ok: true });
  c.processReadies();
  const answers = c.inFlight.filter((m): m is SnapshotResponse => m.from === 'c' && m.type === 'snapResp');
  c.inFlight = [];
  return answers;
}

function refusals(c: Cluster): string[] {
  return c.events.get('c')!.flatMap((e) => (e.kind === 'snapshot-refused' ? [e.reason] : []));
}

/** c installed nothing and still follows the real leader: one more write reaches it through the log. */
function expectUntouched(c: Cluster, lastIndex: number): void {
  expect(c.disks.get('c')!.snapshot).toBeNull();
  expect(c.node('c').status().lastLogIndex).toBe(lastIndex);
  c.propose('after');
  c.tick(2);
  expect(c.appliedValues('c')).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'after']);
}

describe('snapshot transfer against a hostile sender', () => {
  it('refuses at the first chunk a transfer declared larger than maxSnapshotBytes', () => {
    const c = cluster({ maxSnapshotBytes: 1000 });
    const last = c.node('c').status().lastLogIndex;
    const answers = sendToC(c, [chunk(c, { offset: 0, data: new Uint8Array(16), done: false, totalSize: 1001 })]);
    expect(answers.map((m) => m.refused)).toEqual([true]);
    expect(refusals(c)).toEqual(['too-large']);
    // The next chunks find no transfer under way: they are pointed back at offset 0, not buffered.
    const more = sendToC(c, [chunk(c, { offset: 16, data: new Uint8Array(16), done: true, totalSize: 1001 })]);
    expect(more.map((m) => [m.nextOffset, m.done])).toEqual([[0, false]]);
    expectUntouched(c, last);
  });

  it('refuses, rather than throws, a declared size within the limit that cannot be allocated', () => {
    // 16 GiB is past the largest typed array this process can make: the buffer the
    // transfer is filled into cannot exist, whatever memory the machine has.
    const c = cluster({ maxSnapshotBytes: 2 ** 40 });
    const last = c.node('c').status().lastLogIndex;
    const answers = sendToC(c, [chunk(c, { offset: 0, data: new Uint8Array(16), done: false, totalSize: 2 ** 34 })]);
    expect(answers.map((m) => m.refused)).toEqual([true]);
    expect(refusals(c)).toEqual(['too-large']);
    expectUntouched(c, last);
  });

  it('holds no byte past the declared size: endless chunks are refused, never buffered', () => {
    const c = cluster();
    const last = c.node('c').status().lastLogIndex;
    const data = new Uint8Array(16).fill(1);
    // Four chunks fill the declared 64 bytes; the fifth would run past them.
    const first = sendToC(
      c,
      [0, 16, 32, 48].map((offset) => chunk(c, { offset, data, done: false })),
    );
    expect(first.map((m) => m.nextOffset)).toEqual([16, 32, 48, 64]);
    const answers = sendToC(c, [chunk(c, { offset: 64, data, done: false })]);
    expect(answers.map((m) => m.refused)).toEqual([true]);
    // A sender that carries on from where it was gets sent back to 0 every time, and
    // restarting from 0 with the same lie ends the same way: at most 64 bytes are held.
    for (let round = 0; round < 50; round++) {
      const again = sendToC(
        c,
        [0, 16, 32, 48, 64, 80].map((offset) => chunk(c, { offset, data, done: false })),
      );
      expect(again.filter((m) => m.refused)).toHaveLength(1);
      expect(again.at(-1)!.nextOffset).toBe(0);
    }
    expect(refusals(c)).toEqual(Array.from({ length: 51 }, () => 'overrun'));
    expectUntouched(c, last);
  });

  it('refuses a transfer whose last chunk ends before the declared size (truncated)', () => {
    const c = cluster();
    const last = c.node('c').status().lastLogIndex;
    const data = enc('0123456789abcdef');
    const answers = sendToC(c, [
      chunk(c, { offset: 0, data, done: false, checksum: crc32Portable(data) }),
      chunk(c, { offset: 16, data, done: true, checksum: crc32Portable(data) }),
    ]);
    expect(answers.map((m) => m.refused)).toEqual([false, true]);
    expect(refusals(c)).toEqual(['truncated']);
    expectUntouched(c, last);
  });

  it('refuses a complete transfer whose bytes do not match its checksum (corrupt)', () => {
    const c = cluster();
    const last = c.node('c').status().lastLogIndex;
    const whole = enc('0123456789abcdef0123456789ABCDEF');
    const checksum = crc32Portable(whole);
    const corrupt = whole.slice(16);
    corrupt[3] = corrupt[3]! ^ 0x20;
    const answers = sendToC(c, [
      chunk(c, { offset: 0, data: whole.subarray(0, 16), done: false, totalSize: 32, checksum }),
      chunk(c, { offset: 16, data: corrupt, done: true, totalSize: 32, checksum }),
    ]);
    expect(answers.map((m) => [m.refused, m.done])).toEqual([
      [false, false],
      [true, false],
    ]);
    expect(refusals(c)).toEqual(['checksum']);
    expectUntouched(c, last);
  });

  it('a chunk claiming another size or checksum mid-transfer starts nothing new and is sent back to 0', () => {
    const c = cluster();
    const data = new Uint8Array(16).fill(2);
    const answers = sendToC(c, [
      chunk(c, { offset: 0, data, done: false }),
      chunk(c, { offset: 16, data, done: false, totalSize: 1 << 30 }),
    ]);
    expect(answers.map((m) => m.nextOffset)).toEqual([16, 0]);
    expect(refusals(c)).toEqual([]);
  });
});

describe('snapshot transfer from the real leader', () => {
  /** a compacts past c, which was cut off; returns the snapshot bytes. */
  function behindBySnapshot(c: Cluster): Uint8Array {
    c.isolate('c');
    for (let i = 0; i < 20; i++) c.propose(`w${i}`);
    const a = c.node('a');
    const state = enc(JSON.stringify(c.appliedValues('a')));
    a.compact(a.status().appliedIndex, state);
    return state;
  }

  it('a chunk corrupted on the way is refused, and the leader starts over and installs the right bytes', () => {
    const c = new Cluster(['a', 'b', 'c'], { snapshotChunkBytes: 16 });
    c.forceElect('a');
    const state = behindBySnapshot(c);
    let corrupted = 0;
    c.filter = (m: Message) => {
      if (m.type === 'snap' && m.offset === 32 && corrupted === 0) {
        corrupted++;
        const data = m.data.slice();
        data[0] = data[0]! ^ 0xff;
        c.node('c').step({ ...m, data });
        return false;
      }
      return true;
    };
    c.heal();
    c.tickUntil(() => c.disks.get('c')!.snapshot !== null, 50);
    expect(corrupted).toBe(1);
    expect(refusals(c)).toEqual(['checksum']);
    expect(c.disks.get('c')!.snapshot!.data).toEqual(state);
    c.propose('after');
    c.tick(2);
    expect(c.appliedValues('c')).toEqual(['after']);
  });

  it('a follower whose limit is below the snapshot refuses each attempt, and the leader resends only at heartbeats', () => {
    const c = new Cluster(['a', 'b', 'c'], { snapshotChunkBytes: 16 });
    c.start('c', { maxSnapshotBytes: 8 });
    c.forceElect('a');
    behindBySnapshot(c);
    let chunks = 0;
    c.filter = (m) => {
      if (m.type === 'snap' && m.to === 'c') chunks++;
      return true;
    };
    c.heal();
    c.tick(20);
    // One refused first chunk per resend interval (2 heartbeats), not a tight loop.
    expect(chunks).toBeGreaterThan(0);
    expect(chunks).toBeLessThanOrEqual(11);
    expect(new Set(refusals(c))).toEqual(new Set(['too-large']));
    expect(c.disks.get('c')!.snapshot).toBeNull();
    // The cluster goes on without c.
    c.propose('still');
    c.tick(2);
    expect(c.appliedValues('b').at(-1)).toBe('still');
  });
});

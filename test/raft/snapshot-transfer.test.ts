// InstallSnapshot against a faulty or hostile sender: every transfer declares its size
// and checksum; a receiver holds at most what was declared (and at most its limit) and
// installs nothing that does not add up, and the real leader starts a refused transfer
// over and gets it through.
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';
import { crc32Portable } from '../../src/raft/crc32.js';
import { wholeSnapshot } from '../../src/raft/snapshot-data.js';
import type { Message, SnapshotData, SnapshotMeta, SnapshotRequest, SnapshotResponse, SnapshotSink } from '../../src/raft/types.js';

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

  it('a chunk resent while the first copy was slow costs one chunk, not a second copy of every later one', () => {
    const c = new Cluster(['a', 'b', 'c'], { snapshotChunkBytes: 16 });
    c.forceElect('a');
    const state = behindBySnapshot(c);
    const chunksNeeded = Math.ceil(state.length / 16);
    const sent: number[] = [];
    c.filter = (m) => {
      if (m.type === 'snap' && m.to === 'c') sent.push(m.offset);
      return true;
    };
    c.heal();
    // c is slow: nothing reaches it for 4 heartbeats, so the leader resends the first
    // chunk while the first copy is still on its way (the two arrive back to back).
    for (let i = 0; i < 4; i++) c.tickQuiet();
    c.tickUntil(() => c.disks.get('c')!.snapshot !== null, 50);
    expect(c.disks.get('c')!.snapshot!.data).toEqual(state);
    expect(sent.filter((o) => o === 0).length).toBeGreaterThan(1);
    // Every chunk once, plus the copies of the first sent while c was quiet; each later
    // chunk twice (every answer to a copy sending the next chunk again) was the bug.
    const resentFirst = sent.filter((o) => o === 0).length - 1;
    expect(sent.length).toBe(chunksNeeded + resentFirst);
    expect(new Set(sent).size).toBe(chunksNeeded);
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

describe('snapshot bytes read and written through the injected interfaces', () => {
  /** A snapshot source that is no Uint8Array (a file, say) and counts what the core reads. */
  function countingSource(bytes: Uint8Array, checksum?: number) {
    const reads: number[] = [];
    const data: SnapshotData = {
      byteLength: bytes.length,
      subarray(begin, end) {
        reads.push(end - begin);
        return bytes.slice(begin, end);
      },
      ...(checksum !== undefined ? { checksum } : {}),
    };
    return { data, reads };
  }

  /** A sink that records every call; finish() hands back a source over what arrived. */
  function recordingSinks() {
    const log: string[] = [];
    const open = (meta: SnapshotMeta, totalSize: number): SnapshotSink => {
      const parts: Uint8Array[] = [];
      log.push(`open ${meta.index} ${totalSize}`);
      return {
        append(chunk) {
          parts.push(chunk.slice());
          log.push(`append ${chunk.length}`);
        },
        finish(checksum) {
          log.push('finish');
          const all = Uint8Array.from(parts.flatMap((p) => [...p]));
          return { byteLength: all.length, subarray: (b, e) => all.slice(b, e), checksum };
        },
        discard() {
          log.push('discard');
        },
      };
    };
    return { log, open };
  }

  function behind(c: Cluster, data: SnapshotData): void {
    c.forceElect('a');
    c.isolate('c');
    for (let i = 0; i < 10; i++) c.propose(`w${i}`);
    const a = c.node('a');
    a.compact(a.status().appliedIndex, data);
    c.heal();
  }

  it('the leader reads a snapshot a chunk at a time and never computes a checksum it was given', () => {
    const bytes = enc('x'.repeat(100));
    const src = countingSource(bytes, crc32Portable(bytes, 0));
    const sinks = recordingSinks();
    const c = new Cluster(['a', 'b', 'c'], { snapshotChunkBytes: 16 });
    c.start('c', { openSnapshotSink: sinks.open });
    behind(c, src.data);
    c.tickUntil(() => c.disks.get('c')!.snapshot !== null, 50);
    // One read per chunk sent (7 of at most 16 bytes), none for the checksum.
    expect(src.reads.every((n) => n <= 16)).toBe(true);
    expect(src.reads.reduce((a, b) => a + b, 0)).toBe(100);
    expect(sinks.log).toEqual([
      'open ' + c.disks.get('c')!.snapshot!.meta.index + ' 100',
      ...Array(6).fill('append 16'),
      'append 4',
      'finish',
    ]);
    expect(wholeSnapshot(c.disks.get('c')!.snapshot!.data)).toEqual(bytes);
  });

  it('without a known checksum the leader computes it chunk by chunk, once', () => {
    const bytes = enc('y'.repeat(100));
    const src = countingSource(bytes);
    const c = new Cluster(['a', 'b', 'c'], { snapshotChunkBytes: 16 });
    behind(c, src.data);
    c.tickUntil(() => c.disks.get('c')!.snapshot !== null, 50);
    // 100 bytes for the checksum, 100 more to send them; never more than a chunk at once.
    expect(src.reads.every((n) => n <= 16)).toBe(true);
    expect(src.reads.reduce((a, b) => a + b, 0)).toBe(200);
    expect(wholeSnapshot(c.disks.get('c')!.snapshot!.data)).toEqual(bytes);
  });

  it('a refused or superseded transfer discards its sink; a sink that cannot open refuses as too large', () => {
    const c = cluster();
    const sinks = recordingSinks();
    let opens = 0;
    c.start('c', {
      openSnapshotSink: (meta, size) => (++opens === 1 ? null : sinks.open(meta, size)),
    });
    const data = new Uint8Array(16).fill(3);
    expect(sendToC(c, [chunk(c, { offset: 0, data, done: false })]).map((m) => m.refused)).toEqual([true]);
    expect(refusals(c)).toEqual(['too-large']);
    // A second transfer starts, then a new one (another checksum) replaces it from offset 0.
    sendToC(c, [chunk(c, { offset: 0, data, done: false }), chunk(c, { offset: 0, data, done: false, checksum: 7 })]);
    // ... which ends short of its size: refused, and its sink discarded too.
    sendToC(c, [chunk(c, { offset: 16, data, done: true, checksum: 7 })]);
    expect(refusals(c)).toEqual(['too-large', 'truncated']);
    expect(sinks.log.filter((l) => !l.startsWith('append'))).toEqual(['open 106 64', 'discard', 'open 106 64', 'discard']);
  });
});

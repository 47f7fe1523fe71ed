// The simulated disk is the simulator's fault model for power loss: a crash keeps what
// was synced and loses the rest. If it kept unsynced writes, every "vote not persisted
// before the grant" or "entry acknowledged before it was durable" bug would survive
// the simulator's crashes unseen, so the model itself gets a broken case.
import { describe, expect, it } from 'vitest';
import { applyOp, emptyLog, MemDisk, type DiskOp, type LogState } from './disk.js';
import type { Entry } from '../../src/raft/types.js';

const e = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: new Uint8Array([index]) });
const entries = (...es: Entry[]): DiskOp => ({ kind: 'entries', entries: es });
const vote = (term: number, votedFor: string): DiskOp => ({ kind: 'hardState', hardState: { term, votedFor, commit: 0 } });
const shape = (s: Readonly<LogState>) => ({ hard: s.hardState, entries: s.entries.map((x) => `${x.index}/${x.term}`) });

interface CrashableDisk {
  current: LogState;
  readonly durableState: Readonly<LogState>;
  write(op: DiskOp): string | null;
  sync(): void;
  crash(): void;
}

/**
 * The property the simulator relies on, as a checker: after a crash, the disk holds
 * exactly what was synced. Returns what went wrong, or null.
 */
function checkCrashLosesUnsynced(disk: CrashableDisk): string | null {
  disk.write(entries(e(1, 1), e(2, 1)));
  disk.write(vote(1, 'a'));
  disk.sync();
  disk.write(entries(e(3, 1)));
  disk.write(vote(2, 'b'));
  const synced = JSON.stringify(shape(disk.durableState));
  disk.crash();
  const after = JSON.stringify(shape(disk.current));
  return after === synced ? null : `after a crash the disk holds ${after}, but only ${synced} was synced`;
}

/** A disk whose crash forgets nothing: the fault the simulator must not have. */
class DiskThatNeverLoses extends MemDisk {
  override crash(): void {
    // Power loss that loses nothing: unsynced writes stay.
  }
}

describe('MemDisk', () => {
  it('a crash keeps what was synced and loses the rest', () => {
    expect(checkCrashLosesUnsynced(new MemDisk())).toBeNull();
  });

  it('broken case: a disk that keeps unsynced writes across a crash is caught', () => {
    expect(checkCrashLosesUnsynced(new DiskThatNeverLoses())).toBe(
      'after a crash the disk holds {"hard":{"term":2,"votedFor":"b","commit":0},"entries":["1/1","2/1","3/1"]}, ' +
        'but only {"hard":{"term":1,"votedFor":"a","commit":0},"entries":["1/1","2/1"]} was synced',
    );
  });

  it('reads see unsynced writes while the node runs; a second crash changes nothing', () => {
    const d = new MemDisk();
    d.write(entries(e(1, 1)));
    d.sync();
    d.write(entries(e(2, 1)));
    expect(shape(d.current).entries).toEqual(['1/1', '2/1']);
    expect(shape(d.durableState).entries).toEqual(['1/1']);
    d.crash();
    d.crash();
    expect(shape(d.current).entries).toEqual(['1/1']);
    // Writes after the crash start from the durable state.
    d.write(entries(e(2, 2)));
    d.sync();
    expect(shape(d.durableState).entries).toEqual(['1/1', '2/2']);
  });

  it('an unsynced overwrite of a synced suffix is lost on crash: the old suffix is back', () => {
    const d = new MemDisk();
    d.write(entries(e(1, 1), e(2, 1), e(3, 1)));
    d.sync();
    d.write(entries(e(2, 2)));
    expect(shape(d.current).entries).toEqual(['1/1', '2/2']);
    d.crash();
    expect(shape(d.current).entries).toEqual(['1/1', '2/1', '3/1']);
  });
});

describe('applyOp contract checks', () => {
  it.each([
    { name: 'a gap after the last entry', op: entries(e(4, 1)), error: 'entries from 4 leave a gap after 2' },
    { name: 'entries not contiguous', op: entries(e(3, 1), e(5, 1)), error: 'entries not contiguous at 5' },
    { name: 'an append that continues the log', op: entries(e(3, 1)), error: null },
    { name: 'an overwrite from inside the log', op: entries(e(2, 2)), error: null },
  ])('$name', ({ op, error }) => {
    const s = emptyLog();
    applyOp(s, entries(e(1, 1), e(2, 1)));
    expect(applyOp(s, op)).toBe(error);
  });

  it('entries at or below the snapshot are refused', () => {
    const s = emptyLog();
    applyOp(s, {
      kind: 'install',
      snapshot: { meta: { index: 5, term: 2, conf: { voters: ['a'], learners: [] } }, data: new Uint8Array(0) },
    });
    expect(applyOp(s, entries(e(5, 2)))).toBe('entries from 5 overlap the snapshot at 5');
  });
});

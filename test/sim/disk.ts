// A node's stable storage in memory. Writes reach `durable` only when synced: a crash
// keeps `durable` and loses the rest, exactly what a real fsync boundary does. A Ready
// with mustSync=false may therefore be lost on crash, which is what the core promised
// is safe (etcd-io/raft MustSync).
import type { Entry, HardState, Snapshot } from '../../src/raft/types.js';

export interface LogState {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Entries after the snapshot (or from index 1), contiguous. */
  entries: Entry[];
}

export type DiskOp =
  | { readonly kind: 'entries'; readonly entries: readonly Entry[] }
  | { readonly kind: 'hardState'; readonly hardState: HardState }
  /** A snapshot received from the leader (InstallSnapshot, extended paper Figure 13). */
  | { readonly kind: 'install'; readonly snapshot: Snapshot }
  /** A snapshot the node took of its own state machine; keeps the entries after it. */
  | { readonly kind: 'compact'; readonly snapshot: Snapshot };

export const EMPTY_HARD_STATE: HardState = { term: 0, votedFor: null, commit: 0 };

export function emptyLog(): LogState {
  return { hardState: EMPTY_HARD_STATE, snapshot: null, entries: [] };
}

export function snapIndex(s: LogState): number {
  return s.snapshot?.meta.index ?? 0;
}

export function lastIndex(s: LogState): number {
  return snapIndex(s) + s.entries.length;
}

/** The entry at `index`, or undefined when compacted away or beyond the log. */
export function entryAt(s: LogState, index: number): Entry | undefined {
  return s.entries[index - snapIndex(s) - 1];
}

/** Term at `index`: from the log, from the snapshot boundary, 0 at index 0, else undefined. */
export function termAt(s: LogState, index: number): number | undefined {
  if (index === 0) return 0;
  const si = snapIndex(s);
  if (index === si) return s.snapshot?.meta.term;
  return entryAt(s, index)?.term;
}

/** Applies one write; returns a description of a contract breach by the writer, or null. */
export function applyOp(s: LogState, op: DiskOp): string | null {
  switch (op.kind) {
    case 'hardState':
      s.hardState = op.hardState;
      return null;
    case 'entries': {
      const first = op.entries[0];
      if (first === undefined) return null;
      const si = snapIndex(s);
      if (first.index <= si) return `entries from ${first.index} overlap the snapshot at ${si}`;
      if (first.index > lastIndex(s) + 1) return `entries from ${first.index} leave a gap after ${lastIndex(s)}`;
      s.entries.length = first.index - si - 1;
      for (let i = 0; i < op.entries.length; i++) {
        const e = op.entries[i]!;
        if (e.index !== first.index + i) return `entries not contiguous at ${e.index}`;
        s.entries.push(e);
      }
      return null;
    }
    case 'install': {
      const meta = op.snapshot.meta;
      // Figure 13 step 6: keep the suffix only if the log agrees at the snapshot's last entry.
      const keep = termAt(s, meta.index) === meta.term ? s.entries.filter((e) => e.index > meta.index) : [];
      s.snapshot = op.snapshot;
      s.entries = keep;
      return null;
    }
    case 'compact': {
      const meta = op.snapshot.meta;
      if (meta.index <= snapIndex(s)) return null;
      s.entries = s.entries.filter((e) => e.index > meta.index);
      s.snapshot = op.snapshot;
      return null;
    }
  }
}

function cloneLog(s: LogState): LogState {
  return { hardState: s.hardState, snapshot: s.snapshot, entries: s.entries.slice() };
}

export class MemDisk {
  /** What survives a crash. */
  private durable: LogState = emptyLog();
  /** What the node has written, synced or not; what reads see while it runs. */
  current: LogState = emptyLog();
  private unsynced: DiskOp[] = [];

  write(op: DiskOp): string | null {
    const err = applyOp(this.current, op);
    this.unsynced.push(op);
    return err;
  }

  sync(): void {
    for (const op of this.unsynced) applyOp(this.durable, op);
    this.unsynced = [];
  }

  /** Power loss: unsynced writes are gone. */
  crash(): void {
    this.unsynced = [];
    this.current = cloneLog(this.durable);
  }

  get durableState(): Readonly<LogState> {
    return this.durable;
  }
}

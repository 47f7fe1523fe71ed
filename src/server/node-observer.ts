// What the node runtime reports to whoever watches it (metrics, the leadership history,
// later a dashboard), without knowing who that is. The runtime calls these at the points
// where it carries out a Ready batch, so an observer can time every stage of a write:
//
//   proposed -> readyStarted (the batch that carries the entry) -> persisted (its fsync)
//   -> readyStarted (a later batch where it is committed) -> applied
//
// Every call is made synchronously on the runtime's event loop; an observer must be cheap
// (no I/O, no logging at info) and must never throw.
import type { Message, RaftEvent, Ready, SoftState } from '../raft/types.js';

export interface NodeObserver {
  /** The core accepted a proposal at `index` (this node leads). */
  proposed(index: number): void;
  /** The runtime starts carrying out `rd`. */
  readyStarted(rd: Ready): void;
  /** `rd`'s entries/hard state/snapshot are written (synced when `rd.mustSync`); `seconds` since its write was handed to storage. */
  persisted(rd: Ready, seconds: number): void;
  /**
   * One storage write completed: the Readies merged into it (group commit) carried
   * `entries` log entries; `synced` when it was fsynced; `seconds` from the first of
   * them being handed to storage (including the wait behind the write before it).
   */
  batchWritten(entries: number, synced: boolean, seconds: number): void;
  /** `rd`'s committed entries are applied to the state machine. */
  applied(rd: Ready): void;
  /** The core reported `ev` (votes, campaigns, step-downs, transfers). */
  event(ev: RaftEvent): void;
  /** Role, leader or term changed from `prev` to `soft`. */
  softStateChanged(prev: SoftState, soft: SoftState): void;
  /** A peer message arrived (before the core steps it). */
  received(msg: Message): void;
  /** A message is handed to the transport. */
  sent(msg: Message): void;
  /** This node took a snapshot of `bytes` bytes and compacted its log, in `seconds`. */
  snapshotTaken(bytes: number, seconds: number): void;
}

// Types shared by the Raft core and everything that drives it (runtime, storage,
// transport, simulator). Names follow the Raft paper (Ongaro & Ousterhout, extended
// version, Figure 2) and Ongaro's thesis so the code can be held against them.
//
// Indexes and terms are JavaScript numbers: exact up to 2^53, far beyond any log
// this system will write.

export type NodeId = string;

/** What an entry means to the core. `normal` entries are opaque to it. */
export type EntryType = 'normal' | 'noop' | 'conf';

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  /** Opaque payload for `normal`; an encoded ConfChange for `conf`; empty for `noop`. */
  readonly data: Uint8Array;
}

/** State that must be on stable storage before any message that depends on it is sent (Figure 2, "Persistent state"). */
export interface HardState {
  readonly term: number;
  readonly votedFor: NodeId | null;
  readonly commit: number;
}

/** The voting configuration. Learners receive the log but never vote and never lead. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** Single-server membership changes (thesis §4.1), see conf-change.ts for why not joint consensus. */
/**
 * `updateMember` changes no vote: it replaces the record a member's context carries
 * (the runtime's member record: addresses, data-dir incarnation), so that what one member
 * learned about another becomes replicated state, ordered with the other changes.
 */
export type ConfChangeOp = 'addVoter' | 'removeVoter' | 'addLearner' | 'promoteLearner' | 'updateMember';

export interface ConfChange {
  readonly op: ConfChangeOp;
  readonly nodeId: NodeId;
  /** Opaque to the core: the runtime keeps member addresses here. */
  readonly context?: string;
}

export interface SnapshotMeta {
  /** Index and term of the last entry the snapshot covers. */
  readonly index: number;
  readonly term: number;
  /** The configuration as of `index`. */
  readonly conf: ConfState;
}

/**
 * A snapshot's bytes as the core reads them: a chunk at a time, through this interface
 * (as etcd-io/raft reads through its Storage), never as one buffer it must hold. A
 * Uint8Array is one; the node passes a file read with positional reads, so a leader with
 * a gigabyte of state holds none of it to send it.
 */
export interface SnapshotData {
  readonly byteLength: number;
  /**
   * Bytes [begin, end), end <= byteLength. The core asks for at most snapshotChunkBytes at
   * a time and keeps the result only inside the message it sends.
   */
  subarray(begin: number, end: number): Uint8Array;
  /** RaftConfig.checksum of all the bytes, when known (stored with them): spares the core a pass over them. */
  readonly checksum?: number;
  /**
   * Optional, never called by the core: the bytes are no longer needed by whoever made
   * them (a file behind them is closed and removed).
   */
  release?(): void;
}

/**
 * Where an incoming snapshot transfer goes while it arrives (RaftConfig.openSnapshotSink):
 * memory by default, a spool file in the node. Calls come from inside step(), so they are
 * synchronous; an error thrown by one stops the node like any storage error.
 */
export interface SnapshotSink {
  /** The next chunk, in order; the sink copies what it keeps (the chunk's buffer is the message's). */
  append(chunk: Uint8Array): void;
  /** Every byte arrived and `checksum` (RaftConfig.checksum of them) was verified: the bytes, ready to persist and apply. */
  finish(checksum: number): SnapshotData;
  /** The transfer is dropped (refused, superseded, or not needed): release what was written. */
  discard(): void;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  /** The state machine's serialized state; opaque to the core. */
  readonly data: SnapshotData;
}

/**
 * What a node starts from: everything read back from stable storage. The driver
 * restores its state machine from `snapshot` itself; the core then hands out, as
 * committed entries, everything after the snapshot up to the commit index.
 */
export interface InitialState {
  readonly hardState: HardState;
  /** The latest snapshot, if the log was ever compacted (or one was installed). */
  readonly snapshot: Snapshot | null;
  /** Entries after the snapshot (or from index 1), contiguous and in order. */
  readonly entries: readonly Entry[];
  /** The configuration to use when neither snapshot nor log holds a conf entry (a brand-new cluster). */
  readonly bootstrapConf: ConfState;
}

// ---------------------------------------------------------------------------
// Messages. Every message carries the cluster id, its sender and recipient, and the
// sender's term. Discriminated by `type`.

interface MessageBase {
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** RequestVote (Figure 2), also used for PreVote (thesis §9.6) with `preVote: true`. */
export interface VoteRequest extends MessageBase {
  readonly type: 'vote';
  readonly preVote: boolean;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set when campaigning because of TimeoutNow: voters ignore their leader lease (thesis §3.10). */
  readonly transfer: boolean;
}

export interface VoteResponse extends MessageBase {
  readonly type: 'voteResp';
  readonly preVote: boolean;
  readonly granted: boolean;
}

/** AppendEntries (Figure 2); an empty `entries` is a heartbeat. */
export interface AppendRequest extends MessageBase {
  readonly type: 'app';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
  /**
   * Heartbeat round the message belongs to. The follower echoes it back; the leader
   * uses it for its lease (measured from when the round was *sent*) and ReadIndex.
   */
  readonly round: number;
}

export interface AppendResponse extends MessageBase {
  readonly type: 'appResp';
  readonly success: boolean;
  /** On success: the follower's log matches the leader's up to here. On rejection: the prevLogIndex refused. */
  readonly matchIndex: number;
  /** On rejection: where the leader should look next (fast backtracking, thesis §5.3 note). */
  readonly rejectHint: number;
  /** On rejection: term of the follower's entry at rejectHint (0 if none). */
  readonly rejectTerm: number;
  readonly round: number;
  /**
   * Answers the heartbeat round only (asyncStorageWrites): sent at once while the
   * follower still has writes in flight, so a slow disk never delays the leader's lease
   * and read rounds. It overtakes the acknowledgements of appends still being written,
   * so the leader takes no decision about the follower's log from it.
   */
  readonly heartbeatOnly?: boolean;
}

/** One chunk of InstallSnapshot (extended paper, Figure 13). */
export interface SnapshotRequest extends MessageBase {
  readonly type: 'snap';
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly done: boolean;
  readonly round: number;
  /**
   * Bytes of the whole snapshot, the same in every chunk of one transfer. The receiver
   * checks it against its limit at the first chunk and never holds more: without it a
   * peer could send chunks until the receiver runs out of memory.
   */
  readonly totalSize: number;
  /** Checksum (RaftConfig.checksum) of the whole snapshot; the receiver installs nothing that does not match. */
  readonly checksum: number;
}

export interface SnapshotResponse extends MessageBase {
  readonly type: 'snapResp';
  readonly snapIndex: number;
  /** Bytes of the snapshot the follower now holds; the next chunk starts here. */
  readonly nextOffset: number;
  /** True once the whole snapshot is installed (or the follower already had its contents). */
  readonly done: boolean;
  /** The follower's last index after installing, when done. */
  readonly matchIndex: number;
  readonly round: number;
  /**
   * The follower dropped the transfer (too large, more bytes than declared, truncated,
   * checksum mismatch): the leader starts it again from offset 0, at its next heartbeat.
   */
  readonly refused: boolean;
}

/** Leadership transfer: the leader tells an up-to-date follower to campaign now (thesis §3.10). */
export interface TimeoutNow extends MessageBase {
  readonly type: 'timeoutNow';
}

/** A follower asks the leader for a read index on behalf of its client (thesis §6.4). */
export interface ReadIndexRequest extends MessageBase {
  readonly type: 'readIndex';
  readonly requestId: string;
}

export interface ReadIndexResponse extends MessageBase {
  readonly type: 'readIndexResp';
  readonly requestId: string;
  /** -1 when the leader could not serve it (not leader, no quorum); the follower reports failure. */
  readonly index: number;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | SnapshotRequest
  | SnapshotResponse
  | TimeoutNow
  | ReadIndexRequest
  | ReadIndexResponse;

export type MessageType = Message['type'];

// ---------------------------------------------------------------------------
// The output batch.

export type Role = 'follower' | 'candidate' | 'precandidate' | 'leader';

/** Volatile state a driver may want to report; not persisted. */
export interface SoftState {
  readonly role: Role;
  readonly leaderId: NodeId | null;
  readonly term: number;
  /** True while this node is a learner (or not in the configuration at all). */
  readonly learner: boolean;
}

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly requestId: string;
  /** -1: the read failed (lost leadership, no quorum, leader could not answer). */
  readonly index: number;
}

/**
 * Decisions worth an operator's log line, with the reason the core took them. The
 * core cannot log (it does no I/O); the driver logs these.
 */
export type RaftEvent =
  | {
      readonly kind: 'vote';
      readonly candidate: NodeId;
      readonly term: number;
      readonly preVote: boolean;
      readonly granted: boolean;
      readonly reason: 'granted' | 'already-voted' | 'has-leader' | 'log-not-up-to-date' | 'leader-lease' | 'outranked';
    }
  | { readonly kind: 'step-down'; readonly term: number; readonly reason: 'lost-quorum' | 'higher-term' | 'removed' }
  | { readonly kind: 'campaign'; readonly term: number; readonly preVote: boolean; readonly transfer: boolean }
  | {
      /**
       * The driver proved `leader`'s process dead (leaderGone) and this node's lease from
       * it ended. `rank`: this node's turn to campaign among the survivors (0 at once,
       * -1 when it is no voter).
       */
      readonly kind: 'leader-gone';
      readonly leader: NodeId;
      readonly term: number;
      readonly rank: number;
    }
  | {
      readonly kind: 'transfer';
      readonly to: NodeId;
      readonly term: number;
      readonly outcome: 'started' | 'timeout-now-sent' | 'abandoned';
    }
  | {
      /**
       * A message dropped because of who sent it. `not-in-config`: a server outside our
       * configuration (removed, not yet added, or misconfigured) answered us.
       * `not-from-leader`: a TimeoutNow from anyone but the leader we follow; obeying it
       * would let any peer start an election that ignores the voters' leases.
       * `not-electable`: a TimeoutNow to a node the driver made unelectable (setElectable).
       * `stale-pre-vote`: a pre-vote grant for a term we have since taken ourselves, i.e. an
       * answer to an earlier pre-campaign arriving late; it says nothing about the term we
       * now propose.
       */
      readonly kind: 'ignored';
      readonly from: NodeId;
      readonly type: MessageType;
      readonly term: number;
      readonly reason: IgnoreReason;
    }
  | {
      /**
       * An incoming snapshot transfer dropped before anything was installed: declared
       * larger than maxSnapshotBytes, a chunk past the declared size, a last chunk short of
       * it, or a checksum that does not match what arrived.
       */
      readonly kind: 'snapshot-refused';
      readonly from: NodeId;
      readonly index: number;
      readonly term: number;
      readonly reason: SnapshotRefusal;
    };

export type SnapshotRefusal = 'too-large' | 'overrun' | 'truncated' | 'checksum';

/**
 * Everything the core wants done, drained with `ready()` and acknowledged with
 * `advance()`. The driver must:
 *   1. persist `snapshot` (an installed snapshot replaces the whole log unless the log holds
 *      its last entry), `entries` (replacing any stored entries from entries[0].index on)
 *      and `hardState`, synced to disk when `mustSync`;
 *   2. only then send `messages` and `messagesAfterPersist` (they may depend on what was
 *      just persisted: vote grants, append acknowledgements);
 *   3. apply `snapshot` (if any) then `committedEntries` to the state machine, in order;
 *   4. call `advance(ready)`.
 *
 * With `asyncStorageWrites` the driver may instead overlap the write with everything
 * else: start the write (writes must reach the disk in the order of the Readies), send
 * `messages` at once, apply, call `advanceAsync(ready)` and take the next Ready; once the
 * write is durable, send `messagesAfterPersist` and call `persisted(ready)`, in Ready
 * order. The core then counts its own log towards a commit only up to what `persisted`
 * reported (Raft thesis §10.2.1: the leader may replicate before its own write, but its
 * own vote for an entry counts only once the entry is on its disk).
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly committedEntries: readonly Entry[];
  /** May leave before this Ready's write is durable (with asyncStorageWrites; otherwise after it, like the rest). */
  readonly messages: readonly Message[];
  /**
   * Only after this Ready's write (and every earlier one) is durable: acknowledgements
   * and vote grants, which promise what is on disk, and, in a Ready that changes the
   * term or vote, every message (a candidate's requests: its vote for itself must be
   * durable before it can win). Always empty without asyncStorageWrites.
   */
  readonly messagesAfterPersist: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
  /** For logging only; nothing to do. */
  readonly events: readonly RaftEvent[];
}

// ---------------------------------------------------------------------------
// Configuration and injected dependencies.

/** Randomness comes only from here (a seeded PRNG in tests and the simulator). */
export interface Random {
  /** A uniformly distributed integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
}

export interface RaftConfig {
  readonly id: NodeId;
  readonly clusterId: string;
  /** Ticks between heartbeats. */
  readonly heartbeatTick: number;
  /** Minimum election timeout in ticks; each timeout is drawn from [electionTick, 2*electionTick). */
  readonly electionTick: number;
  /**
   * Ticks subtracted from the election timeout to give the leader lease: the bound on how
   * far clocks may drift apart over one election timeout (thesis §6.4.1).
   */
  readonly leaseDriftTicks: number;
  /** Serve reads from the lease without a heartbeat round while the lease is valid. */
  readonly leaseReads: boolean;
  /** Appends in flight per follower before the leader waits for acknowledgements. */
  readonly maxInflight: number;
  /**
   * Leader: payload bytes of unacknowledged appends per follower beyond which no more are
   * sent (etcd's MaxInflightBytes); one append always goes out. Default unbounded. What
   * is in flight waits ahead of the next heartbeat on the follower's stream, so this
   * bounds how late a heartbeat can be behind large entries.
   */
  readonly maxInflightBytes?: number;
  /** Upper bound on entry payload bytes in one append message (at least one entry is always sent). */
  readonly maxMsgBytes: number;
  /** Bytes of snapshot per InstallSnapshot chunk. */
  readonly snapshotChunkBytes: number;
  /**
   * Largest snapshot this node accepts from a leader, which is also the most it buffers
   * for one transfer; default 4 GiB (the largest Uint8Array Node allows).
   */
  readonly maxSnapshotBytes?: number;
  /**
   * Checksum over a snapshot's bytes, continued from `value` (0 to start); must be the
   * same function on every member. Default: CRC-32 (crc32.ts). Injected so the driver can
   * use a native one: the core computes it over every snapshot it sends or receives.
   */
  readonly checksum?: (data: Uint8Array, value: number) => number;
  /**
   * Opens where an incoming transfer of `totalSize` bytes is written (after the size was
   * checked against maxSnapshotBytes), or returns null when it cannot be held now (no
   * memory, no disk space): the transfer is then refused as too large and the leader
   * retries later. Default: one buffer of totalSize in memory.
   */
  readonly openSnapshotSink?: (meta: SnapshotMeta, totalSize: number, checksum: number) => SnapshotSink | null;
  /**
   * Leader: payload bytes of its own entries not yet committed beyond which proposals
   * are refused ('overloaded'); one entry is always accepted when none is pending.
   * Unbounded when absent.
   */
  readonly maxUncommittedBytes?: number;
  readonly random: Random;
  /**
   * The driver overlaps its storage writes with sending and applying (advanceAsync and
   * persisted instead of advance; see Ready). Default false: every Ready is persisted
   * before anything else in it happens.
   */
  readonly asyncStorageWrites?: boolean;
}

/** Why the core refused a request; the server maps each kind to one gRPC status. */
/** Why the core dropped a well-formed message (the `ignored` event). */
export type IgnoreReason = 'not-in-config' | 'not-from-leader' | 'not-electable' | 'stale-pre-vote';

export type RaftErrorKind = 'not-leader' | 'transferring' | 'conf-change-pending' | 'not-in-config' | 'invalid' | 'overloaded';

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly error: RaftErrorKind; readonly leaderId: NodeId | null };

export type StepResult = { readonly ok: true } | { readonly ok: false; readonly reason: 'wrong-cluster' | 'wrong-recipient' | 'malformed' };

export interface ProgressStatus {
  readonly matchIndex: number;
  readonly nextIndex: number;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  readonly recentActive: boolean;
}

/**
 * What a driver checks on every request (etcd's BasicStatus): no configuration, no
 * progress map. Fields are writable so RaftNode.basicStatus(into) can refill one
 * record instead of allocating a new one per call.
 */
export interface BasicStatus {
  id: NodeId;
  role: Role;
  term: number;
  votedFor: NodeId | null;
  leaderId: NodeId | null;
  commitIndex: number;
  appliedIndex: number;
  lastLogIndex: number;
  leaseValid: boolean;
  learner: boolean;
  leadTransferee: NodeId | null;
}

export interface Status extends Readonly<BasicStatus> {
  readonly firstLogIndex: number;
  readonly conf: ConfState;
  /** Only on the leader. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus> | null;
}

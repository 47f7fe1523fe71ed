// The Raft consensus core: a pure, deterministic state machine.
//
// Inputs: tick() (logical time), step(msg) (a message from a peer), propose(),
// proposeConfChange(), readIndex(), transferLeadership(), compact(). Output: one
// Ready batch at a time, drained with ready() and acknowledged with advance(); the
// driver persists, sends and applies what it says (see Ready in types.ts). Nothing in
// here does I/O, reads a clock or draws a random number except from config.random, so
// a seeded simulator can drive thousands of nodes through millions of fault schedules
// and replay any of them exactly.
//
// References: "In Search of an Understandable Consensus Algorithm (Extended Version)"
// (Figure 2 is the spec for the basic rules) and Ongaro's PhD thesis for PreVote
// (§9.6), CheckQuorum (§6.2), leases and ReadIndex (§6.4), leadership transfer
// (§3.10) and membership changes (§4).
import { RaftLog } from './log.js';
import { Progress, type ProgressState } from './progress.js';
import { quorumValue, tallyVotes } from './quorum.js';
import { confChangeError, encodeConfChange } from './conf-change.js';
import { ReadOnly } from './read-only.js';
import { newBasicStatus, ReadyTracker } from './raw-node.js';
import { invariant } from './invariant.js';
import { crc32Portable } from './crc32.js';
import { checksumOf, memorySnapshotSink } from './snapshot-data.js';
import type {
  AppendRequest,
  BasicStatus,
  AppendResponse,
  ConfChange,
  ConfState,
  Entry,
  EntryType,
  HardState,
  IgnoreReason,
  InitialState,
  Message,
  NodeId,
  ProgressStatus,
  ProposeResult,
  RaftConfig,
  RaftErrorKind,
  RaftEvent,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotData,
  SnapshotRefusal,
  SnapshotRequest,
  SnapshotSink,
  SoftState,
  Status,
  StepResult,
  VoteRequest,
} from './types.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A message before the core stamps it with cluster id, sender and (by default) its term. */
type Outgoing = DistributiveOmit<Message, 'clusterId' | 'from' | 'term'> & { term?: number };

const EMPTY = new Uint8Array(0);
/** Default RaftConfig.maxSnapshotBytes: the largest Uint8Array Node allows. */
const MAX_SNAPSHOT_BYTES = 2 ** 32;

/** An InstallSnapshot transfer being received: at most one, holding at most its declared totalSize. */
interface IncomingSnapshot {
  readonly meta: Snapshot['meta'];
  readonly totalSize: number;
  readonly checksum: number;
  /** Where the chunks go as they arrive (RaftConfig.openSnapshotSink). */
  readonly sink: SnapshotSink;
  size: number;
  /** Checksum of the chunks so far, so the last chunk is checked without a pass over the whole. */
  sum: number;
}

export class RaftNode {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;

  // Persistent state (Figure 2), reported through Ready.hardState.
  private term = 0;
  private votedFor: NodeId | null = null;
  private readonly log: RaftLog;

  // Volatile state.
  private role: Role = 'follower';
  private leaderId: NodeId | null = null;
  private conf: ConfState;
  /** Index of the entry that set `conf` (0 or the snapshot index if none in the log). */
  private confIndex: number;
  /** Latest snapshot with data: made locally by compact() or received from a leader. Sent to followers behind it. */
  private snapshot: Snapshot | null;
  /** A snapshot received from the leader that the driver has yet to persist and apply. */
  private snapshotToApply: Snapshot | null = null;
  private incomingSnapshot: IncomingSnapshot | null = null;
  /** Checksum of `snapshot`, computed at its first send (one pass over it, not one per follower). */
  private snapshotChecksum: { readonly of: Snapshot; readonly value: number } | null = null;

  /** Logical clock: ticks since this node object was created. */
  private now = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /**
   * Ticks since a current leader was last heard from. Starts at 0: a node that just
   * (re)started may have acknowledged a leader moments before it crashed, and that
   * leader may still count on it for its lease; so it grants no vote for one election
   * timeout after starting (thesis §6.4's lease argument, extended across restarts).
   */
  private leaderContactElapsed = 0;
  /**
   * The leader (and its term) whose contact last started `leaderContactElapsed`: the
   * only leader whose proven death (leaderGone) may end this node's lease early. Null
   * after a restart, whose lease guard covers a leader this node no longer knows.
   */
  private leaseFrom: { readonly id: NodeId; readonly term: number } | null = null;
  /**
   * Set by leaderGone until this node's term changes or it hears from a leader: the dead
   * leader and its term, which rank the survivors (proofRank) for the pre-votes below.
   */
  private proven: { readonly leader: NodeId; readonly term: number } | null = null;
  private votes = new Map<NodeId, boolean>();

  // Leader state.
  private progress = new Map<NodeId, Progress>();
  private round = 0;
  /** When (our clock) this node last became leader. */
  private leaderSince = 0;
  private roundSentAt = new Map<number, number>();
  /** ReadIndex queues: the leader's pending reads, the follower's forwarded ones. */
  private readonly reads = new ReadOnly();
  private leadTransferee: NodeId | null = null;
  /** Once TimeoutNow went out, another node may win without waiting out our lease: it is void for the rest of the term. */
  private timeoutNowSent = false;
  /** False while the driver says this node must not lead (setElectable). */
  private electable = true;
  /** Index of the latest configuration entry this leader may not yet have committed. */
  private pendingConfIndex = 0;
  /** Payload bytes of this leader's entries above the commit index (maxUncommittedBytes). */
  private uncommittedBytes = 0;
  /** Index of this leader's first entry (its no-op): entries before it are not counted in uncommittedBytes. */
  private leaderFirstIndex = 0;
  private needBroadcast = false;
  private needReadRound = false;

  // Output.
  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private events: RaftEvent[] = [];
  private readonly raw: ReadyTracker;

  constructor(config: RaftConfig, initial: InitialState) {
    if (config.electionTick <= config.heartbeatTick) throw new Error('raft: electionTick must exceed heartbeatTick');
    if (config.leaseDriftTicks < 0 || config.leaseDriftTicks >= config.electionTick) {
      throw new Error('raft: leaseDriftTicks must be in [0, electionTick)');
    }
    if (config.maxInflight < 1) throw new Error('raft: maxInflight must be at least 1');
    if (config.snapshotChunkBytes < 1) throw new Error('raft: snapshotChunkBytes must be at least 1');
    if (config.maxSnapshotBytes !== undefined && !(config.maxSnapshotBytes >= 0)) {
      throw new Error('raft: maxSnapshotBytes must not be negative');
    }
    this.id = config.id;
    this.cfg = config;
    const snapMeta = initial.snapshot?.meta ?? { index: 0, term: 0, conf: initial.bootstrapConf };
    this.snapshot = initial.snapshot;
    this.log = new RaftLog(snapMeta, initial.entries, initial.hardState.commit);
    this.term = initial.hardState.term;
    this.votedFor = initial.hardState.votedFor;
    const { conf, index } = this.log.confAt(this.log.lastIndex());
    this.conf = conf;
    this.confIndex = index;
    const hard = this.hardState();
    this.resetElectionTimer();
    this.raw = new ReadyTracker(this.log, hard, this.softState(), config.asyncStorageWrites ?? false);
  }

  // -------------------------------------------------------------------------
  // Inputs

  tick(): void {
    this.now++;
    this.leaderContactElapsed++;
    this.expireForwardedReads();
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  step(msg: Message): StepResult {
    if (msg.clusterId !== this.cfg.clusterId) return { ok: false, reason: 'wrong-cluster' };
    if (msg.to !== this.id) return { ok: false, reason: 'wrong-recipient' };
    if (!Number.isSafeInteger(msg.term) || msg.term < 0 || msg.from === this.id) return { ok: false, reason: 'malformed' };

    // One term check for every message (Figure 2, "All Servers"), then dispatch by role.
    if (msg.term > this.term) {
      if (msg.type === 'vote' && !msg.transfer && this.inLease()) {
        // A node that still hears from a leader ignores campaigns: this is what keeps a
        // rejoining or removed server from deposing a healthy leader (thesis §4.2.3,
        // §9.6) and what the leader's lease relies on (§6.4).
        this.events.push({
          kind: 'vote',
          candidate: msg.from,
          term: msg.term,
          preVote: msg.preVote,
          granted: false,
          reason: 'leader-lease',
        });
        return { ok: true };
      }
      const keepsTerm = (msg.type === 'vote' && msg.preVote) || (msg.type === 'voteResp' && msg.preVote && msg.granted);
      if (!keepsTerm) {
        if (this.role === 'leader') this.events.push({ kind: 'step-down', term: msg.term, reason: 'higher-term' });
        const leader = msg.type === 'app' || msg.type === 'snap' ? msg.from : null;
        this.becomeFollower(msg.term, leader);
      }
    } else if (msg.term < this.term) {
      this.answerStale(msg);
      return { ok: true };
    }

    switch (msg.type) {
      case 'vote':
        this.handleVote(msg);
        return { ok: true };
      case 'readIndex':
        if (this.role === 'leader') this.handleRead(msg.requestId, msg.from);
        else this.send({ type: 'readIndexResp', to: msg.from, requestId: msg.requestId, index: -1 });
        return { ok: true };
      case 'readIndexResp':
        if (this.reads.answered(msg.requestId)) this.readStates.push({ requestId: msg.requestId, index: msg.index });
        return { ok: true };
      default:
        break;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(msg);
        break;
      case 'candidate':
      case 'precandidate':
        this.stepCandidate(msg);
        break;
      case 'follower':
        this.stepFollower(msg);
        break;
    }
    return { ok: true };
  }

  propose(data: Uint8Array): ProposeResult {
    return this.proposeEntry('normal', data);
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    if (this.role !== 'leader') return this.refuse('not-leader');
    // Ongaro's 2015 fix for single-server changes: no change until this leader has
    // committed an entry of its own term, and only one uncommitted change at a time.
    if (this.log.term(this.log.committed) !== this.term || this.pendingConfIndex > this.log.committed) {
      return this.refuse('conf-change-pending');
    }
    if (confChangeError(this.conf, cc) !== null) return this.refuse('invalid');
    return this.proposeEntry('conf', encodeConfChange(cc));
  }

  readIndex(requestId: string): void {
    if (this.role === 'leader') {
      this.handleRead(requestId, null);
    } else if (this.role === 'follower' && this.leaderId !== null) {
      this.reads.forward(requestId, this.now);
      this.send({ type: 'readIndex', to: this.leaderId, requestId });
    } else {
      this.readStates.push({ requestId, index: -1 });
    }
  }

  transferLeadership(to: NodeId): { ok: true } | { ok: false; error: RaftErrorKind } {
    if (this.role !== 'leader') return { ok: false, error: 'not-leader' };
    if (to === this.id) return { ok: true };
    if (!this.conf.voters.includes(to)) return { ok: false, error: 'not-in-config' };
    if (this.leadTransferee === to) return { ok: true };
    // §3.10: stop accepting proposals, bring the target up to date, then TimeoutNow.
    // Abandoned after an election timeout (tickHeartbeat).
    this.leadTransferee = to;
    this.electionElapsed = 0;
    this.events.push({ kind: 'transfer', to, term: this.term, outcome: 'started' });
    const pr = this.progress.get(to)!;
    if (pr.matchIndex === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, false);
    return { ok: true };
  }

  /**
   * Whether this node may stand for election (its own timer, campaign(), TimeoutNow).
   * The driver decides from replicated member records: a disaster-recovery replica
   * (priority 0) or a drained member keeps its log and its vote, so it still counts
   * towards every quorum, but never becomes a candidate; a leader that becomes
   * unelectable keeps leading until the driver transfers leadership away, since
   * stepping down without a successor would only cost an election timeout.
   */
  setElectable(electable: boolean): void {
    this.electable = electable;
  }

  /**
   * The driver has proof that `leader`'s process is gone: the connection to it closed
   * cleanly (the kernel's FIN at process exit, no HTTP/2 GOAWAY) and a redial to its
   * address was refused (nothing listens there). `term` is this node's term when the
   * proof was taken. A dead process holds no lease, so if `leader` is the leader of that
   * term that this node's lease came from, the lease ends now: this node forgets the
   * leader, grants votes as if the election timeout had passed, and campaigns (with
   * PreVote) at once or after a short stagger by rank, so the survivors do not split
   * the vote. Lease Exclusivity holds because a voter ends only a lease it holds for the
   * very process whose death it proved itself; any leader elected since then (a later
   * term) is untouched. Nothing weaker (a reset, silence, a GOAWAY) may be reported here.
   */
  leaderGone(leader: NodeId, term: number): void {
    const from = this.leaseFrom;
    if (this.role === 'leader' || from === null || from.id !== leader || from.term !== term || term !== this.term) return;
    this.leaseFrom = null;
    this.leaderContactElapsed = Math.max(this.leaderContactElapsed, this.cfg.electionTick);
    if (this.leaderId === leader) this.leaderId = null;
    this.proven = { leader, term };
    const rank = this.proofRank(this.id);
    this.events.push({ kind: 'leader-gone', leader, term, rank });
    if (this.role !== 'follower' || rank < 0 || !this.promotable()) return;
    if (rank === 0) {
      this.electionElapsed = 0;
      this.startCampaign('pre');
      return;
    }
    // The next survivor in rank campaigns a stagger later, in case the first cannot win
    // (its log is behind, or its own proof came late and a voter still refused it).
    this.electionElapsed = 0;
    this.randomizedElectionTimeout = rank * this.proofStaggerTicks();
  }

  /**
   * Start an election now, as if the election timer had fired (with PreVote). Ignored
   * while this node has heard from a leader within the election timeout: that leader's
   * lease may count on this node, which must not vote, not even for itself (§6.4).
   */
  campaign(): void {
    if (this.role !== 'leader' && !this.inLease()) this.startCampaign('pre');
  }

  /**
   * The state machine has a snapshot of everything up to `index` (<= applied): forget
   * the log it covers, except a trailing `tail` of at most that many entries and bytes
   * before `index` (so a follower slightly behind catches up from the log rather than by
   * a snapshot). Returns the snapshot for the driver to store (with the entries before
   * firstIndex()), or null when `index` is not past the current snapshot.
   */
  compact(
    index: number,
    data: SnapshotData,
    tail: { readonly entries: number; readonly bytes: number } = { entries: 0, bytes: 0 },
  ): Snapshot | null {
    if (index <= this.log.snapshotMeta.index) return null;
    invariant(index <= this.log.applied, 'compact-beyond-applied', () => ({ index, applied: this.log.applied }));
    const meta = { index, term: this.log.term(index)!, conf: this.log.confAt(index).conf };
    const snapshot = { meta, data };
    this.snapshot = snapshot;
    this.snapshotChecksum = null;
    this.log.compact(meta, this.log.tailStart(index, tail.entries, tail.bytes));
    return snapshot;
  }

  /** Index of the latest snapshot (taken or installed); 0 before the first. compact() at or below it does nothing. */
  snapshotIndex(): number {
    return this.log.snapshotMeta.index;
  }

  /** The first log index still held; entries before it were compacted away. */
  firstIndex(): number {
    return this.log.firstIndex();
  }

  // -------------------------------------------------------------------------
  // Output

  hasReady(): boolean {
    const pendingOutput =
      this.needBroadcast ||
      this.needReadRound ||
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.events.length > 0 ||
      this.snapshotToApply !== null;
    return this.raw.hasReady(this.hardState(), this.softState(), pendingOutput);
  }

  ready(): Ready {
    this.raw.checkNotOutstanding();
    this.flush();
    const rd = this.raw.ready({
      hardState: this.hardState(),
      softState: this.softState(),
      snapshot: this.snapshotToApply,
      messages: this.msgs,
      readStates: this.readStates,
      events: this.events,
    });
    this.msgs = [];
    this.readStates = [];
    this.events = [];
    return rd;
  }

  advance(rd: Ready): void {
    this.advanceAsync(rd);
    this.persisted(rd);
  }

  /**
   * asyncStorageWrites: `rd`'s write is started, `rd.messages` sent, its snapshot and
   * committed entries applied. Its write may still be in flight; report it with persisted().
   */
  advanceAsync(rd: Ready): void {
    this.raw.advanceAsync(rd);
    if (rd.snapshot !== null && this.snapshotToApply === rd.snapshot) this.snapshotToApply = null;
  }

  /**
   * asyncStorageWrites: `rd`'s write (and every earlier one) is durable and
   * `rd.messagesAfterPersist` sent. A leader now counts those entries as its own
   * acknowledgement, which may commit them.
   */
  persisted(rd: Ready): void {
    this.raw.persisted(rd);
    if (this.role === 'leader' && rd.entries.length > 0) this.maybeCommit();
  }

  /**
   * Role, term, leader, commit and applied indexes, lease: what a driver checks on every
   * request. Fills `into` when given (keep one and reuse it: nothing is allocated, no
   * progress map is built); status() adds the configuration and per-follower progress.
   */
  basicStatus(into: BasicStatus = newBasicStatus()): BasicStatus {
    into.id = this.id;
    into.role = this.role;
    into.term = this.term;
    into.votedFor = this.votedFor;
    into.leaderId = this.leaderId;
    into.commitIndex = this.log.committed;
    into.appliedIndex = this.log.applied;
    into.lastLogIndex = this.log.lastIndex();
    into.leaseValid = this.leaseValid();
    into.learner = !this.conf.voters.includes(this.id);
    into.leadTransferee = this.leadTransferee;
    return into;
  }

  /** The configuration in force (the latest in the log, committed or not; thesis §4.1). */
  confState(): ConfState {
    return this.conf;
  }

  /**
   * Visit each follower's progress without building a map (etcd's RawNode.WithProgress).
   * Visits nothing unless this node leads.
   */
  withProgress(visit: (id: NodeId, matchIndex: number, nextIndex: number, state: ProgressState) => void): void {
    if (this.role !== 'leader') return;
    for (const [id, pr] of this.progress) visit(id, pr.matchIndex, pr.nextIndex, pr.state);
  }

  status(): Status {
    let progress: Map<NodeId, ProgressStatus> | null = null;
    if (this.role === 'leader') {
      progress = new Map();
      for (const [id, pr] of this.progress) {
        progress.set(id, { matchIndex: pr.matchIndex, nextIndex: pr.nextIndex, state: pr.state, recentActive: pr.recentActive });
      }
    }
    return {
      ...this.basicStatus(),
      firstLogIndex: this.log.firstIndex(),
      conf: this.conf,
      progress,
    };
  }

  /**
   * Leader lease (thesis §6.4.1): true while a quorum acknowledged a heartbeat round
   * *sent* less than (electionTick - leaseDriftTicks) ticks ago. Each of those
   * followers refuses every vote for electionTick ticks of its own clock after hearing
   * from us, so no other leader can be elected before the lease runs out, as long as
   * clocks drift apart by less than leaseDriftTicks over one election timeout.
   */
  leaseValid(): boolean {
    if (this.role !== 'leader' || this.leadTransferee !== null || this.timeoutNowSent) return false;
    return this.quorumAckedAt() + this.leaseTicks() > this.now;
  }

  /**
   * The tick at which the current lease runs out unless a newer round is acknowledged,
   * or null when this node holds no lease. The driver turns it into a time for work that
   * must stop by then (role hooks), since after a stall it only learns of the loss later.
   */
  leaseExpiresAt(): number | null {
    if (!this.leaseValid()) return null;
    return this.quorumAckedAt() + this.leaseTicks();
  }

  /** Term of the entry at `index` (undefined if compacted away or beyond the log). */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }

  /** Volatile state: role, leader, term. Cheap; the driver may call it after every input. */
  softState(): SoftState {
    return { role: this.role, leaderId: this.leaderId, term: this.term, learner: !this.conf.voters.includes(this.id) };
  }

  /**
   * A survivor's turn to campaign after the proven death of `proven.leader`: its place
   * among the other voters, rotated by the dead leader's term so the first turn moves
   * around; -1 when it is no voter (or nothing was proven).
   */
  private proofRank(id: NodeId): number {
    const p = this.proven;
    if (p === null) return -1;
    const survivors = this.conf.voters.filter((v) => v !== p.leader).sort();
    const at = survivors.indexOf(id);
    return at < 0 ? -1 : (at + p.term) % survivors.length;
  }

  /** Ticks between the survivors' campaigns after a leader's proven death: about two network round trips. */
  private proofStaggerTicks(): number {
    return Math.max(1, Math.floor(this.cfg.heartbeatTick / 2));
  }

  private leaseTicks(): number {
    return this.cfg.electionTick - this.cfg.leaseDriftTicks;
  }

  /** When (our clock) the newest heartbeat round that a quorum has acknowledged was sent. */
  private quorumAckedAt(): number {
    return quorumValue(
      this.conf.voters,
      (id) => (id === this.id ? this.now : this.roundSentAt.get(this.progress.get(id)?.ackedRound ?? 0)),
      -Infinity,
    );
  }

  // -------------------------------------------------------------------------
  // Time

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable()) {
      if (this.electionElapsed >= this.randomizedElectionTimeout) {
        // A full timeout (not a stagger turn): whatever the proof ordered has not worked out.
        if (this.randomizedElectionTimeout >= this.cfg.electionTick) this.proven = null;
        this.electionElapsed = 0;
        this.startCampaign('pre');
      }
      return;
    }
    // A member that never campaigns (a learner, a voter that may not lead) forgets its
    // leader only here: a campaign is what clears it on the others. Without this it would
    // name a dead leader to every client that asks (GetLeader) while the cluster has none.
    if (this.leaderId !== null && this.leaderContactElapsed >= this.cfg.electionTick) this.leaderId = null;
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    // CheckQuorum (thesis §6.2), checked at every tick against the lease: once no
    // quorum has acknowledged us within a lease period, another leader may already be
    // elected, so stop claiming leadership now rather than at the next election
    // timeout boundary. A driver that delivers missed ticks after a stall (GC, SIGSTOP)
    // thereby steps down before it answers anything. A new leader gets one lease period
    // from its election to collect its first quorum of acknowledgements.
    if (this.now - Math.max(this.leaderSince, this.quorumAckedAt()) >= this.leaseTicks()) {
      this.events.push({ kind: 'step-down', term: this.term, reason: 'lost-quorum' });
      this.becomeFollower(this.term, null);
      return;
    }
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      for (const pr of this.progress.values()) pr.recentActive = false;
      // §3.10: a transfer that has not completed within an election timeout is abandoned.
      if (this.leadTransferee !== null) {
        this.events.push({ kind: 'transfer', to: this.leadTransferee, term: this.term, outcome: 'abandoned' });
        this.leadTransferee = null;
        if (this.timeoutNowSent) {
          // TimeoutNow went out but no new term reached us (lost message, crashed target).
          // Our lease stays void for this term (a delayed TimeoutNow still lets the
          // target's voters ignore their leases), and a leader without a lease cannot
          // serve lease-dependent work; step down so a fresh election settles it.
          this.events.push({ kind: 'step-down', term: this.term, reason: 'lost-quorum' });
          this.becomeFollower(this.term, null);
          return;
        }
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTick + this.cfg.random.int(this.cfg.electionTick);
  }

  // -------------------------------------------------------------------------
  // Role transitions

  private reset(term: number): void {
    invariant(term >= this.term, 'term-regression', () => ({ term: this.term, to: term, role: this.role }));
    if (term !== this.term) {
      this.term = term;
      this.votedFor = null;
    }
    this.leaderId = null;
    this.proven = null;
    this.resetElectionTimer();
    this.heartbeatElapsed = 0;
    this.votes = new Map();
    this.failLeaderReads();
    this.progress = new Map();
    this.leadTransferee = null;
    this.timeoutNowSent = false;
    this.round = 0;
    this.roundSentAt = new Map();
    this.needBroadcast = false;
    this.needReadRound = false;
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.leaderId = leader;
    if (leader !== null) this.heardFromLeader(leader);
  }

  private heardFromLeader(leader: NodeId): void {
    this.leaderContactElapsed = 0;
    this.leaseFrom = this.leaseFrom?.id === leader && this.leaseFrom.term === this.term ? this.leaseFrom : { id: leader, term: this.term };
    this.proven = null;
    // A stagger timer set by leaderGone must not outlive the leader this node hears from now.
    if (this.randomizedElectionTimeout < this.cfg.electionTick) this.resetElectionTimer();
  }

  private becomePreCandidate(): void {
    // A leader campaigning would abandon a term it leads; the election timer never fires on a leader.
    this.checkTransition('precandidate', this.role !== 'leader');
    // PreVote (thesis §9.6): ask whether we could win before disturbing anyone's term.
    this.role = 'precandidate';
    this.leaderId = null;
    this.votes = new Map([[this.id, true]]);
    this.resetElectionTimer();
  }

  private becomeCandidate(): void {
    // Only after winning a PreVote round, or on TimeoutNow as a follower (§3.10).
    this.checkTransition('candidate', this.role === 'precandidate' || this.role === 'follower');
    this.reset(this.term + 1);
    this.role = 'candidate';
    this.votedFor = this.id;
    this.votes = new Map([[this.id, true]]);
  }

  private becomeLeader(): void {
    // Only a candidate that won this term's election (§5.2); anything else is two leaders in waiting.
    this.checkTransition('leader', this.role === 'candidate' && this.votedFor === this.id);
    this.reset(this.term);
    this.role = 'leader';
    this.leaderId = this.id;
    this.leaderSince = this.now;
    const next = this.log.lastIndex() + 1;
    for (const id of this.members()) {
      if (id !== this.id) this.progress.set(id, new Progress(next, !this.conf.voters.includes(id)));
    }
    // Until this no-op commits, the leader cannot know its commit index (§5.4.2, §6.4)
    // nor change the configuration (conf-change.ts).
    this.pendingConfIndex = this.log.lastIndex();
    this.uncommittedBytes = 0;
    this.leaderFirstIndex = this.log.lastIndex() + 1;
    this.appendOnLeader('noop', EMPTY);
    this.broadcastHeartbeat();
  }

  private startCampaign(kind: 'pre' | 'real' | 'transfer'): void {
    if (!this.promotable()) return;
    if (kind === 'pre') this.becomePreCandidate();
    else this.becomeCandidate();
    const preVote = kind === 'pre';
    this.events.push({ kind: 'campaign', term: preVote ? this.term + 1 : this.term, preVote, transfer: kind === 'transfer' });
    if (tallyVotes(this.conf.voters, this.votes) === 'won') {
      if (preVote) this.startCampaign('real');
      else this.becomeLeader();
      return;
    }
    for (const id of this.conf.voters) if (id !== this.id) this.requestVote(id, preVote, kind === 'transfer');
  }

  private requestVote(to: NodeId, preVote: boolean, transfer: boolean): void {
    this.send({
      type: 'vote',
      to,
      term: preVote ? this.term + 1 : this.term,
      preVote,
      lastLogIndex: this.log.lastIndex(),
      lastLogTerm: this.log.lastTerm(),
      transfer,
    });
  }

  // -------------------------------------------------------------------------
  // Message handling

  /** A message from an older term. Tell stale leaders and pre-candidates our term so they stand down. */
  private answerStale(msg: Message): void {
    switch (msg.type) {
      case 'app':
      case 'snap':
        // The sender believes it leads an old term (e.g. it was partitioned away); our
        // higher term in the answer makes it step down. Round 0 acknowledges no heartbeat
        // round: had we echoed the old leadership's round, a node that leads again in our
        // term (rounds start over with each leadership) would count it for its own round
        // of that number, sent later, and hold a lease we never granted (§6.4).
        this.send({ type: 'appResp', to: msg.from, success: false, matchIndex: 0, rejectHint: 0, rejectTerm: 0, round: 0 });
        break;
      case 'vote':
        if (msg.preVote) this.send({ type: 'voteResp', to: msg.from, preVote: true, granted: false });
        break;
      case 'readIndex':
        this.send({ type: 'readIndexResp', to: msg.from, requestId: msg.requestId, index: -1 });
        break;
      default:
        break;
    }
  }

  private handleVote(msg: VoteRequest): void {
    // Figure 2, RequestVote receiver: at most one vote per term (votedFor is persisted
    // before the grant leaves: the grant is in the same Ready as the new hard state), and
    // only for a candidate whose log is at least as up to date as ours (§5.4.1).
    const canVote =
      this.votedFor === msg.from || (this.votedFor === null && this.leaderId === null) || (msg.preVote && msg.term > this.term);
    const upToDate = this.log.isUpToDate(msg.lastLogIndex, msg.lastLogTerm);
    // Survivors of a proven leader death that campaign at once would split the vote when
    // their proofs arrive close together (each grants the other's pre-vote, both become
    // candidates): a survivor refuses the pre-vote of one later in rank than itself, so
    // the earliest in rank that can win does. Liveness only: a refusal never elects anyone.
    // A requester whose log is ahead of ours is not refused: we could never win against it.
    // Only a survivor that may campaign itself holds the others back: one that never does
    // (a learner, priority 0, drained) would hold them back for good.
    const ownRank = msg.preVote && this.promotable() ? this.proofRank(this.id) : -1;
    const ahead =
      msg.lastLogTerm > this.log.lastTerm() || (msg.lastLogTerm === this.log.lastTerm() && msg.lastLogIndex > this.log.lastIndex());
    const outranked = ownRank >= 0 && !ahead && this.proofRank(msg.from) > ownRank;
    const granted = canVote && upToDate && !outranked;
    const reason = granted
      ? 'granted'
      : !canVote
        ? this.votedFor !== null
          ? 'already-voted'
          : 'has-leader'
        : !upToDate
          ? 'log-not-up-to-date'
          : 'outranked';
    this.events.push({ kind: 'vote', candidate: msg.from, term: msg.term, preVote: msg.preVote, granted, reason });
    if (granted) {
      // Told a candidate it can win: a stagger turn of our own would only split its vote.
      if (msg.preVote && this.role === 'follower' && this.randomizedElectionTimeout < this.cfg.electionTick) this.resetElectionTimer();
      this.send({ type: 'voteResp', to: msg.from, term: msg.term, preVote: msg.preVote, granted: true });
      if (!msg.preVote) {
        invariant(this.votedFor === null || this.votedFor === msg.from, 'vote-changed', () => ({
          term: this.term,
          votedFor: this.votedFor,
          candidate: msg.from,
        }));
        this.votedFor = msg.from;
        this.electionElapsed = 0;
      }
    } else {
      this.send({ type: 'voteResp', to: msg.from, preVote: msg.preVote, granted: false });
      if (outranked) this.campaignBefore(msg.from);
    }
  }

  /**
   * A survivor later in rank asked for our pre-vote: it holds the proof too, so it would
   * grant ours now, even if it refused it before its proof arrived (its lease still
   * held). Ask it again, or campaign now if our own turn has not come yet.
   */
  private campaignBefore(later: NodeId): void {
    if (this.role === 'follower' && this.promotable()) {
      this.electionElapsed = 0;
      this.startCampaign('pre');
    } else if (this.role === 'precandidate') {
      this.requestVote(later, true, false);
    }
  }

  private stepFollower(msg: Message): void {
    switch (msg.type) {
      case 'app':
      case 'snap':
        this.electionElapsed = 0;
        this.heardFromLeader(msg.from);
        this.leaderId = msg.from;
        if (msg.type === 'app') this.handleAppend(msg);
        else this.handleSnapshot(msg);
        break;
      case 'timeoutNow':
        if (!this.electable) {
          // The leader did not know (or not yet) that this node refuses leadership: its
          // transfer is abandoned after an election timeout and it keeps leading.
          this.ignore(msg, 'not-electable');
          break;
        }
        // Only the leader we follow may hand over: voters disregard their lease for a
        // transfer campaign, so a TimeoutNow from anyone else (a deposed leader's delayed
        // message, a forged one) could elect a second leader while ours still holds its lease.
        if (msg.from !== this.leaderId) {
          this.ignore(msg, 'not-from-leader');
          break;
        }
        // §3.10: the leader hands over; campaign at once, skipping PreVote, and tell
        // voters to disregard their lease (the old leader gave its up).
        this.startCampaign('transfer');
        break;
      default:
        break;
    }
  }

  private stepCandidate(msg: Message): void {
    switch (msg.type) {
      case 'app':
      case 'snap':
        // Another server won this term (§5.2).
        this.becomeFollower(msg.term, msg.from);
        this.stepFollower(msg);
        break;
      case 'voteResp': {
        if (msg.preVote !== (this.role === 'precandidate')) return;
        if (msg.preVote && msg.granted && msg.term !== this.term + 1) {
          // A grant from an earlier pre-campaign, delayed: it was for the term we hold now
          // (we have campaigned for it since), not for the one we propose. Counted, a few
          // such late answers could raise our term without a majority that would vote for
          // us today, and that higher term deposes a healthy leader (thesis §9.6).
          this.ignore(msg, 'stale-pre-vote');
          return;
        }
        if (!this.conf.voters.includes(msg.from)) {
          this.ignore(msg, 'not-in-config');
          return;
        }
        this.votes.set(msg.from, msg.granted);
        const outcome = tallyVotes(this.conf.voters, this.votes);
        if (outcome === 'won') {
          if (this.role === 'precandidate') this.startCampaign('real');
          else this.becomeLeader();
        } else if (outcome === 'lost') {
          this.becomeFollower(this.term, null);
        }
        break;
      }
      default:
        break;
    }
  }

  private stepLeader(msg: Message): void {
    const pr = this.progress.get(msg.from);
    if (!pr) {
      // A server removed from (or never in) the configuration still answering: not
      // impossible, so not fatal, but worth a word.
      this.ignore(msg, 'not-in-config');
      return;
    }
    pr.recentActive = true;
    switch (msg.type) {
      case 'appResp':
        pr.ackedRound = Math.max(pr.ackedRound, msg.round);
        // A heartbeat-only answer may overtake acknowledgements still on their way: it
        // says nothing about the follower's log (no progress, no lost-append guess).
        if (msg.heartbeatOnly !== true) this.handleAppendResponse(msg, pr);
        this.checkReads();
        break;
      case 'snapResp':
        pr.ackedRound = Math.max(pr.ackedRound, msg.round);
        if (pr.state === 'snapshot' && pr.pendingSnapshot && msg.snapIndex === pr.pendingSnapshot.index) {
          if (msg.refused) {
            // Start over, but not at once: a follower that refuses every attempt (a limit
            // below our snapshot, a link that corrupts) then costs one chunk per resend
            // interval instead of a tight loop; broadcastHeartbeat resends it.
            pr.pendingSnapshot.offset = 0;
          } else if (msg.done) {
            pr.maybeUpdate(msg.matchIndex);
            pr.becomeProbe();
            this.sendAppend(msg.from, true);
          } else if (msg.nextOffset !== pr.pendingSnapshot.offset) {
            pr.pendingSnapshot.offset = msg.nextOffset;
            this.sendSnapshotChunk(msg.from, pr);
          }
          // Else it names the chunk already out: it answers a copy of an earlier chunk,
          // resent at a heartbeat while the first was slow. Sending again would put a
          // second chunk in flight for every answer from then on, so each later chunk
          // would be read, encoded and sent twice (a 325 MiB snapshot went out as 1.3 GiB).
          // A chunk that was really lost is resent at a heartbeat (broadcastHeartbeat).
        }
        this.checkReads();
        break;
      default:
        break;
    }
  }

  private handleAppend(msg: AppendRequest): void {
    const reply = (r: Pick<AppendResponse, 'success' | 'matchIndex' | 'rejectHint' | 'rejectTerm'>) => {
      if (r.success && msg.entries.length === 0 && this.cfg.asyncStorageWrites === true && this.raw.writesInFlight()) {
        // A heartbeat while our writes are in flight: an answer kept in order behind them
        // would tie the leader's lease to our disk (a slow fsync became a lost-quorum
        // step-down). This one leaves at once (Ready.messages) and claims only the round.
        this.send({ type: 'appResp', to: msg.from, round: msg.round, ...r, matchIndex: msg.prevLogIndex, heartbeatOnly: true });
        return;
      }
      this.send({ type: 'appResp', to: msg.from, round: msg.round, ...r });
    };
    if (msg.prevLogIndex < this.log.committed) {
      // Everything up to our commit index matches the leader's log (Leader Completeness).
      reply({ success: true, matchIndex: this.log.committed, rejectHint: 0, rejectTerm: 0 });
      return;
    }
    if (!this.log.matchTerm(msg.prevLogIndex, msg.prevLogTerm)) {
      // Consistency check failed (Figure 2, receiver step 2). Point the leader at the
      // last index that may still match so it skips a whole term per round trip.
      const hint = this.log.findConflictByTerm(Math.min(msg.prevLogIndex, this.log.lastIndex()), msg.prevLogTerm);
      reply({ success: false, matchIndex: msg.prevLogIndex, rejectHint: hint.index, rejectTerm: hint.term });
      return;
    }
    const { appended, truncated } = this.log.maybeAppend(msg.entries);
    if (truncated || appended.some((e) => e.type === 'conf')) this.recomputeConf();
    const lastNew = msg.prevLogIndex + msg.entries.length;
    this.log.commitTo(Math.min(msg.leaderCommit, lastNew));
    reply({ success: true, matchIndex: lastNew, rejectHint: 0, rejectTerm: 0 });
  }

  /**
   * InstallSnapshot receiver (extended paper, Figure 13), guarded against a leader that
   * is faulty or not what it claims: the first chunk declares the whole size, checked
   * against maxSnapshotBytes before anything is held; no chunk may run past it; the last
   * must end exactly at it; and the checksum of what arrived must match the declared one.
   * A transfer failing any check is dropped whole and refused (the leader starts over):
   * installing a corrupt or partial snapshot would silently lose committed state, for
   * good, since the log it replaces is gone.
   */
  private handleSnapshot(msg: SnapshotRequest): void {
    const reply = (nextOffset: number, done: boolean, matchIndex: number) =>
      this.send({
        type: 'snapResp',
        to: msg.from,
        snapIndex: msg.meta.index,
        nextOffset,
        done,
        matchIndex,
        round: msg.round,
        refused: false,
      });
    const meta = msg.meta;
    if (meta.index <= this.log.committed) {
      this.dropIncoming();
      reply(msg.offset + msg.data.length, true, this.log.committed);
      return;
    }
    let inc = this.incomingSnapshot;
    const sameTransfer =
      inc !== null &&
      inc.meta.index === meta.index &&
      inc.meta.term === meta.term &&
      inc.totalSize === msg.totalSize &&
      inc.checksum === msg.checksum;
    if (inc === null || !sameTransfer) {
      if (msg.offset !== 0) {
        reply(0, false, 0);
        return;
      }
      this.dropIncoming();
      if (msg.totalSize > (this.cfg.maxSnapshotBytes ?? MAX_SNAPSHOT_BYTES)) {
        this.refuseSnapshot(msg, 'too-large');
        return;
      }
      const open = this.cfg.openSnapshotSink ?? ((_meta: Snapshot['meta'], totalSize: number) => memorySnapshotSink(totalSize));
      const sink = open(meta, msg.totalSize, msg.checksum);
      if (sink === null) {
        // Within maxSnapshotBytes, yet more than this node can hold now: refused like a
        // snapshot over the limit (the leader retries at its resend interval), not a crash.
        this.refuseSnapshot(msg, 'too-large');
        return;
      }
      inc = { meta, totalSize: msg.totalSize, checksum: msg.checksum, sink, size: 0, sum: 0 };
      this.incomingSnapshot = inc;
    }
    if (msg.offset !== inc.size) {
      // A duplicate or a gap: tell the leader where we are.
      reply(inc.size, false, 0);
      return;
    }
    const size = inc.size + msg.data.length;
    if (size > inc.totalSize) {
      this.refuseSnapshot(msg, 'overrun');
      return;
    }
    if (msg.done && size !== inc.totalSize) {
      this.refuseSnapshot(msg, 'truncated');
      return;
    }
    inc.sink.append(msg.data);
    inc.size = size;
    inc.sum = this.checksum(msg.data, inc.sum);
    if (!msg.done) {
      reply(inc.size, false, 0);
      return;
    }
    if (inc.sum !== inc.checksum) {
      this.refuseSnapshot(msg, 'checksum');
      return;
    }
    this.incomingSnapshot = null;
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the entries the snapshot covers; just learn they are committed.
      inc.sink.discard();
      this.log.commitTo(meta.index);
    } else {
      const snapshot: Snapshot = { meta, data: inc.sink.finish(inc.checksum) };
      this.log.restore(snapshot);
      this.snapshot = snapshot;
      this.snapshotChecksum = { of: snapshot, value: inc.checksum };
      this.snapshotToApply = snapshot;
      this.recomputeConf();
    }
    reply(inc.size, true, meta.index);
  }

  /** Drops the transfer being received, if any, and what its sink holds. */
  private dropIncoming(): void {
    this.incomingSnapshot?.sink.discard();
    this.incomingSnapshot = null;
  }

  private refuseSnapshot(msg: SnapshotRequest, reason: SnapshotRefusal): void {
    this.dropIncoming();
    this.events.push({ kind: 'snapshot-refused', from: msg.from, index: msg.meta.index, term: msg.term, reason });
    this.send({
      type: 'snapResp',
      to: msg.from,
      snapIndex: msg.meta.index,
      nextOffset: 0,
      done: false,
      matchIndex: 0,
      round: msg.round,
      refused: true,
    });
  }

  private checksum(data: Uint8Array, value: number): number {
    return (this.cfg.checksum ?? crc32Portable)(data, value);
  }

  private handleAppendResponse(msg: AppendResponse, pr: Progress): void {
    const from = msg.from;
    if (!msg.success) {
      const hint = msg.rejectTerm > 0 ? this.log.findConflictByTerm(msg.rejectHint, msg.rejectTerm).index : msg.rejectHint;
      if (pr.maybeDecrTo(msg.matchIndex, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(from, true);
      }
      return;
    }
    const wasPaused = this.paused(pr);
    const updated = pr.maybeUpdate(msg.matchIndex);
    if (pr.state === 'probe' && msg.matchIndex >= pr.matchIndex) pr.becomeReplicate();
    else if (pr.state === 'replicate') {
      pr.freeInflightTo(msg.matchIndex);
      const oldest = pr.inflight[0];
      if (oldest && msg.round > oldest.round && msg.matchIndex < oldest.index) {
        // The follower answered a heartbeat sent after this append without having it:
        // the append was lost (peer streams are FIFO). Find out where it stands again.
        pr.becomeProbe();
        this.sendAppend(from, true);
        return;
      }
    } else if (pr.state === 'snapshot' && pr.pendingSnapshot && pr.matchIndex >= pr.pendingSnapshot.index) pr.becomeProbe();
    if (updated) {
      if (this.maybeCommit()) this.broadcastAppend();
      if (from === this.leadTransferee && pr.matchIndex === this.log.lastIndex()) this.sendTimeoutNow(from);
    }
    if (updated || wasPaused) {
      while (this.sendAppend(from, false)) {
        if (this.paused(pr)) break;
      }
    }
  }

  // -------------------------------------------------------------------------
  // Replication (leader)

  private proposeEntry(type: EntryType, data: Uint8Array): ProposeResult {
    if (this.role !== 'leader') return this.refuse('not-leader');
    if (this.leadTransferee !== null) return this.refuse('transferring');
    // A follower that cannot keep up (slow disk, lost link) would otherwise let the
    // leader's log, and every proposer's wait, grow without bound; refuse instead, so the
    // client backs off and retries (etcd's MaxUncommittedEntriesSize). An entry is always
    // accepted when none is pending, however large, so no proposal is refused for ever.
    const max = this.cfg.maxUncommittedBytes ?? Infinity;
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + data.length > max) return this.refuse('overloaded');
    const entry = this.appendOnLeader(type, data);
    return { ok: true, index: entry.index, term: entry.term };
  }

  private appendOnLeader(type: EntryType, data: Uint8Array): Entry {
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this.term, type, data };
    this.log.append([entry]);
    this.uncommittedBytes += data.length;
    if (type === 'conf') {
      this.pendingConfIndex = entry.index;
      this.recomputeConf();
    }
    // Appends go out when the driver next asks for a Ready, so proposals made in one
    // turn of its loop share one message per follower (batching).
    this.needBroadcast = true;
    this.maybeCommit();
    return entry;
  }

  /**
   * Figure 2: commit the highest index a majority holds, but only counting entries of
   * this term (§5.4.2, Figure 8). The leader holds an entry once it is on its own disk:
   * with asynchronous writes that is what persisted() reported, not what it appended
   * (§10.2.1: it replicates in parallel with its write, but a quorum with its own vote
   * for an entry still in flight could lose that entry in a crash).
   */
  private maybeCommit(): boolean {
    const own = this.cfg.asyncStorageWrites === true ? this.log.durable : this.log.lastIndex();
    const index = quorumValue(this.conf.voters, (id) => (id === this.id ? own : this.progress.get(id)?.matchIndex), 0);
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false;
    for (let i = Math.max(this.log.committed + 1, this.leaderFirstIndex); i <= index; i++) {
      this.uncommittedBytes -= this.log.entry(i)?.data.length ?? 0;
    }
    if (this.uncommittedBytes < 0) this.uncommittedBytes = 0;
    this.log.commitTo(index);
    this.onLeaderCommit();
    return true;
  }

  private onLeaderCommit(): void {
    if (this.reads.hasAwaitingCommit() && this.log.term(this.log.committed) === this.term) {
      for (const r of this.reads.takeAwaitingCommit()) this.handleRead(r.requestId, r.from);
    }
    // A leader removed from the configuration steps down once the removal commits (§4.2.2).
    if (!this.conf.voters.includes(this.id) && this.log.committed >= this.confIndex) {
      this.events.push({ kind: 'step-down', term: this.term, reason: 'removed' });
      this.becomeFollower(this.term, null);
    }
  }

  private broadcastAppend(): void {
    for (const id of this.progress.keys()) this.sendAppend(id, false);
  }

  /** No more appends to this follower until some are acknowledged (flow control, by messages and bytes). */
  private paused(pr: Progress): boolean {
    return pr.isPaused(this.cfg.maxInflight, this.cfg.maxInflightBytes ?? Infinity);
  }

  /** Send the follower what it is missing. Returns whether a message went out. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    if (this.role !== 'leader') return false;
    const pr = this.progress.get(to);
    if (!pr || this.paused(pr)) return false;
    const prevLogIndex = pr.nextIndex - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    const entries = this.log.slice(pr.nextIndex, this.log.lastIndex(), this.cfg.maxMsgBytes);
    if (prevLogTerm === undefined || entries === undefined) {
      // The follower needs entries we compacted away (extended paper §7).
      return this.sendSnapshot(to, pr);
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'app', to, prevLogIndex, prevLogTerm, entries, leaderCommit: this.log.committed, round: this.round });
    if (pr.state === 'replicate' && entries.length > 0) {
      // Pipelining: assume success and move on; a rejection resets us to probe.
      pr.sentEntries(entries[entries.length - 1]!.index, this.round, entryBytes(entries));
    } else if (pr.state === 'probe') {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (this.snapshot === null) return false;
    pr.becomeSnapshot(this.snapshot.meta.index);
    this.sendSnapshotChunk(to, pr);
    return true;
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snap = this.snapshot;
    const pending = pr.pendingSnapshot;
    if (snap === null || pending === null) return;
    const total = snap.data.byteLength;
    const offset = Math.min(pending.offset, total);
    const data = snap.data.subarray(offset, Math.min(offset + this.cfg.snapshotChunkBytes, total));
    const done = offset + data.length >= total;
    pending.sentRound = this.round;
    if (this.snapshotChecksum?.of !== snap) {
      this.snapshotChecksum = { of: snap, value: checksumOf(snap.data, (d, v) => this.checksum(d, v), this.cfg.snapshotChunkBytes) };
    }
    const checksum = this.snapshotChecksum.value;
    this.send({ type: 'snap', to, meta: snap.meta, offset, data, done, round: this.round, totalSize: total, checksum });
  }

  /**
   * A new heartbeat round: every follower hears from us, which renews our lease and
   * confirms pending ReadIndex requests when a quorum answers (thesis §6.4).
   */
  private broadcastHeartbeat(): void {
    this.round++;
    this.roundSentAt.set(this.round, this.now);
    this.needReadRound = false;
    // Rounds older than an election timeout can no longer hold up a lease.
    for (const r of this.roundSentAt.keys()) {
      if (this.roundSentAt.get(r)! < this.now - this.cfg.electionTick) this.roundSentAt.delete(r);
      else break;
    }
    for (const [id, pr] of this.progress) {
      switch (pr.state) {
        case 'probe':
          pr.probeSent = false;
          this.sendAppend(id, true);
          break;
        case 'replicate':
          this.sendHeartbeat(id, pr);
          break;
        case 'snapshot':
          if (this.snapshot !== null && pr.pendingSnapshot?.index !== this.snapshot.meta.index) this.sendSnapshot(id, pr);
          // A chunk unanswered for a whole heartbeat interval was probably lost: resend it.
          else if (pr.pendingSnapshot && this.round - pr.pendingSnapshot.sentRound >= 2) this.sendSnapshotChunk(id, pr);
          break;
      }
    }
  }

  private sendHeartbeat(to: NodeId, pr: Progress): void {
    // Anchored at matchIndex, which the follower is known to hold, so a heartbeat never
    // trips the consistency check while pipelined appends are still in flight.
    const prevLogTerm = this.log.term(pr.matchIndex);
    if (prevLogTerm === undefined) {
      pr.becomeProbe();
      this.sendAppend(to, true);
      return;
    }
    this.send({
      type: 'app',
      to,
      prevLogIndex: pr.matchIndex,
      prevLogTerm,
      entries: [],
      leaderCommit: this.log.committed,
      round: this.round,
    });
  }

  private sendTimeoutNow(to: NodeId): void {
    this.timeoutNowSent = true;
    this.events.push({ kind: 'transfer', to, term: this.term, outcome: 'timeout-now-sent' });
    this.send({ type: 'timeoutNow', to });
  }

  // -------------------------------------------------------------------------
  // Linearizable reads (thesis §6.4)

  private handleRead(requestId: string, from: NodeId | null): void {
    if (this.log.term(this.log.committed) !== this.term) {
      // Step 1: the leader's commit index is only known to be current once an entry of
      // its own term has committed.
      this.reads.awaitCommit({ requestId, from });
      return;
    }
    const index = this.log.committed;
    const alone = this.conf.voters.length === 1 && this.conf.voters[0] === this.id;
    if (alone || (this.cfg.leaseReads && this.leaseValid())) {
      this.answerRead(requestId, from, index);
      return;
    }
    // Steps 2-3: confirm we are still leader with a fresh heartbeat round.
    this.reads.addPending({ requestId, from, index, round: this.round + 1 });
    this.needReadRound = true;
  }

  private checkReads(): void {
    if (!this.reads.hasPending()) return;
    const acked = quorumValue(this.conf.voters, (id) => (id === this.id ? Infinity : this.progress.get(id)?.ackedRound), 0);
    for (const r of this.reads.confirm(acked)) this.answerRead(r.requestId, r.from, r.index);
  }

  private answerRead(requestId: string, from: NodeId | null, index: number): void {
    if (from === null) this.readStates.push({ requestId, index });
    else this.send({ type: 'readIndexResp', to: from, requestId, index });
  }

  private failLeaderReads(): void {
    for (const r of this.reads.takeAllLeaderReads()) this.answerRead(r.requestId, r.from, -1);
  }

  private expireForwardedReads(): void {
    for (const id of this.reads.expire(this.now, this.cfg.electionTick)) this.readStates.push({ requestId: id, index: -1 });
  }

  // -------------------------------------------------------------------------
  // Helpers

  private recomputeConf(): void {
    const { conf, index } = this.log.confAt(this.log.lastIndex());
    this.conf = conf;
    this.confIndex = index;
    if (this.role !== 'leader') return;
    const members = new Set(this.members());
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    for (const id of members) {
      if (id === this.id) continue;
      const pr = this.progress.get(id);
      if (pr) pr.isLearner = !conf.voters.includes(id);
      else this.progress.set(id, new Progress(this.log.lastIndex() + 1, !conf.voters.includes(id)));
    }
    if (this.leadTransferee !== null && !conf.voters.includes(this.leadTransferee)) this.leadTransferee = null;
    // A smaller quorum may already hold more (e.g. after removing a slow voter).
    if (this.maybeCommit()) this.needBroadcast = true;
    this.checkReads();
  }

  private ignore(msg: Message, reason: IgnoreReason): void {
    this.events.push({ kind: 'ignored', from: msg.from, type: msg.type, term: msg.term, reason });
  }

  private checkTransition(to: Role, allowed: boolean): void {
    invariant(allowed, 'role-transition', () => ({ from: this.role, to, term: this.term, votedFor: this.votedFor }));
  }

  private members(): NodeId[] {
    return [...this.conf.voters, ...this.conf.learners];
  }

  private promotable(): boolean {
    return this.electable && this.conf.voters.includes(this.id);
  }

  private inLease(): boolean {
    return this.role === 'leader' || this.leaderContactElapsed < this.cfg.electionTick;
  }

  private flush(): void {
    if (this.role !== 'leader') return;
    if (this.needReadRound) this.broadcastHeartbeat();
    if (this.needBroadcast) {
      this.needBroadcast = false;
      this.broadcastAppend();
    }
  }

  private refuse(error: RaftErrorKind): ProposeResult {
    return { ok: false, error, leaderId: this.role === 'leader' ? this.id : this.leaderId };
  }

  private send(m: Outgoing): void {
    this.msgs.push({ ...m, clusterId: this.cfg.clusterId, from: this.id, term: m.term ?? this.term } as Message);
  }

  private hardState(): HardState {
    return { term: this.term, votedFor: this.votedFor, commit: this.log.committed };
  }
}

/** Payload bytes of `entries` (what maxMsgBytes and maxInflightBytes count). */
function entryBytes(entries: readonly Entry[]): number {
  let n = 0;
  for (const e of entries) n += e.data.length;
  return n;
}

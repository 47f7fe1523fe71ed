// Known Raft bugs, each written as one exact edit of the core's (or the runtime's)
// TypeScript source. build.ts applies one of them to a copy of the sources in a
// test-only build; the simulator must then find a violated invariant by itself
// (`npm run sim:mutants`). A simulator that passes 10,000 seeds proves little until it
// also fails on these.
//
// `find` must occur exactly once in `file`: when a refactor moves or rewords the code,
// the build fails loudly and the entry must be rewritten, so the table cannot silently
// stop mutating anything.

export interface Mutant {
  /** Short kebab-case name, used on the command line (`--only`). */
  readonly id: string;
  /** The bug, and the rule of the paper or thesis it breaks. */
  readonly bug: string;
  /** Source file, relative to the repository root. */
  readonly file: string;
  /** Exact source text to replace (must occur exactly once in `file`). */
  readonly find: string;
  readonly replace: string;
  /**
   * Set when other rules of this core keep the simulator from ever reaching the state the
   * mutated line guards: why, and the test that catches the mutant instead. Such a rule
   * still stays (a follower must not depend on how its leader probes), and the runner still
   * hunts it, but its surviving does not fail the suite.
   */
  readonly masked?: { readonly why: string; readonly caughtBy: string };
}

export const MUTANTS: readonly Mutant[] = [
  {
    id: 'figure-8',
    bug: 'the leader commits any index a quorum holds, whatever its term (§5.4.2, Figure 8)',
    file: 'src/raft/raft.ts',
    find: 'if (index <= this.log.committed || this.log.term(index) !== this.term) return false;',
    replace: 'if (index <= this.log.committed) return false;',
  },
  {
    id: 'vote-before-persist',
    bug: 'a vote grant (and a candidate’s vote requests) leave before the new term and vote are durable (Figure 2: persist before responding)',
    file: 'src/raft/raw-node.ts',
    find: `    if (termOrVote) return { now: [], afterPersist: msgs };
    const now: Message[] = [];
    const afterPersist: Message[] = [];
    for (const m of msgs) {
      if ((m.type === 'appResp' && m.heartbeatOnly !== true) || m.type === 'snapResp' || m.type === 'voteResp') afterPersist.push(m);`,
    replace: `    const now: Message[] = [];
    const afterPersist: Message[] = [];
    for (const m of msgs) {
      if ((m.type === 'appResp' && m.heartbeatOnly !== true) || m.type === 'snapResp') afterPersist.push(m);`,
  },
  {
    id: 'ack-before-persist',
    bug: 'a follower acknowledges entries before they are durable (Figure 2: persist before responding)',
    file: 'src/raft/raw-node.ts',
    find: "if ((m.type === 'appResp' && m.heartbeatOnly !== true) || m.type === 'snapResp' || m.type === 'voteResp') afterPersist.push(m);",
    replace: "if (m.type === 'voteResp') afterPersist.push(m);",
  },
  {
    id: 'leader-counts-unpersisted',
    bug: 'the leader counts its own entries towards a quorum before they are on its disk (thesis §10.2.1)',
    file: 'src/raft/raft.ts',
    find: 'const own = this.cfg.asyncStorageWrites === true ? this.log.durable : this.log.lastIndex();',
    replace: 'const own = this.log.lastIndex();',
  },
  {
    id: 'lease-from-ack',
    bug: 'the lease is counted from when a heartbeat is acknowledged instead of when it was sent (thesis §6.4.1)',
    file: 'src/raft/raft.ts',
    find: `      case 'appResp':
        pr.ackedRound = Math.max(pr.ackedRound, msg.round);`,
    replace: `      case 'appResp':
        pr.ackedRound = Math.max(pr.ackedRound, msg.round);
        if (this.roundSentAt.has(msg.round)) this.roundSentAt.set(msg.round, this.now);`,
  },
  {
    id: 'commit-past-append',
    bug: 'a follower takes the leader’s commit index past the entries the append verified (commitTo(leaderCommit) without min(lastNew); Figure 2, AppendEntries step 5)',
    file: 'src/raft/raft.ts',
    find: 'this.log.commitTo(Math.min(msg.leaderCommit, lastNew));',
    replace: 'this.log.commitTo(Math.min(msg.leaderCommit, this.log.lastIndex()));',
    masked: {
      why:
        'a follower only holds entries past what an append verified when they are an older term’s suffix, and such a ' +
        'suffix never survives the leader’s first successful append: the leader’s no-op (its own term) lies at or ' +
        'before the first index where the logs differ, its probing (conflict hints) never goes below that index, and ' +
        'heartbeats are anchored at the acknowledged match index, so the first accepted append starts at the ' +
        'conflict and truncates the suffix',
      caughtBy: 'test/raft/append.test.ts (a heartbeat anchored below the stale suffix commits only up to its anchor)',
    },
  },
  {
    id: 'prevote-in-lease',
    bug: 'a node that hears from a leader grants pre-votes anyway, so a rejoining node with a fresh log disrupts a healthy leader (thesis §9.6, §4.2.3)',
    file: 'src/raft/raft.ts',
    find: "if (msg.type === 'vote' && !msg.transfer && this.inLease()) {",
    replace: "if (msg.type === 'vote' && !msg.preVote && !msg.transfer && this.inLease()) {",
  },
  {
    id: 'vote-in-lease',
    bug: 'a node that hears from a leader grants real votes too, so a second leader is elected while the first holds its lease (thesis §6.4)',
    file: 'src/raft/raft.ts',
    find: "if (msg.type === 'vote' && !msg.transfer && this.inLease()) {",
    replace: "if (msg.type === 'vote' && msg.preVote && !msg.transfer && this.inLease()) {",
  },
  {
    id: 'no-noop',
    bug: 'a new leader appends no entry of its own term, so it cannot learn its commit index until a client writes (§5.4.2, thesis §6.4 step 1)',
    file: 'src/raft/raft.ts',
    find: "    this.appendOnLeader('noop', EMPTY);\n",
    replace: '\n',
  },
  {
    id: 'shorter-log-vote',
    bug: 'a vote is granted to a candidate whose log is less up to date (§5.4.1, election restriction)',
    file: 'src/raft/raft.ts',
    find: 'const upToDate = this.log.isUpToDate(msg.lastLogIndex, msg.lastLogTerm);',
    replace: 'const upToDate = msg.lastLogIndex >= 0;',
  },
  {
    id: 'stale-append-response',
    bug: 'an append response from an earlier term is not discarded, so an old acknowledgement counts in the new term (Figure 2, "All Servers")',
    file: 'src/raft/raft.ts',
    find: '    } else if (msg.term < this.term) {\n      this.answerStale(msg);',
    replace: "    } else if (msg.term < this.term && msg.type !== 'appResp') {\n      this.answerStale(msg);",
  },
  {
    id: 'read-without-quorum',
    bug: 'ReadIndex is answered without a heartbeat round confirming leadership (thesis §6.4 steps 2-3)',
    file: 'src/raft/raft.ts',
    find: 'if (alone || (this.cfg.leaseReads && this.leaseValid())) {',
    replace: 'if (true) {',
  },
  {
    id: 'read-before-own-commit',
    bug: 'a new leader answers ReadIndex with a commit index it does not yet know to be current (thesis §6.4 step 1)',
    file: 'src/raft/raft.ts',
    find: `    if (this.log.term(this.log.committed) !== this.term) {
      // Step 1:`,
    replace: `    if (false) {
      // Step 1:`,
  },
];

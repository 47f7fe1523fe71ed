// Membership changes, one server at a time (thesis §4.1).
//
// Why single-server changes and not joint consensus: adding or removing one voter
// changes the majority so that every majority of the old configuration overlaps every
// majority of the new one, which is all the safety argument needs, and it keeps the
// quorum code to a single voter list. The known flaw (Ongaro, raft-dev, 2015: a change
// proposed by a new leader can interleave with an uncommitted change of a previous
// term and produce two disjoint majorities) is closed by the rule in raft.ts: a leader
// accepts a configuration change only after it has committed an entry of its own term
// (its no-op), and only while no other change is uncommitted.
//
// A configuration takes effect as soon as its entry is in a server's log, committed or
// not (thesis §4.1), so a truncated log must recompute its configuration.
import type { ConfChange, ConfChangeOp, ConfState, NodeId } from './types.js';

const OPS: readonly ConfChangeOp[] = ['addVoter', 'removeVoter', 'addLearner', 'promoteLearner', 'updateMember'];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return encoder.encode(JSON.stringify({ op: cc.op, nodeId: cc.nodeId, context: cc.context ?? '' }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const raw: unknown = JSON.parse(decoder.decode(data));
  if (typeof raw !== 'object' || raw === null) throw new Error('conf change: not an object');
  const { op, nodeId, context } = raw as Record<string, unknown>;
  if (typeof op !== 'string' || !OPS.includes(op as ConfChangeOp)) throw new Error(`conf change: unknown op ${String(op)}`);
  if (typeof nodeId !== 'string' || nodeId === '') throw new Error('conf change: missing nodeId');
  return { op: op as ConfChangeOp, nodeId, context: typeof context === 'string' ? context : '' };
}

/** Why a change cannot apply to `conf`, or null when it can. */
export function confChangeError(conf: ConfState, cc: ConfChange): string | null {
  const voter = conf.voters.includes(cc.nodeId);
  const learner = conf.learners.includes(cc.nodeId);
  switch (cc.op) {
    case 'addVoter':
      return voter ? `${cc.nodeId} is already a voter` : null;
    case 'addLearner':
      return voter || learner ? `${cc.nodeId} is already a member` : null;
    case 'promoteLearner':
      return learner ? null : `${cc.nodeId} is not a learner`;
    case 'removeVoter':
      if (!voter && !learner) return `${cc.nodeId} is not a member`;
      if (voter && conf.voters.length === 1) return 'cannot remove the last voter';
      return null;
    case 'updateMember':
      return voter || learner ? null : `${cc.nodeId} is not a member`;
  }
}

/** The configuration after `cc`. Invalid changes leave it as it is (they were refused at proposal time). */
export function applyConfChange(conf: ConfState, cc: ConfChange): ConfState {
  if (confChangeError(conf, cc) !== null) return conf;
  const without = (ids: readonly NodeId[]) => ids.filter((id) => id !== cc.nodeId);
  switch (cc.op) {
    case 'addVoter':
    case 'promoteLearner':
      return { voters: [...without(conf.voters), cc.nodeId], learners: without(conf.learners) };
    case 'addLearner':
      return { voters: conf.voters, learners: [...conf.learners, cc.nodeId] };
    case 'removeVoter':
      return { voters: without(conf.voters), learners: without(conf.learners) };
    case 'updateMember':
      return conf;
  }
}

// Deliberately broken nodes, injected through SimOptions.wrapNode, to prove the
// simulator catches the class of bug each one has (STYLE.md principle 11: prove each
// checker by feeding it a broken case). Never used outside tests and `--broken`.
import type { Message, NodeId, Ready } from '../../src/raft/types.js';
import type { NodeWrapper, SimNode } from './simulator.js';

/**
 * Grants every vote and pre-vote it is asked for, whatever it already voted for in
 * that term, on top of what the real core answers: the "votes twice in a term" bug
 * that breaks Election Safety (§5.2 relies on one vote per server per term).
 */
export const grantsEveryVote: NodeWrapper = (node: SimNode, id: NodeId): SimNode => {
  const extra: Message[] = [];
  const real = new Map<Ready, Ready>();
  return {
    tick: () => node.tick(),
    step(m) {
      if (m.type === 'vote' && m.to === id) {
        extra.push({ type: 'voteResp', clusterId: m.clusterId, from: id, to: m.from, term: m.term, preVote: m.preVote, granted: true });
      }
      return node.step(m);
    },
    propose: (d) => node.propose(d),
    proposeConfChange: (cc) => node.proposeConfChange(cc),
    readIndex: (r) => node.readIndex(r),
    transferLeadership: (to) => node.transferLeadership(to),
    campaign: () => node.campaign(),
    compact: (i, d) => node.compact(i, d),
    hasReady: () => extra.length > 0 || node.hasReady(),
    ready() {
      const msgs = extra.splice(0);
      if (!node.hasReady()) {
        return {
          softState: null,
          hardState: null,
          snapshot: null,
          entries: [],
          committedEntries: [],
          messages: msgs,
          readStates: [],
          mustSync: false,
          events: [],
        };
      }
      const rd = node.ready();
      const out = { ...rd, messages: [...rd.messages, ...msgs] };
      real.set(out, rd);
      return out;
    },
    advance(rd) {
      const r = real.get(rd);
      if (r === undefined) return;
      real.delete(rd);
      node.advance(r);
    },
    status: () => node.status(),
    leaseValid: () => node.leaseValid(),
  };
};

export const BROKEN: Readonly<Record<string, NodeWrapper>> = { 'grants-every-vote': grantsEveryVote };

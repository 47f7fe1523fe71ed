// What the peer handshake checks beyond "same cluster, known member": that the peer is
// the same incarnation of that member this node knows, and that it runs with the same
// timing. Both are checked by the server on the dialer's Hello and by the dialer on the
// server's reply, so a refused peer neither sends nor receives a single Raft message:
// it cannot vote, and it cannot count toward a commit.
import type { NodeId } from '../raft/types.js';
import type { Hello, PeerTiming } from './codec.js';

/** Why a handshake was refused; a closed set, shown in GetStatus. */
export type RefusalKind = 'timing' | 'incarnation';

export const REFUSAL_KINDS: readonly RefusalKind[] = ['timing', 'incarnation'];

/** Trailing metadata key a refusing server sets to the RefusalKind, so the dialer knows it was refused and why. */
export const REFUSAL_METADATA_KEY = 'leaderd-peer-refused';

export interface Refusal {
  readonly kind: RefusalKind;
  /** One line naming both sides' values. */
  readonly reason: string;
}

/** A refused handshake as GetStatus shows it. */
export interface RefusedPeer extends Refusal {
  readonly peerId: NodeId;
  /** True when the peer refused this node; false when this node refused the peer. */
  readonly byPeer: boolean;
}

/** What the transport asks the runtime at every handshake. */
export interface HandshakePolicy {
  /** This node's data dir incarnation and timing, sent in every Hello. */
  readonly incarnation: string;
  readonly timing: PeerTiming;
  /** The incarnation this node knows for member `id` (replicated record or first contact), if any. */
  knownIncarnation(id: NodeId): string | undefined;
  /** First contact with a member whose incarnation was not known yet: remember it. */
  learnIncarnation(id: NodeId, incarnation: string): void;
  /** The incarnations this node knows of other members (records, first contact), sent in every Hello. */
  knownIncarnations(): ReadonlyMap<NodeId, string>;
  /** A peer's Hello told of a member whose incarnation this node does not know yet. */
  heardIncarnation(id: NodeId, incarnation: string): void;
  /** A peer refused this node's handshake. */
  refusedByPeer(id: NodeId, refusal: Refusal): void;
}

export function describeTiming(t: PeerTiming): string {
  return `heartbeat ${t.heartbeatMs} ms, election timeout ${t.electionTimeoutMs} ms, tick ${t.tickMs} ms, lease drift margin ${t.leaseDriftMs} ms`;
}

export function sameTiming(a: PeerTiming, b: PeerTiming): boolean {
  return (
    a.heartbeatMs === b.heartbeatMs &&
    a.electionTimeoutMs === b.electionTimeoutMs &&
    a.tickMs === b.tickMs &&
    a.leaseDriftMs === b.leaseDriftMs
  );
}

/**
 * The refusal `self` owes the peer that sent `hello`, or null to admit it. Timing is
 * checked first: a peer with other timing is refused before its incarnation is learned.
 * A Hello without timing or incarnation (an older node) is admitted on that count.
 */
export function checkHello(self: NodeId, policy: HandshakePolicy, hello: Hello): Refusal | null {
  if (hello.timing && !sameTiming(hello.timing, policy.timing)) {
    // The lease arithmetic (thesis §6.4) assumes every member waits at least the same
    // election timeout before voting for another leader; a member with a shorter one
    // could help elect a new leader while the old lease is still believed.
    return {
      kind: 'timing',
      reason: `timing differs: ${self} has ${describeTiming(policy.timing)}; ${hello.nodeId} has ${describeTiming(hello.timing)}`,
    };
  }
  const theirs = hello.incarnation ?? '';
  if (theirs === '') return null;
  const known = policy.knownIncarnation(hello.nodeId);
  if (known !== undefined && known !== theirs) {
    return {
      kind: 'incarnation',
      reason: `${hello.nodeId} is incarnation ${theirs}, but ${self} knows member ${hello.nodeId} as incarnation ${known}: its data dir was wiped, replaced or copied, so it lost the votes and entries it acknowledged`,
    };
  }
  if (known === undefined) policy.learnIncarnation(hello.nodeId, theirs);
  // What an admitted peer knows of third members fills the gaps in what this node knows:
  // a member that lost its data dir is then refused here too, though this node never met
  // its previous incarnation and the replicated record of it has not reached it yet. A
  // wrong claim can only make this node refuse a member (availability), never admit one.
  for (const [id, incarnation] of hello.knownIncarnations ?? []) {
    if (id !== self && id !== hello.nodeId && policy.knownIncarnation(id) === undefined) policy.heardIncarnation(id, incarnation);
  }
  return null;
}

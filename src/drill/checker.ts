// What a drill checks, as pure functions over what it recorded: acknowledged writes that a
// read-back no longer finds (RPO), two nodes claiming leadership at once, and each trial's
// timings. Kept apart from the processes and clocks so a fabricated broken history proves
// each check fires (test/drill/checker.test.ts).
import type { DrillLeaderSpan } from './result.js';

/** A write the cluster acknowledged: it must be readable, as written, forever after. */
export interface AckedWrite {
  readonly key: string;
  readonly value: string;
  readonly revision: number;
  readonly ackedAtMs: number;
}

/** What a linearizable read found under the drill's key prefix. */
export interface FoundValue {
  readonly value: string;
  readonly modRevision: number;
}

/**
 * Acknowledged writes the read-back does not find as acknowledged: the key is gone, holds
 * another value, or was last written at another revision (each drill key is written once,
 * so a different revision means the write was lost and something else wrote the key, or
 * it was applied twice).
 */
export function lostWrites(acked: readonly AckedWrite[], found: ReadonlyMap<string, FoundValue>): AckedWrite[] {
  return acked.filter((w) => {
    const f = found.get(w.key);
    return f === undefined || f.value !== w.value || f.modRevision !== w.revision;
  });
}

/**
 * One GetStatus poll of one node. The node's answer describes some instant between sentMs
 * and receivedMs; a node is polled by one loop, one request at a time, so its observations
 * are ordered. `status` null: no answer in time (down, paused or cut off).
 */
export interface StatusObservation {
  readonly node: string;
  readonly sentMs: number;
  readonly receivedMs: number;
  readonly status: { role: string; term: number; leaderId: string; leaseValid: boolean } | null;
}

export interface LeadershipOverlap {
  readonly kind: 'same-term' | 'lease';
  readonly atMs: number;
  readonly detail: string;
}

/**
 * Two nodes claiming leadership at once, found two ways:
 * - two nodes reporting role leader in the same term, at any times (Raft allows one leader
 *   per term, thesis §3.4 Election Safety);
 * - a node claiming a valid lease at an instant that certainly lies inside another node's
 *   lease: between two consecutive answered polls of that other node, both claiming a valid
 *   lease in the same term with no failed poll between. The span is taken as held throughout:
 *   a leader cannot lose and regain its lease in one term while a quorum serves another leader,
 *   so this can report only a real overlap, and polls every few tens of ms leave no wider gap.
 */
export function leadershipOverlaps(observations: readonly StatusObservation[]): LeadershipOverlap[] {
  const out: LeadershipOverlap[] = [];
  const leaderOfTerm = new Map<number, { node: string; atMs: number }>();
  const reported = new Set<string>();
  for (const o of observations) {
    if (o.status?.role !== 'leader') continue;
    const first = leaderOfTerm.get(o.status.term);
    if (first === undefined) leaderOfTerm.set(o.status.term, { node: o.node, atMs: o.receivedMs });
    else if (first.node !== o.node) {
      const k = `${o.status.term}:${[first.node, o.node].sort().join(',')}`;
      if (!reported.has(k)) {
        reported.add(k);
        out.push({ kind: 'same-term', atMs: o.receivedMs, detail: `${first.node} and ${o.node} both led term ${o.status.term}` });
      }
    }
  }

  const byNode = new Map<string, StatusObservation[]>();
  for (const o of observations) {
    const list = byNode.get(o.node) ?? [];
    list.push(o);
    byNode.set(o.node, list);
  }
  const held: { node: string; term: number; fromMs: number; toMs: number }[] = [];
  const claims: { node: string; term: number; sentMs: number; receivedMs: number }[] = [];
  for (const [node, list] of byNode) {
    list.sort((a, b) => a.sentMs - b.sentMs);
    for (let i = 0; i < list.length; i++) {
      const a = list[i]!;
      if (a.status?.role !== 'leader' || !a.status.leaseValid) continue;
      claims.push({ node, term: a.status.term, sentMs: a.sentMs, receivedMs: a.receivedMs });
      const b = list[i + 1];
      if (b?.status?.role === 'leader' && b.status.leaseValid && b.status.term === a.status.term)
        held.push({ node, term: a.status.term, fromMs: a.receivedMs, toMs: b.sentMs });
    }
  }
  for (const c of claims) {
    const inside = held.find((h) => h.node !== c.node && h.fromMs <= c.sentMs && c.receivedMs <= h.toMs);
    if (inside === undefined) continue;
    out.push({
      kind: 'lease',
      atMs: c.sentMs,
      detail: `${c.node} claimed a valid lease (term ${c.term}) while ${inside.node} held one (term ${inside.term})`,
    });
  }
  return out.sort((a, b) => a.atMs - b.atMs);
}

/** One write of the drill's load, by the time its call started; ackMs null = not acknowledged. */
export interface WriteSample {
  readonly startMs: number;
  readonly ackMs: number | null;
}

export interface TrialTimings {
  readonly detectionMs: number | null;
  readonly newLeaderMs: number | null;
  readonly newLeader: string | null;
  readonly rtoMs: number | null;
}

/**
 * The timings of one trial whose fault was injected at `faultMs` on the leader `oldLeader`
 * of term `oldTerm`:
 * - detection: the first poll sent after the fault in which some node reports no leader or
 *   a newer term (answered at receivedMs, so an upper bound);
 * - new leader: the first poll after the fault in which a node leads a newer term;
 * - RTO: the last write acknowledged before the fault to the first write started after the
 *   fault and acknowledged (a write in flight at the fault may have committed before it, so
 *   it does not prove the cluster available again).
 */
export function trialTimings(
  faultMs: number,
  oldTerm: number,
  observations: readonly StatusObservation[],
  samples: readonly WriteSample[],
): TrialTimings {
  let detectionMs: number | null = null;
  let newLeaderMs: number | null = null;
  let newLeader: string | null = null;
  for (const o of observations) {
    if (o.sentMs < faultMs || o.status === null) continue;
    const since = o.receivedMs - faultMs;
    if ((o.status.leaderId === '' || o.status.term > oldTerm) && (detectionMs === null || since < detectionMs)) detectionMs = since;
    if (o.status.role === 'leader' && o.status.term > oldTerm && (newLeaderMs === null || since < newLeaderMs)) {
      newLeaderMs = since;
      newLeader = o.node;
    }
  }
  let lastBefore: number | null = null;
  let firstAfter: number | null = null;
  for (const s of samples) {
    if (s.ackMs === null) continue;
    if (s.ackMs <= faultMs && (lastBefore === null || s.ackMs > lastBefore)) lastBefore = s.ackMs;
    if (s.startMs > faultMs && (firstAfter === null || s.ackMs < firstAfter)) firstAfter = s.ackMs;
  }
  const rtoMs = lastBefore !== null && firstAfter !== null ? firstAfter - lastBefore : null;
  return { detectionMs, newLeaderMs, newLeader, rtoMs };
}

/**
 * Who led, span by span, for the report's timeline: after each answer, the leader is the
 * node reporting role leader in the highest term among every node's latest answer (a node
 * whose latest poll failed counts for nothing); null while none does.
 */
export function leadershipSpans(observations: readonly StatusObservation[]): DrillLeaderSpan[] {
  const sorted = [...observations].sort((a, b) => a.receivedMs - b.receivedMs);
  const latest = new Map<string, StatusObservation>();
  const spans: DrillLeaderSpan[] = [];
  // While no node answers, the timeline keeps the last term anyone reported.
  let term = 0;
  for (const o of sorted) {
    latest.set(o.node, o);
    let leader: string | null = null;
    let leaderTerm = -1;
    for (const l of latest.values()) {
      if (l.status === null) continue;
      term = Math.max(term, l.status.term);
      if (l.status.role === 'leader' && l.status.term > leaderTerm) {
        leader = l.node;
        leaderTerm = l.status.term;
      }
    }
    const spanTerm = leader !== null ? leaderTerm : term;
    const last = spans[spans.length - 1];
    if (last !== undefined && last.leader === leader && last.term === spanTerm) last.toMs = o.receivedMs;
    else {
      if (last !== undefined) last.toMs = o.receivedMs;
      spans.push({ fromMs: o.receivedMs, toMs: o.receivedMs, leader, term: spanTerm });
    }
  }
  return spans;
}

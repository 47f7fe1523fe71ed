// Asynchronous storage writes (asyncStorageWrites): the driver overlaps its disk writes
// with sending and applying, as etcd-io/raft's AsyncStorageWrites and raft-rs's
// advance_append_async do. What may leave early, and what a leader may count, told as
// stories.
import { describe, expect, it } from 'vitest';
import { RaftNode } from '../../src/raft/raft.js';
import type { AppendRequest, Message, Ready } from '../../src/raft/types.js';
import { Cluster, config } from './harness.js';

const enc = (s: string) => new TextEncoder().encode(s);
const async3 = () => new Cluster(['a', 'b', 'c'], { asyncStorageWrites: true });

/** A follower takes an append and persists it at once; returns its Ready and the answers that waited for the write. */
function followerPersists(c: Cluster, app: Message): { rd: Ready; answers: readonly Message[] } {
  const f = c.node(app.to);
  f.step(app);
  const rd = f.ready();
  f.advance(rd);
  return { rd, answers: rd.messagesAfterPersist };
}

describe('asynchronous storage writes (Raft thesis §10.2.1)', () => {
  it('the leader sends its appends before its own write is durable, and counts itself only once it is', () => {
    const c = async3();
    c.forceElect('a');
    const a = c.node('a');
    const { index } = a.propose(enc('x')) as { index: number };
    const rd = a.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([index]);
    const apps = rd.messages.filter((m): m is AppendRequest => m.type === 'app' && m.entries.length > 0);
    expect(apps.map((m) => m.to).sort()).toEqual(['b', 'c']);
    expect(rd.messagesAfterPersist).toEqual([]);
    a.advanceAsync(rd); // a's write is in flight

    // b persists and acknowledges: b alone is not a majority without a's own write.
    const { answers } = followerPersists(
      c,
      apps.find((m) => m.to === 'b')!,
    );
    expect(answers).toMatchObject([{ type: 'appResp', to: 'a', success: true, matchIndex: index }]);
    a.step(answers[0]!);
    expect(a.status().commitIndex).toBe(index - 1);

    // a's write completes: a and b are a majority.
    a.persisted(rd);
    expect(a.status().commitIndex).toBe(index);
    const next = a.ready();
    expect(next.committedEntries.map((e) => e.index)).toEqual([index]);
    a.advance(next);
  });

  it('two followers make a majority while the leader is still writing', () => {
    const c = async3();
    c.forceElect('a');
    const a = c.node('a');
    const { index } = a.propose(enc('x')) as { index: number };
    const rd = a.ready();
    a.advanceAsync(rd);
    for (const app of rd.messages.filter((m) => m.type === 'app')) {
      for (const ack of followerPersists(c, app).answers) a.step(ack);
    }
    expect(a.status().commitIndex).toBe(index);
    a.persisted(rd);
  });

  it('a follower acknowledges an append only after its write, and answers a heartbeat at once with the round only', () => {
    const c = async3();
    c.forceElect('a');
    const a = c.node('a');
    const { index } = a.propose(enc('x')) as { index: number };
    const rd = a.ready();
    a.advance(rd);
    const b = c.node('b');
    b.step(rd.messages.find((m) => m.to === 'b')!);
    const brd = b.ready();
    expect(brd.messages).toEqual([]);
    expect(brd.messagesAfterPersist).toMatchObject([{ type: 'appResp', success: true, matchIndex: index }]);
    b.advanceAsync(brd); // b's write is in flight
    // A heartbeat arrives meanwhile: its answer does not wait for b's disk, and claims
    // nothing about b's log (the append's acknowledgement is still on its way).
    a.tick();
    const hb = a.ready();
    a.advance(hb);
    const beat = hb.messages.find((m): m is AppendRequest => m.to === 'b' && m.type === 'app')!;
    b.step(beat);
    const brd2 = b.ready();
    expect(brd2.messages).toMatchObject([{ type: 'appResp', success: true, heartbeatOnly: true, round: beat.round }]);
    expect(brd2.messagesAfterPersist).toEqual([]);
    b.advanceAsync(brd2);

    // The leader takes the round, and no progress decision: the answer overtook the
    // append's acknowledgement, which is not a lost append (no probe, no resend).
    a.step(brd2.messages[0]!);
    expect(a.status().progress!.get('b')).toMatchObject({ state: 'replicate', matchIndex: index - 1 });
    expect(a.hasReady() ? a.ready().messages.filter((m) => m.to === 'b') : []).toEqual([]);
    b.persisted(brd);
    a.step(brd.messagesAfterPersist[0]!);
    expect(a.status().progress!.get('b')).toMatchObject({ state: 'replicate', matchIndex: index });
    expect(a.status().commitIndex).toBe(index);
    b.persisted(brd2);
  });

  it("the leader keeps its lease on heartbeat-only answers while the followers' disks are stuck", () => {
    const c = async3();
    c.forceElect('a');
    const a = c.node('a');
    a.propose(enc('x'));
    const rd = a.ready();
    a.advance(rd);
    const stuck: Ready[] = [];
    for (const f of ['b', 'c']) {
      c.node(f).step(rd.messages.find((m) => m.to === f)!);
      const frd = c.node(f).ready();
      c.node(f).advanceAsync(frd); // never completes
      stuck.push(frd);
    }
    // Three election timeouts of heartbeats, answered at once by the followers.
    for (let t = 0; t < 30; t++) {
      a.tick();
      while (a.hasReady()) {
        const ard = a.ready();
        a.advance(ard);
        for (const m of ard.messages) {
          const f = c.node(m.to);
          f.step(m);
          while (f.hasReady()) {
            const frd = f.ready();
            f.advanceAsync(frd);
            stuck.push(frd);
            for (const ans of frd.messages) a.step(ans);
          }
        }
      }
      expect(a.status().role).toBe('leader');
      expect(a.leaseValid()).toBe(true);
    }
  });

  it("a candidate's vote requests wait until its new term and vote for itself are durable", () => {
    const c = async3();
    c.forceElect('a');
    c.crash('a');
    const b = c.node('b');
    for (let i = 0; i < 40 && b.status().role !== 'precandidate'; i++) {
      b.tick();
      while (b.hasReady()) b.advance(b.ready());
    }
    expect(b.status().role).toBe('precandidate');
    const term = b.status().term;
    // The pre-vote changes nothing durable; c grants it.
    c.node('c').step({
      type: 'vote',
      clusterId: 'test-cluster',
      from: 'b',
      to: 'c',
      term: term + 1,
      preVote: true,
      lastLogIndex: 99,
      lastLogTerm: term,
      transfer: false,
    });
    for (let i = 0; i < 20; i++) c.node('c').tick(); // out of a's lease
    const crd = c.node('c').ready();
    c.node('c').advance(crd);
    b.step({ type: 'voteResp', clusterId: 'test-cluster', from: 'c', to: 'b', term: term + 1, preVote: true, granted: true });
    const rd = b.ready();
    expect(rd.hardState).toMatchObject({ term: term + 1, votedFor: 'b' });
    expect(rd.messages).toEqual([]);
    expect(rd.messagesAfterPersist.map((m) => `${m.type}->${m.to}`).sort()).toEqual(['vote->a', 'vote->c']);
    b.advanceAsync(rd);
    b.persisted(rd);
  });

  it('a single voter commits its entries only once its own write is durable', () => {
    const a = new RaftNode(config('a', 1, { asyncStorageWrites: true }), {
      hardState: { term: 0, votedFor: null, commit: 0 },
      snapshot: null,
      entries: [],
      bootstrapConf: { voters: ['a'], learners: [] },
    });
    for (let i = 0; i < 40 && a.status().role !== 'leader'; i++) a.tick();
    expect(a.status().role).toBe('leader');
    const rd = a.ready();
    expect(rd.entries).toHaveLength(1);
    expect(rd.committedEntries).toEqual([]);
    a.advanceAsync(rd);
    expect(a.hasReady()).toBe(false);
    expect(a.status().commitIndex).toBe(0);
    a.persisted(rd);
    expect(a.status().commitIndex).toBe(1);
    expect(a.ready().committedEntries.map((e) => e.index)).toEqual([1]);
  });

  it('without asyncStorageWrites every message waits for the write, and the leader counts what it appended', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.forceElect('a');
    const a = c.node('a');
    const { index } = a.propose(enc('x')) as { index: number };
    const rd = a.ready();
    expect(rd.messagesAfterPersist).toEqual([]);
    a.advance(rd);
    const { rd: brd } = followerPersists(
      c,
      rd.messages.find((m) => m.to === 'b')!,
    );
    expect(brd.messagesAfterPersist).toEqual([]);
    a.step(brd.messages[0]!);
    expect(a.status().commitIndex).toBe(index);
  });
});

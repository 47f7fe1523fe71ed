// Human-readable one-line descriptions of events, for the trace printed with a failing seed.
import type { Message, Ready } from '../../src/raft/types.js';
import type { PersistInput } from '../../src/storage/leveldb-storage.js';

export function describeMessage(m: Message): string {
  switch (m.type) {
    case 'vote':
      return `${m.preVote ? 'prevote' : 'vote'}(term=${m.term}, last=${m.lastLogIndex}/${m.lastLogTerm}${m.transfer ? ', transfer' : ''})`;
    case 'voteResp':
      return `${m.preVote ? 'prevoteResp' : 'voteResp'}(term=${m.term}, ${m.granted ? 'granted' : 'rejected'})`;
    case 'app':
      return `app(term=${m.term}, prev=${m.prevLogIndex}/${m.prevLogTerm}, ${m.entries.length} entries, commit=${m.leaderCommit}, round=${m.round})`;
    case 'appResp':
      return m.success
        ? `appResp(term=${m.term}, ok, match=${m.matchIndex}, round=${m.round})`
        : `appResp(term=${m.term}, reject, hint=${m.rejectHint}/${m.rejectTerm}, round=${m.round})`;
    case 'snap':
      return `snap(term=${m.term}, ${m.meta.index}/${m.meta.term}, off=${m.offset}, ${m.data.length}B${m.done ? ', done' : ''})`;
    case 'snapResp':
      return `snapResp(term=${m.term}, snap=${m.snapIndex}, next=${m.nextOffset}${m.done ? `, done, match=${m.matchIndex}` : ''})`;
    case 'timeoutNow':
      return `timeoutNow(term=${m.term})`;
    case 'readIndex':
      return `readIndex(term=${m.term}, ${m.requestId})`;
    case 'readIndexResp':
      return `readIndexResp(term=${m.term}, ${m.requestId}, index=${m.index})`;
  }
}

export function describeReady(rd: Ready): string {
  const parts: string[] = [];
  if (rd.softState)
    parts.push(`${rd.softState.role}@${rd.softState.term}${rd.softState.leaderId ? ` leader=${rd.softState.leaderId}` : ''}`);
  if (rd.hardState) {
    const hs = rd.hardState;
    parts.push(`hs(term=${hs.term}, vote=${hs.votedFor ?? '-'}, commit=${hs.commit})`);
  }
  if (rd.snapshot) parts.push(`snapshot ${rd.snapshot.meta.index}/${rd.snapshot.meta.term}`);
  if (rd.entries.length > 0) {
    const f = rd.entries[0]!;
    const l = rd.entries[rd.entries.length - 1]!;
    parts.push(`persist ${f.index}/${f.term}..${l.index}/${l.term}`);
  }
  if (rd.committedEntries.length > 0) {
    const f = rd.committedEntries[0]!;
    const l = rd.committedEntries[rd.committedEntries.length - 1]!;
    parts.push(`apply ${f.index}..${l.index}`);
  }
  if (rd.messages.length > 0) parts.push(`${rd.messages.length} msgs`);
  if (rd.readStates.length > 0) parts.push(`reads ${rd.readStates.map((r) => `${r.requestId}@${r.index}`).join(',')}`);
  for (const ev of rd.events) {
    switch (ev.kind) {
      case 'vote':
        parts.push(`${ev.preVote ? 'prevote' : 'vote'} ${ev.candidate}@${ev.term}: ${ev.reason}`);
        break;
      case 'step-down':
        parts.push(`step-down@${ev.term}: ${ev.reason}`);
        break;
      case 'campaign':
        parts.push(`campaign@${ev.term}${ev.preVote ? ' pre' : ''}${ev.transfer ? ' transfer' : ''}`);
        break;
      case 'transfer':
        parts.push(`transfer to ${ev.to}@${ev.term}: ${ev.outcome}`);
        break;
      case 'ignored':
        parts.push(`ignored ${ev.type} from ${ev.from}@${ev.term}: ${ev.reason}`);
        break;
    }
  }
  if (!rd.mustSync) parts.push('nosync');
  return parts.join(', ');
}

/** A fixed-size ring of the most recent trace lines. */
export class TraceRing {
  private readonly lines: string[] = [];
  private next = 0;
  constructor(private readonly capacity: number) {}

  push(line: string): void {
    if (this.lines.length < this.capacity) this.lines.push(line);
    else {
      this.lines[this.next] = line;
      this.next = (this.next + 1) % this.capacity;
    }
  }

  toArray(): string[] {
    return [...this.lines.slice(this.next), ...this.lines.slice(0, this.next)];
  }
}

/** One write of the runtime's Ready loop, as the simulated disk sees it. */
export function describePersist(p: PersistInput, sync: boolean): string {
  const parts: string[] = [];
  if (p.hardState) parts.push(`hs(term=${p.hardState.term}, vote=${p.hardState.votedFor ?? '-'}, commit=${p.hardState.commit})`);
  if (p.snapshot) parts.push(`snapshot ${p.snapshot.meta.index}/${p.snapshot.meta.term}`);
  if (p.entries.length > 0) {
    const f = p.entries[0]!;
    const l = p.entries[p.entries.length - 1]!;
    parts.push(`entries ${f.index}/${f.term}..${l.index}/${l.term}`);
  }
  if (sync) parts.push('sync');
  return parts.join(' ');
}

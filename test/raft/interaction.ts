// Interaction tests in the style of etcd-io/raft's datadriven testdata: a script of
// steps (tick, campaign, propose, deliver, partition, transfer, conf change, compact,
// crash, restart), each followed by the Ready batches it produced, printed readably.
// The runner replays the script and compares the printed output with the expected text
// under each step; UPDATE=1 rewrites the files with what the core now produces, so a
// change in behaviour shows up as a reviewable diff of a transcript.
//
// File format: a step is one command line, a line `----`, and its expected output up to
// the next blank line. Lines starting with # between steps are comments. Every output is
// at least one line ("ok" when a step produced nothing), so a blank line ends it.
//
// Commands (node ids are 1, 2, 3...; `ids` is a comma list or `all`):
//   cluster voters=1,2,3 [learners=4] [leaseReads=false] [electionTick=10] [heartbeatTick=1] [snapshotChunk=N] [maxMsgBytes=N]
//   elect id                let every clock run out of its startup lease with all links down,
//                           then campaign with id and deliver until quiet; prints the outcome
//                           only (the election itself is in prevote.txt)
//   tick ids [n]            tick each node n times (default 1), then process their Readies
//   tick ids n stabilize    tick n times, delivering everything after each tick; prints only
//                           role changes and events
//   campaign id             start an election now (PreVote first)
//   propose id data         propose a normal entry
//   read id requestId       ask for a linearizable read index
//   transfer id target      leadership transfer
//   conf id op target       op: addVoter | removeVoter | addLearner | promoteLearner
//   compact id index        snapshot the applied state at index and compact the log
//   timeout-now from to     deliver a TimeoutNow from `from` at the recipient's term (a forged
//                           or delayed one: a real leader sends it through transfer)
//   deliver [ids]           deliver the messages in flight (to ids, default all), once
//   stabilize               deliver until no message is in flight
//   drop [ids]              drop the messages in flight (to ids, default all)
//   isolate id | cut a b | heal     cut every link of id / the link a->b / restore all
//   crash id | restart id   lose what is not persisted / start again from the disk
//   leader-gone id leader [term]  the driver of id proved leader's process dead (RaftNode.leaderGone)
//                           when id was at `term` (default: id's term now)
//   status ids              role, term, leader, commit, applied, last index, lease
//   log id                  the entries on the node's disk and its snapshot
import { readFileSync, writeFileSync } from 'node:fs';
import { RaftNode } from '../../src/raft/raft.js';
import { CLUSTER, config, type Disk } from './harness.js';
import { decodeConfChange } from '../../src/raft/conf-change.js';
import type { ConfChangeOp, ConfState, Entry, Message, NodeId, RaftConfig, RaftEvent, Ready, Snapshot } from '../../src/raft/types.js';

const dec = new TextDecoder();
const enc = new TextEncoder();

export interface Step {
  readonly line: number;
  readonly command: string;
  readonly expected: string;
  /** Comment lines that precede the step, kept when the file is rewritten. */
  readonly comments: readonly string[];
}

export function parseScript(text: string): { steps: Step[]; trailing: string[] } {
  const lines = text.split('\n');
  const steps: Step[] = [];
  let comments: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.startsWith('#') || l.trim() === '') {
      comments.push(l);
      i++;
      continue;
    }
    const line = i + 1;
    if (lines[i + 1] !== '----') throw new Error(`line ${line}: expected ---- after the command "${l}"`);
    let j = i + 2;
    const out: string[] = [];
    while (j < lines.length && lines[j] !== '') out.push(lines[j++]!);
    steps.push({ line, command: l, expected: out.join('\n'), comments: trimBlank(comments) });
    comments = [];
    i = j;
  }
  return { steps, trailing: trimBlank(comments) };
}

function trimBlank(ls: string[]): string[] {
  const out = [...ls];
  while (out.length > 0 && out[0]!.trim() === '') out.shift();
  while (out.length > 0 && out[out.length - 1]!.trim() === '') out.pop();
  return out;
}

export function formatScript(steps: readonly { step: Step; actual: string }[], trailing: readonly string[]): string {
  const blocks = steps.map(({ step, actual }) => [...step.comments, step.command, '----', actual].join('\n'));
  if (trailing.length > 0) blocks.push(trailing.join('\n'));
  return blocks.join('\n\n') + '\n';
}

/** Run a script file; returns the file's text as the core now produces it. */
export function runScriptFile(path: string): { expected: string; actual: string } {
  const expected = readFileSync(path, 'utf8');
  const { steps, trailing } = parseScript(expected);
  const env = new Interaction();
  const results = steps.map((step) => {
    let actual: string;
    try {
      actual = env.run(step.command) || 'ok';
    } catch (err) {
      actual = `error: ${(err as Error).message}`;
    }
    return { step, actual };
  });
  const actual = formatScript(results, trailing);
  if (process.env.UPDATE === '1' && actual !== expected) {
    writeFileSync(path, actual);
    return { expected: actual, actual };
  }
  return { expected, actual };
}

class Interaction {
  private readonly nodes = new Map<NodeId, RaftNode>();
  private readonly disks = new Map<NodeId, Disk>();
  private inFlight: Message[] = [];
  private readonly cut = new Set<string>();
  private bootstrap: ConfState = { voters: [], learners: [] };
  private over: Partial<RaftConfig> = {};
  private out: string[] = [];

  run(command: string): string {
    this.out = [];
    const [cmd, ...args] = command.trim().split(/\s+/);
    const kv = new Map(args.filter((a) => a.includes('=')).map((a) => a.split('=', 2) as [string, string]));
    const pos = args.filter((a) => !a.includes('='));
    switch (cmd) {
      case 'cluster':
        this.cluster(kv);
        break;
      case 'tick': {
        const ids = this.ids(pos[0]);
        const n = Number(pos[1] ?? 1);
        if (pos[2] === 'stabilize') {
          for (let i = 0; i < n; i++) {
            for (const id of ids) this.node(id).tick();
            for (const id of ids) this.processReady(id);
            this.stabilize();
          }
          this.out = this.out.filter((l) => /^\S+: (leader|follower|candidate|precandidate)/.test(l) || l.startsWith('  event '));
          break;
        }
        for (let i = 0; i < n; i++) for (const id of ids) this.node(id).tick();
        for (const id of ids) this.processReady(id);
        break;
      }
      case 'elect':
        this.elect(pos[0]!);
        break;
      case 'campaign':
        this.node(pos[0]!).campaign();
        this.processReady(pos[0]!);
        break;
      case 'propose': {
        const r = this.node(pos[0]!).propose(enc.encode(pos[1] ?? ''));
        this.print(r.ok ? `proposed at ${r.index}/${r.term}` : `refused: ${r.error} (leader ${r.leaderId ?? 'none'})`);
        this.processReady(pos[0]!);
        break;
      }
      case 'read':
        this.node(pos[0]!).readIndex(pos[1]!);
        this.processReady(pos[0]!);
        break;
      case 'transfer': {
        const r = this.node(pos[0]!).transferLeadership(pos[1]!);
        if (!r.ok) this.print(`refused: ${r.error}`);
        this.processReady(pos[0]!);
        break;
      }
      case 'conf': {
        const r = this.node(pos[0]!).proposeConfChange({ op: pos[1] as ConfChangeOp, nodeId: pos[2]!, context: '' });
        this.print(r.ok ? `proposed at ${r.index}/${r.term}` : `refused: ${r.error}`);
        this.processReady(pos[0]!);
        break;
      }
      case 'compact': {
        const id = pos[0]!;
        const index = Number(pos[1]);
        const snap = this.node(id).compact(index, enc.encode(`state of ${id} at ${index}`));
        if (snap === null) this.print('nothing to compact');
        else {
          const disk = this.disks.get(id)!;
          disk.snapshot = snap;
          disk.entries = disk.entries.filter((e) => e.index > index);
          this.print(`compacted to ${fmtSnapshot(snap)}`);
        }
        break;
      }
      case 'timeout-now': {
        const to = this.node(pos[1]!);
        const m: Message = { type: 'timeoutNow', clusterId: CLUSTER, from: pos[0]!, to: pos[1]!, term: to.basicStatus().term };
        const r = to.step(m);
        if (!r.ok) this.print(`refused: ${r.reason}`);
        this.processReady(pos[1]!);
        break;
      }
      case 'deliver':
        this.deliver(pos[0] === undefined ? null : this.ids(pos[0]));
        break;
      case 'stabilize':
        this.stabilize();
        break;
      case 'drop': {
        const to = pos[0] === undefined ? null : this.ids(pos[0]);
        const keep: Message[] = [];
        for (const m of this.inFlight) {
          if (to === null || to.includes(m.to)) this.print(`dropped ${fmtMessage(m)}`);
          else keep.push(m);
        }
        this.inFlight = keep;
        break;
      }
      case 'isolate':
        for (const other of this.disks.keys()) {
          if (other === pos[0]) continue;
          this.cut.add(`${pos[0]}->${other}`);
          this.cut.add(`${other}->${pos[0]}`);
        }
        break;
      case 'cut':
        this.cut.add(`${pos[0]}->${pos[1]}`);
        break;
      case 'heal':
        this.cut.clear();
        break;
      case 'crash':
        this.nodes.delete(pos[0]!);
        this.inFlight = this.inFlight.filter((m) => m.to !== pos[0]);
        break;
      case 'leader-gone': {
        const n = this.node(pos[0]!);
        n.leaderGone(pos[1]!, pos[2] === undefined ? n.basicStatus().term : Number(pos[2]));
        this.processReady(pos[0]!);
        break;
      }
      case 'restart':
        this.start(pos[0]!);
        this.processReady(pos[0]!);
        break;
      case 'status':
        for (const id of this.ids(pos[0])) {
          const s = this.node(id).basicStatus();
          this.print(
            `${id}: ${s.role} term=${s.term} leader=${s.leaderId ?? '-'} commit=${s.commitIndex} applied=${s.appliedIndex} last=${s.lastLogIndex}${s.leaseValid ? ' lease' : ''}`,
          );
        }
        break;
      case 'log': {
        const disk = this.disks.get(pos[0]!)!;
        this.print(`snapshot: ${disk.snapshot ? fmtSnapshot(disk.snapshot) : 'none'}`);
        this.print(`entries: ${disk.entries.map(fmtEntry).join(', ') || 'none'}`);
        break;
      }
      default:
        throw new Error(`unknown command ${cmd}`);
    }
    return this.out.join('\n');
  }

  private cluster(kv: Map<string, string>): void {
    const list = (k: string) => (kv.get(k) ?? '').split(',').filter((x) => x !== '');
    this.bootstrap = { voters: list('voters'), learners: list('learners') };
    const num = (k: string) => (kv.has(k) ? Number(kv.get(k)) : undefined);
    this.over = {
      ...(kv.has('leaseReads') ? { leaseReads: kv.get('leaseReads') === 'true' } : {}),
      ...(num('electionTick') !== undefined ? { electionTick: num('electionTick')! } : {}),
      ...(num('heartbeatTick') !== undefined ? { heartbeatTick: num('heartbeatTick')! } : {}),
      ...(num('snapshotChunk') !== undefined ? { snapshotChunkBytes: num('snapshotChunk')! } : {}),
      ...(num('maxMsgBytes') !== undefined ? { maxMsgBytes: num('maxMsgBytes')! } : {}),
    };
    for (const id of [...this.bootstrap.voters, ...this.bootstrap.learners]) this.addNode(id);
  }

  private stabilize(): void {
    for (let i = 0; i < 100 && this.inFlight.length > 0; i++) this.deliver(null);
    if (this.inFlight.length > 0) throw new Error('network did not go quiet in 100 rounds');
  }

  private elect(id: NodeId): void {
    const out = this.out;
    this.out = [];
    const cut = new Set(this.cut);
    for (const a of this.nodes.keys()) for (const b of this.nodes.keys()) if (a !== b) this.cut.add(`${a}->${b}`);
    for (let i = 0; i < 30; i++) for (const n of this.nodes.keys()) this.node(n).tick();
    for (const n of this.nodes.keys()) this.processReady(n);
    this.inFlight = [];
    this.cut.clear();
    for (const c of cut) this.cut.add(c);
    this.node(id).campaign();
    this.processReady(id);
    this.stabilize();
    this.out = out;
    const s = this.node(id).basicStatus();
    if (s.role !== 'leader') throw new Error(`${id} did not win: ${s.role} at term ${s.term}`);
    this.print(`${id} leads term ${s.term}, commit ${s.commitIndex}`);
  }

  private addNode(id: NodeId): void {
    this.disks.set(id, { hardState: { term: 0, votedFor: null, commit: 0 }, snapshot: null, entries: [] });
    this.start(id);
  }

  private start(id: NodeId): void {
    if (!this.disks.has(id)) {
      // A server added by a conf change starts empty and learns the configuration from the leader.
      this.disks.set(id, { hardState: { term: 0, votedFor: null, commit: 0 }, snapshot: null, entries: [] });
    }
    const disk = this.disks.get(id)!;
    // Each node's election timeouts come from a seed fixed by its id: a script's output
    // never changes from one run to the next.
    const cfg = config(id, Number(id.replace(/\D/g, '')) || 1, this.over);
    this.nodes.set(
      id,
      new RaftNode(cfg, {
        hardState: disk.hardState,
        snapshot: disk.snapshot,
        entries: disk.entries,
        bootstrapConf: this.bootstrap,
      }),
    );
  }

  private ids(spec: string | undefined): NodeId[] {
    if (spec === undefined || spec === 'all') return [...this.nodes.keys()].sort();
    return spec.split(',');
  }

  private node(id: NodeId): RaftNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`${id} is down`);
    return n;
  }

  private print(line: string): void {
    this.out.push(line);
  }

  private deliver(to: NodeId[] | null): void {
    const batch: Message[] = [];
    const keep: Message[] = [];
    for (const m of this.inFlight) (to === null || to.includes(m.to) ? batch : keep).push(m);
    this.inFlight = keep;
    const touched = new Set<NodeId>();
    for (const m of batch) {
      if (this.cut.has(`${m.from}->${m.to}`)) {
        this.print(`dropped ${fmtMessage(m)}`);
        continue;
      }
      const n = this.nodes.get(m.to);
      if (!n) continue;
      const r = n.step(m);
      if (!r.ok) this.print(`${m.to} refused ${fmtMessage(m)}: ${r.reason}`);
      touched.add(m.to);
    }
    for (const id of [...touched].sort()) this.processReady(id);
  }

  /** Drive the node's Readies the way the runtime does: persist, send, apply, advance. */
  private processReady(id: NodeId): void {
    const n = this.nodes.get(id);
    if (!n) return;
    while (n.hasReady()) {
      const rd = n.ready();
      this.print(`${id}: ${fmtReadyHeader(rd)}`);
      for (const l of fmtReady(rd)) this.print(`  ${l}`);
      const disk = this.disks.get(id)!;
      if (rd.snapshot) {
        disk.snapshot = rd.snapshot;
        // The core hands out a snapshot only when its log did not hold the snapshot's last entry: it replaces the log.
        disk.entries = [];
      }
      if (rd.entries.length > 0) {
        const first = rd.entries[0]!.index;
        disk.entries = disk.entries.filter((e) => e.index < first).concat(rd.entries);
      }
      if (rd.hardState) disk.hardState = rd.hardState;
      for (const m of [...rd.messages, ...rd.messagesAfterPersist]) this.inFlight.push(m);
      n.advance(rd);
    }
  }
}

function fmtReadyHeader(rd: Ready): string {
  const parts: string[] = [];
  if (rd.softState) {
    const s = rd.softState;
    parts.push(`${s.role}${s.learner ? ' (learner)' : ''} term=${s.term} leader=${s.leaderId ?? '-'}`);
  }
  if (rd.hardState) parts.push(`hard term=${rd.hardState.term} vote=${rd.hardState.votedFor ?? '-'} commit=${rd.hardState.commit}`);
  if (rd.mustSync) parts.push('sync');
  return parts.length > 0 ? parts.join(', ') : 'Ready';
}

function fmtReady(rd: Ready): string[] {
  const out: string[] = [];
  if (rd.snapshot) out.push(`snapshot ${fmtSnapshot(rd.snapshot)}`);
  if (rd.entries.length > 0) out.push(`entries ${rd.entries.map(fmtEntry).join(', ')}`);
  if (rd.committedEntries.length > 0) out.push(`apply ${rd.committedEntries.map(fmtEntry).join(', ')}`);
  for (const m of rd.messages) out.push(`send ${fmtMessage(m)}`);
  for (const r of rd.readStates) out.push(`read ${r.requestId} ${r.index < 0 ? 'failed' : `at ${r.index}`}`);
  for (const e of rd.events) out.push(`event ${fmtEvent(e)}`);
  return out;
}

function fmtEntry(e: Entry): string {
  switch (e.type) {
    case 'noop':
      return `${e.index}/${e.term} noop`;
    case 'normal':
      return `${e.index}/${e.term} ${dec.decode(e.data)}`;
    case 'conf': {
      const cc = decodeConfChange(e.data);
      return `${e.index}/${e.term} ${cc.op} ${cc.nodeId}`;
    }
  }
}

function fmtSnapshot(s: Snapshot): string {
  const learners = s.meta.conf.learners.length > 0 ? ` learners=${s.meta.conf.learners.join(',')}` : '';
  return `${s.meta.index}/${s.meta.term} voters=${s.meta.conf.voters.join(',')}${learners} (${s.data.byteLength} bytes)`;
}

function fmtMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'vote':
      return `${head}${m.preVote ? ' pre' : ''}${m.transfer ? ' transfer' : ''} last=${m.lastLogIndex}/${m.lastLogTerm}`;
    case 'voteResp':
      return `${head}${m.preVote ? ' pre' : ''} ${m.granted ? 'granted' : 'rejected'}`;
    case 'app': {
      const entries = m.entries.length > 0 ? ` [${m.entries.map(fmtEntry).join(', ')}]` : '';
      return `${head} prev=${m.prevLogIndex}/${m.prevLogTerm} commit=${m.leaderCommit} round=${m.round}${entries}`;
    }
    case 'appResp':
      return m.success
        ? `${head} ok match=${m.matchIndex} round=${m.round}`
        : `${head} reject at=${m.matchIndex} hint=${m.rejectHint}/${m.rejectTerm} round=${m.round}`;
    case 'snap':
      return `${head} ${fmtSnapshot({ meta: m.meta, data: new Uint8Array(0) }).replace(' (0 bytes)', '')} bytes=${m.offset}+${m.data.length}${m.done ? ' done' : ''} round=${m.round}`;
    case 'snapResp':
      return `${head} snap=${m.snapIndex} next=${m.nextOffset}${m.done ? ` done match=${m.matchIndex}` : ''}${m.refused ? ' refused' : ''} round=${m.round}`;
    case 'timeoutNow':
      return head;
    case 'readIndex':
      return `${head} ${m.requestId}`;
    case 'readIndexResp':
      return `${head} ${m.requestId} ${m.index < 0 ? 'failed' : `at ${m.index}`}`;
  }
}

function fmtEvent(e: RaftEvent): string {
  switch (e.kind) {
    case 'vote':
      return `${e.preVote ? 'pre-vote' : 'vote'} for ${e.candidate} term=${e.term} ${e.granted ? 'granted' : `refused (${e.reason})`}`;
    case 'step-down':
      return `step-down term=${e.term} (${e.reason})`;
    case 'campaign':
      return `campaign term=${e.term}${e.preVote ? ' pre' : ''}${e.transfer ? ' transfer' : ''}`;
    case 'leader-gone':
      return `leader ${e.leader} of term ${e.term} gone, rank ${e.rank}`;
    case 'transfer':
      return `transfer to ${e.to} term=${e.term} ${e.outcome}`;
    case 'ignored':
      return `ignored ${e.type} from ${e.from} term=${e.term} (${e.reason})`;
    case 'snapshot-refused':
      return `snapshot ${e.index} from ${e.from} refused (${e.reason})`;
  }
}

// The member records the runtime replicates: seeded from the persisted bootstrap,
// changed by conf-change contexts, carried in a runtime section framing snapshots.
import { describe, expect, it } from 'vitest';
import { decodeConfChange } from '../../src/raft/conf-change.js';
import {
  DEFAULT_PRIORITY,
  MemberRegistry,
  bootstrapEntries,
  leadershipRefusal,
  priorityOf,
  type MemberRecord,
  decodeBootstrap,
  decodeMemberContext,
  encodeBootstrap,
  encodeMemberContext,
  frameHeader,
  readFrame,
} from '../../src/server/member-registry.js';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('member registry', () => {
  it('round-trips the bootstrap record, a join record included', () => {
    const b = {
      join: false,
      members: new Map([
        ['n1', 'h1:1'],
        ['n2', 'h2:1'],
      ]),
      inLog: true,
    };
    expect(decodeBootstrap(encodeBootstrap(b))).toEqual(b);
    expect(decodeBootstrap(encodeBootstrap({ join: true, members: new Map(), inLog: true }))).toEqual({
      join: true,
      members: new Map(),
      inLog: true,
    });
    // A record from before bootstrap entries: the configuration is at index 0, not in the log.
    expect(decodeBootstrap(bytes('{"join":false,"members":[["n1","h1:1"]]}')).inLog).toBe(false);
    expect(() => decodeBootstrap(bytes('{"members":[["n1"]]}'))).toThrow(/malformed/);
  });

  it('applies conf changes in order: add with a record, legacy address-only context, remove', () => {
    const r = MemberRegistry.fromBootstrap({ join: false, members: new Map([['n1', 'h1:1']]), inLog: true });
    const rec = { peerAddress: 'h4:1', clientAddress: 'h4:2', incarnation: 'inc4' };
    r.apply({ op: 'addLearner', nodeId: 'n4', context: encodeMemberContext(rec) });
    r.apply({ op: 'addVoter', nodeId: 'n5', context: 'h5:1' });
    r.apply({ op: 'promoteLearner', nodeId: 'n4', context: '' });
    expect(r.get('n4')).toEqual(rec);
    expect(r.get('n5')).toEqual({ peerAddress: 'h5:1', clientAddress: '', incarnation: '' });
    r.apply({ op: 'removeVoter', nodeId: 'n1' });
    expect(r.get('n1')).toBeUndefined();

    const copy = new MemberRegistry();
    copy.restore(r.encode());
    expect(copy.get('n4')).toEqual(rec);
    expect(copy.get('n1')).toBeUndefined();
    expect(decodeMemberContext('')).toBeNull();
  });

  it('an update names only what changes; a bootstrap entry (no context) keeps the seeded record', () => {
    const r = MemberRegistry.fromBootstrap({ join: false, members: new Map([['n1', 'h1:1']]), inLog: true });
    r.apply({ op: 'addVoter', nodeId: 'n1', context: '' });
    expect(r.get('n1')).toEqual({ peerAddress: 'h1:1', clientAddress: '', incarnation: '' });
    r.apply({ op: 'updateMember', nodeId: 'n1', context: encodeMemberContext({ peerAddress: '', clientAddress: '', incarnation: 'i1' }) });
    expect(r.get('n1')).toEqual({ peerAddress: 'h1:1', clientAddress: '', incarnation: 'i1' });
  });

  it('priority and drain: an update changes only the field it names, both survive a snapshot, a re-add starts over', () => {
    const r = MemberRegistry.fromBootstrap({ join: false, members: new Map([['n1', 'h1:1']]), inLog: true });
    expect(priorityOf(r.get('n1'))).toBe(DEFAULT_PRIORITY);
    expect(leadershipRefusal(r.get('n1'))).toBeNull();
    const update = (rec: Partial<MemberRecord>) =>
      r.apply({
        op: 'updateMember',
        nodeId: 'n1',
        context: encodeMemberContext({ peerAddress: '', clientAddress: '', incarnation: '', ...rec }),
      });
    update({ priority: 0 });
    expect(leadershipRefusal(r.get('n1'))).toBe('priority-0');
    update({ priority: 5, drained: true });
    expect(r.get('n1')).toMatchObject({ peerAddress: 'h1:1', priority: 5, drained: true });
    expect(leadershipRefusal(r.get('n1'))).toBe('drained');
    update({ incarnation: 'i1' }); // the incarnation recorder names neither field: both stay
    expect(r.get('n1')).toMatchObject({ priority: 5, drained: true, incarnation: 'i1' });
    update({ drained: false });
    expect(r.get('n1')).toMatchObject({ priority: 5, drained: false });
    const copy = new MemberRegistry();
    copy.restore(r.encode());
    expect(copy.get('n1')).toEqual(r.get('n1'));
    r.apply({ op: 'addLearner', nodeId: 'n1', context: encodeMemberContext({ peerAddress: 'h1:1', clientAddress: '', incarnation: '' }) });
    expect(priorityOf(r.get('n1'))).toBe(DEFAULT_PRIORITY);
    // A priority out of range in a context is not taken (nothing accepts one to begin with).
    expect(decodeMemberContext('{"peerAddress":"h:1","priority":-1}')?.priority).toBeUndefined();
    expect(decodeMemberContext('{"peerAddress":"h:1","priority":1.5}')?.priority).toBeUndefined();
  });

  it('bootstrap entries: one committed addVoter per member in id order, identical whatever order --peers lists them', () => {
    const a = bootstrapEntries(['n3', 'n1', 'n2']);
    expect(a.map((e) => [e.index, e.term, e.type, decodeConfChange(e.data).nodeId])).toEqual([
      [1, 1, 'conf', 'n1'],
      [2, 1, 'conf', 'n2'],
      [3, 1, 'conf', 'n3'],
    ]);
    expect(bootstrapEntries(['n1', 'n2', 'n3'])).toEqual(a);
  });

  it('frames the state machine snapshot with the runtime section, and reads a snapshot from before the frame as all user data', () => {
    const user = bytes('user state');
    const header = frameHeader(bytes('[]'));
    const framed = Uint8Array.from([...header, ...user]);
    const { runtime, userStart } = readFrame(framed);
    expect(new TextDecoder().decode(runtime!)).toBe('[]');
    expect(framed.subarray(userStart)).toEqual(user);
    expect(readFrame(user)).toEqual({ runtime: null, userStart: 0 });
    expect(readFrame(new Uint8Array(0))).toEqual({ runtime: null, userStart: 0 });
  });

  it('reads the frame through the data interface without reading the state machine part', () => {
    const header = frameHeader(bytes('[["n1",{}]]'));
    const total = header.length + (1 << 20);
    const reads: [number, number][] = [];
    const frame = readFrame({
      byteLength: total,
      subarray: (b, e) => {
        reads.push([b, e]);
        return header.subarray(b, e);
      },
    });
    expect(frame.userStart).toBe(header.length);
    expect(reads.every(([, e]) => e <= header.length)).toBe(true);
    // A length running past the end is refused, not read.
    const broken = Uint8Array.from(header);
    new DataView(broken.buffer).setUint32(header.length - 15, 1 << 30);
    expect(() => readFrame(broken)).toThrow(/runtime section longer/);
  });
});

// The member records the runtime replicates: seeded from the persisted bootstrap,
// changed by conf-change contexts, carried in a runtime section framing snapshots.
import { describe, expect, it } from 'vitest';
import {
  MemberRegistry,
  decodeBootstrap,
  decodeMemberContext,
  encodeBootstrap,
  encodeMemberContext,
  frameSnapshot,
  unframeSnapshot,
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
    };
    expect(decodeBootstrap(encodeBootstrap(b))).toEqual(b);
    expect(decodeBootstrap(encodeBootstrap({ join: true, members: new Map() }))).toEqual({ join: true, members: new Map() });
    expect(() => decodeBootstrap(bytes('{"members":[["n1"]]}'))).toThrow(/malformed/);
  });

  it('applies conf changes in order: add with a record, legacy address-only context, remove', () => {
    const r = MemberRegistry.fromBootstrap({ join: false, members: new Map([['n1', 'h1:1']]) });
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

  it('frames the state machine snapshot with the runtime section, and reads a snapshot from before the frame as all user data', () => {
    const user = bytes('user state');
    const framed = frameSnapshot(bytes('[]'), user);
    const { runtime, user: back } = unframeSnapshot(framed);
    expect(new TextDecoder().decode(runtime!)).toBe('[]');
    expect(back).toEqual(user);
    const legacy = unframeSnapshot(user);
    expect(legacy.runtime).toBeNull();
    expect(legacy.user).toEqual(user);
    expect(unframeSnapshot(new Uint8Array(0)).user).toEqual(new Uint8Array(0));
  });
});

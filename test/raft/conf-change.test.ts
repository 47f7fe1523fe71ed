// Table-driven tests of single-server membership changes (src/raft/conf-change.ts).
import { describe, expect, it } from 'vitest';
import { applyConfChange, confChangeError, decodeConfChange, encodeConfChange } from '../../src/raft/conf-change.js';
import type { ConfChange, ConfState } from '../../src/raft/types.js';

const base: ConfState = { voters: ['a', 'b', 'c'], learners: ['l'] };

describe('conf changes', () => {
  it.each<{ cc: ConfChange; error: string | null; after: ConfState }>([
    { cc: { op: 'addVoter', nodeId: 'd' }, error: null, after: { voters: ['a', 'b', 'c', 'd'], learners: ['l'] } },
    { cc: { op: 'addVoter', nodeId: 'a' }, error: 'a is already a voter', after: base },
    // Adding a learner as a voter promotes it.
    { cc: { op: 'addVoter', nodeId: 'l' }, error: null, after: { voters: ['a', 'b', 'c', 'l'], learners: [] } },
    { cc: { op: 'addLearner', nodeId: 'm' }, error: null, after: { voters: ['a', 'b', 'c'], learners: ['l', 'm'] } },
    { cc: { op: 'addLearner', nodeId: 'a' }, error: 'a is already a member', after: base },
    { cc: { op: 'addLearner', nodeId: 'l' }, error: 'l is already a member', after: base },
    { cc: { op: 'promoteLearner', nodeId: 'l' }, error: null, after: { voters: ['a', 'b', 'c', 'l'], learners: [] } },
    { cc: { op: 'promoteLearner', nodeId: 'a' }, error: 'a is not a learner', after: base },
    { cc: { op: 'removeVoter', nodeId: 'b' }, error: null, after: { voters: ['a', 'c'], learners: ['l'] } },
    { cc: { op: 'removeVoter', nodeId: 'l' }, error: null, after: { voters: ['a', 'b', 'c'], learners: [] } },
    { cc: { op: 'removeVoter', nodeId: 'z' }, error: 'z is not a member', after: base },
    // A record update changes no vote, for voters and learners alike.
    { cc: { op: 'updateMember', nodeId: 'a' }, error: null, after: base },
    { cc: { op: 'updateMember', nodeId: 'l' }, error: null, after: base },
    { cc: { op: 'updateMember', nodeId: 'z' }, error: 'z is not a member', after: base },
  ])('$cc.op $cc.nodeId', ({ cc, error, after }) => {
    expect(confChangeError(base, cc)).toBe(error);
    expect(applyConfChange(base, cc)).toEqual(after);
  });

  it('the last voter cannot be removed (no quorum would be left to commit anything)', () => {
    const one: ConfState = { voters: ['a'], learners: [] };
    expect(confChangeError(one, { op: 'removeVoter', nodeId: 'a' })).toBe('cannot remove the last voter');
    expect(applyConfChange(one, { op: 'removeVoter', nodeId: 'a' })).toBe(one);
  });

  it.each<ConfChange>([
    { op: 'addVoter', nodeId: 'd', context: '10.0.0.4:7000' },
    { op: 'removeVoter', nodeId: 'b', context: '' },
    { op: 'promoteLearner', nodeId: 'l', context: 'x' },
    { op: 'updateMember', nodeId: 'a', context: '{"incarnation":"i"}' },
  ])('encode/decode round trip: $op $nodeId', (cc) => {
    expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc);
  });

  it('a change without context decodes with an empty one', () => {
    expect(decodeConfChange(encodeConfChange({ op: 'addLearner', nodeId: 'm' }))).toEqual({ op: 'addLearner', nodeId: 'm', context: '' });
  });

  it.each([
    { raw: 'null', error: /not an object/ },
    { raw: '{"op":"addWitness","nodeId":"d"}', error: /unknown op addWitness/ },
    { raw: '{"op":"addVoter","nodeId":""}', error: /missing nodeId/ },
    { raw: '{"op":"addVoter"}', error: /missing nodeId/ },
    { raw: '{not json', error: SyntaxError },
  ])('decoding $raw is refused', ({ raw, error }) => {
    expect(() => decodeConfChange(new TextEncoder().encode(raw))).toThrow(error);
  });
});

// The one error contract: every kind has one status, one label and one outcome rule, and
// the server's mapping (every service, the forwarder) and the client's classification
// agree on each of them. Scenario 9 of issue 7: not-leader used to be FAILED_PRECONDITION
// without a label from the Cluster service and UNAVAILABLE with one from KV.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ApiError, ERROR_CONTRACT, readStatus, toStatus, type ErrorKind } from '../../src/api/errors.js';
import { classify, toLeaderdError } from '../../src/client/errors.js';
import { statusFor } from '../../src/server/public-api.js';
import { NodeError, type NodeErrorKind } from '../../src/server/node.js';
import { CompactedError } from '../../src/statemachine/kv-store.js';

const S = grpc.status;

describe('the error contract table', () => {
  // Pinned: changing a row changes what clients see on the wire.
  const pinned: [ErrorKind, grpc.status, 'not-applied' | 'unknown' | 'reported' | 'none', boolean][] = [
    ['not-leader', S.UNAVAILABLE, 'reported', true],
    ['unavailable', S.UNAVAILABLE, 'reported', true],
    ['transferring', S.UNAVAILABLE, 'not-applied', true],
    ['conf-change-pending', S.UNAVAILABLE, 'not-applied', true],
    ['catching-up', S.UNAVAILABLE, 'not-applied', true],
    ['superseded', S.UNAVAILABLE, 'unknown', true],
    ['timeout', S.DEADLINE_EXCEEDED, 'unknown', true],
    ['invalid-argument', S.INVALID_ARGUMENT, 'not-applied', false],
    ['not-in-config', S.INVALID_ARGUMENT, 'not-applied', false],
    ['reserved-key', S.INVALID_ARGUMENT, 'not-applied', false],
    ['legacy-client-id', S.INVALID_ARGUMENT, 'not-applied', false],
    ['too-large', S.RESOURCE_EXHAUSTED, 'not-applied', false],
    ['lease-not-found', S.NOT_FOUND, 'reported', false],
    ['grant-lost', S.NOT_FOUND, 'unknown', false],
    ['session-expired', S.FAILED_PRECONDITION, 'not-applied', false],
    ['stale-sequence', S.FAILED_PRECONDITION, 'not-applied', false],
    ['not-holder', S.FAILED_PRECONDITION, 'not-applied', false],
    ['compacted', S.OUT_OF_RANGE, 'none', false],
    ['too-slow', S.RESOURCE_EXHAUSTED, 'none', false],
    ['limit-exceeded', S.RESOURCE_EXHAUSTED, 'not-applied', false],
    ['quota-exceeded', S.RESOURCE_EXHAUSTED, 'not-applied', false],
    ['overloaded', S.RESOURCE_EXHAUSTED, 'not-applied', true],
    ['cancelled', S.CANCELLED, 'unknown', false],
    ['unauthenticated', S.UNAUTHENTICATED, 'not-applied', false],
    ['permission-denied', S.PERMISSION_DENIED, 'not-applied', false],
    ['internal', S.INTERNAL, 'unknown', false],
  ];

  it('pins every kind to its status, outcome rule and transience, and has no kind left out', () => {
    expect(Object.keys(ERROR_CONTRACT).sort()).toEqual(pinned.map((p) => p[0]).sort());
    for (const [kind, code, outcome, transient] of pinned) expect(ERROR_CONTRACT[kind], kind).toEqual({ code, outcome, transient });
  });

  it.each(pinned)('%s travels as one status + label + outcome, and the client classifies it back', (kind, code, rule, transient) => {
    for (const reported of ['not-applied', 'unknown'] as const) {
      const st = toStatus(new ApiError(kind, `a ${kind} failure`, reported));
      expect(st.code).toBe(code);
      expect(st.metadata.get('leaderd-error')).toEqual([kind]);
      const expected = rule === 'none' ? [] : [rule === 'reported' ? reported : rule];
      expect(st.metadata.get('leaderd-outcome')).toEqual(expected);
      expect(readStatus(st)).toEqual({ kind, outcome: expected[0] ?? null });
      // The client: a write carrying session + seq is retried exactly when the kind is transient.
      const e = toLeaderdError({ code: st.code, details: st.details, metadata: st.metadata }, true, true);
      expect(e.retryable, `${kind} ${reported}`).toBe(transient);
      expect(e.code).toBe(code);
    }
  });
});

describe('every server path maps runtime errors the same way', () => {
  const nodeKinds: [NodeErrorKind, grpc.status, string][] = [
    ['not-leader', S.UNAVAILABLE, 'not-leader'],
    ['transferring', S.UNAVAILABLE, 'transferring'],
    ['conf-change-pending', S.UNAVAILABLE, 'conf-change-pending'],
    ['invalid', S.INVALID_ARGUMENT, 'invalid-argument'],
    ['not-in-config', S.INVALID_ARGUMENT, 'not-in-config'],
    ['unavailable', S.UNAVAILABLE, 'unavailable'],
    ['stopped', S.UNAVAILABLE, 'unavailable'],
    ['timeout', S.DEADLINE_EXCEEDED, 'timeout'],
    ['superseded', S.UNAVAILABLE, 'superseded'],
  ];
  it.each(nodeKinds)(
    'NodeError %s -> %s with leaderd-error %s from Cluster (statusFor) and from KV/Lease/Election/Lock (toStatus)',
    (k, code, label) => {
      const err = new NodeError(k, 'x', 'not-applied');
      for (const st of [statusFor(err), toStatus(err)]) {
        expect(st.code).toBe(code);
        expect(st.metadata.get('leaderd-error')).toEqual([label]);
      }
    },
  );

  it('not-leader is retried by the client on another node whatever the outcome', () => {
    for (const outcome of ['not-applied', 'unknown'] as const) {
      const st = statusFor(new NodeError('not-leader', 'not the leader', outcome));
      expect(classify(st.code, outcome, 'not-leader', true)).toEqual({ kind: 'not-leader', retryable: true, rediscover: true });
    }
  });

  it('a compacted watch start is OUT_OF_RANGE without an outcome; anything unrecognised is INTERNAL', () => {
    const c = toStatus(new CompactedError(3, 10));
    expect(c.code).toBe(S.OUT_OF_RANGE);
    expect(c.metadata.get('leaderd-outcome')).toEqual([]);
    const i = toStatus(new TypeError('boom'));
    expect(i.code).toBe(S.INTERNAL);
    expect(i.metadata.get('leaderd-error')).toEqual(['internal']);
  });

  it('the client treats a status without a label by its code: only UNAVAILABLE and DEADLINE_EXCEEDED are transient', () => {
    expect(classify(S.UNAVAILABLE, undefined, undefined, true).retryable).toBe(true);
    expect(classify(S.DEADLINE_EXCEEDED, 'unknown', undefined, true).retryable).toBe(true);
    expect(classify(S.FAILED_PRECONDITION, 'not-applied', undefined, true)).toEqual({
      kind: 'failed-precondition',
      retryable: false,
      rediscover: false,
    });
    expect(classify(S.FAILED_PRECONDITION, 'not-applied', 'session-expired', true)).toEqual({
      kind: 'session-expired',
      retryable: false,
      rediscover: false,
    });
  });
});

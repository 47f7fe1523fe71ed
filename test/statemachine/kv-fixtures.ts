// What the KvStore tests share: applying commands as committed entries, and a snapshot of
// the JSON format 1 (data dirs and backups from before the binary format).
import { expect } from 'vitest';
import type { KvStore } from '../../src/statemachine/kv-store.js';
import { encodeCommand, type Command, type Envelope } from '../../src/statemachine/commands.js';
import type { Entry } from '../../src/raft/types.js';

export const enc = (s: string) => new TextEncoder().encode(s);

/** Applies commands to stores as entries of one log, at consecutive indexes. */
export function applier() {
  let index = 0;
  return (store: KvStore, env: Envelope | Command) => {
    const e: Envelope = 'cmd' in env ? env : { cmd: env };
    const entry: Entry = { index: ++index, term: 1, type: 'normal', data: encodeCommand(e) };
    return store.apply(entry);
  };
}

/** A format-1 snapshot: key 'a' = 'hello' held by lease 2, at revision 7. */
export const FORMAT_1_SNAPSHOT = Buffer.from(
  JSON.stringify({
    v: 1,
    revision: 7,
    appliedIndex: 12,
    nextLeaseId: 3,
    kvs: [['a', Buffer.from('hello').toString('base64'), 2, 7, 3, 2]],
    leases: [[2, 5000]],
    sessions: [],
  }),
);

/** `s` holds exactly what FORMAT_1_SNAPSHOT says. */
export function expectFormat1Restored(s: KvStore): void {
  expect(s.get('a')).toMatchObject({ value: enc('hello'), createRevision: 2, modRevision: 7, version: 3, lease: 2 });
  expect(s.revision).toBe(7);
  expect(s.leaseInfo(2)).toEqual({ ttlMs: 5000, keys: ['a'] });
  expect(s.size).toBe(1);
}

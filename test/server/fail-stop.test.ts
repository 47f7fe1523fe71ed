// A fail-stop says what failed: storage, a core invariant, or the user's state machine.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LeaderdNode } from '../../src/server/node.js';
import { describeFailStop, StateMachineError } from '../../src/server/fail-stop.js';
import { RaftInvariantError } from '../../src/raft/invariant.js';
import { freePort, waitFor } from '../e2e/cluster.js';
import { singleNodeOptions } from './single-node.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('describeFailStop', () => {
  it.each([
    {
      err: new RaftInvariantError('commit-beyond-last', { index: 9, lastIndex: 7 }),
      message: 'raft invariant violated (commit-beyond-last): node stops (fail-stop)',
      fields: { cause: 'raft-invariant', invariant: 'commit-beyond-last', state: { index: 9, lastIndex: 7 } },
    },
    {
      err: new StateMachineError('apply', 12, new TypeError('boom')),
      message: 'state machine apply threw: node stops (fail-stop)',
      fields: { cause: 'state-machine', op: 'apply', index: 12 },
    },
    {
      err: new Error('IO error: No space left on device'),
      message: 'storage failure: node stops (fail-stop)',
      fields: { cause: 'storage' },
    },
  ])('$fields.cause', ({ err, message, fields }) => {
    expect(describeFailStop(err)).toEqual({ message, fields });
  });
});

describe('runtime fail-stop', () => {
  it('a throwing state machine apply stops the node with a message naming it, not "storage failure"', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'leaderd-failstop-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    const fatal: Error[] = [];
    const peer = `127.0.0.1:${await freePort()}`;
    const node = await LeaderdNode.start({
      ...singleNodeOptions(dir, peer),
      logger: pino({ level: 'warn' }, sink),
      stateMachine: {
        apply: () => {
          throw new RangeError('user bug');
        },
        snapshot: () => new Uint8Array(0),
        restore: () => {},
      },
      onFatal: (e) => fatal.push(e),
    });
    cleanups.unshift(() => node.stop({ transfer: false }));
    await waitFor('leader', () => (node.isLeader() ? true : undefined), 5000);
    void node.propose(new Uint8Array([1])).catch(() => {});
    await waitFor('fatal', () => fatal[0], 5000);
    expect(fatal[0]).toBeInstanceOf(StateMachineError);
    // The first entry that reaches the state machine is ours: after the bootstrap entry,
    // the leader's no-op and the record of its incarnation (runtime entries).
    const { index } = fatal[0] as StateMachineError;
    expect(fatal[0]).toMatchObject({ op: 'apply' });
    expect(index).toBeGreaterThanOrEqual(3);
    const line = lines.find((l) => l.level === 60);
    expect(line).toMatchObject({ msg: 'state machine apply threw: node stops (fail-stop)', cause: 'state-machine', op: 'apply', index });
    expect(String(line!.err)).toContain('user bug');
  });
});

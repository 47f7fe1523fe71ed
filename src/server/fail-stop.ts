// Why a node stopped. A fail-stop is the right answer to three different failures, and
// the operator needs to know which one it was before restarting the node:
//  - storage: a write or sync failed; the disk may not hold what the core was told it
//    holds, so carrying on could acknowledge a write that a restart loses;
//  - raft-invariant: the consensus core found its own state impossible (see
//    src/raft/invariant.ts); a bug, or a data dir that is not what this node wrote;
//  - state-machine: the application's apply/restore/snapshot threw. Every replica applies
//    the same entries, so the same entry will most likely stop the others too.
import { RaftInvariantError } from '../raft/invariant.js';

export type FailStopCause = 'storage' | 'raft-invariant' | 'state-machine';

export type StateMachineOp = 'apply' | 'restore' | 'snapshot';

/** The user state machine threw; `index` is the entry being applied, or the snapshot's index. */
export class StateMachineError extends Error {
  override readonly name = 'StateMachineError';

  constructor(
    readonly op: StateMachineOp,
    readonly index: number,
    cause: unknown,
  ) {
    super(`state machine ${op} at index ${index} threw: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Run a call into the user's state machine, tagging what it throws. */
export function callStateMachine<T>(op: StateMachineOp, index: number, call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw new StateMachineError(op, index, err);
  }
}

export function failStopCause(err: Error): FailStopCause {
  if (err instanceof RaftInvariantError) return 'raft-invariant';
  if (err instanceof StateMachineError) return 'state-machine';
  // Everything else the Ready loop awaits is a storage write (persist, compact, peer records).
  return 'storage';
}

/** One log line's worth: what failed, and the fields that say where. */
export function describeFailStop(err: Error): { message: string; fields: Record<string, unknown> } {
  const cause = failStopCause(err);
  switch (cause) {
    case 'raft-invariant': {
      const e = err as RaftInvariantError;
      return {
        message: `raft invariant violated (${e.invariant}): node stops (fail-stop)`,
        fields: { cause, invariant: e.invariant, state: e.state },
      };
    }
    case 'state-machine': {
      const e = err as StateMachineError;
      return { message: `state machine ${e.op} threw: node stops (fail-stop)`, fields: { cause, op: e.op, index: e.index } };
    }
    case 'storage':
      return { message: 'storage failure: node stops (fail-stop)', fields: { cause } };
  }
}

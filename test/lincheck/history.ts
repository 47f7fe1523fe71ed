// The shape of a recorded client history, shared by the recorder (which writes it), the
// checker (which judges it) and the cluster tests (which produce it while killing leaders).

export type OpKind = 'put' | 'get' | 'cas';

export interface OpInput {
  /** put: the value written. cas: the value written if the swap succeeds. */
  readonly value?: string;
  /** cas only: the value the register must hold for the swap to succeed; null = must be absent. */
  readonly expected?: string | null;
}

export interface OpOutput {
  /** get: whether the key was present. */
  readonly found?: boolean;
  /** get: the value read (when found). */
  readonly value?: string;
  /** cas: whether the swap took effect. */
  readonly succeeded?: boolean;
  /**
   * cas: the register's value the server compared against (null = absent). Checked only when
   * the swap failed: it pins what the register held at the linearization point.
   */
  readonly current?: string | null;
}

export type OpStatus = 'ok' | 'fail' | 'unknown';

export interface Operation {
  readonly id: number;
  /** A client issues one operation at a time. */
  readonly client: number;
  readonly key: string;
  readonly kind: OpKind;
  /** Invocation time (monotonic ms, performance.now()). */
  readonly call: number;
  /** Completion time; null = never returned / outcome unknown. */
  readonly ret: number | null;
  readonly input: OpInput;
  /** Present when status is 'ok': put {}, get { found, value? }, cas { succeeded, current? }. */
  readonly output?: OpOutput;
  /**
   * 'ok' = completed with a result; 'fail' = definitely not applied (the server said
   * leaderd-outcome=not-applied); 'unknown' = may or may not have taken effect, at any time
   * after its call.
   */
  readonly status: OpStatus;
}

export type Verdict = 'linearizable' | 'not-linearizable' | 'unknown';

export interface KeyResult {
  readonly key: string;
  readonly verdict: Verdict;
  /** Operations of this key that were checked (fail ops and unknown gets removed). */
  readonly operations: number;
  /** Search steps spent on this key. */
  readonly steps: number;
  /**
   * not-linearizable: the longest linearizable prefix found and the operations that could not
   * be placed after it. unknown: why the search gave up.
   */
  readonly explanation?: string;
}

export interface CheckResult {
  /** True only if every key is linearizable. */
  readonly ok: boolean;
  /** not-linearizable if any key is; otherwise unknown if any key's budget ran out. */
  readonly verdict: Verdict;
  readonly keys: readonly KeyResult[];
  /** Operations checked (after removing fail ops and unknown gets). */
  readonly operations: number;
}

export interface CheckOptions {
  /** Search steps per key before giving up with verdict 'unknown'. Default 5 000 000. */
  readonly maxSteps?: number;
}

export { checkLinearizable, formatOperation } from './checker.js';
export { HistoryRecorder } from './recorder.js';

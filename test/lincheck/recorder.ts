// Records a client history as it happens, for checkLinearizable. The cluster tests call
// invoke() just before sending a request and complete()/fail()/unknown() when they learn the
// outcome; anything still in flight when history() is taken counts as outcome unknown.
import type { OpInput, OpKind, OpOutput, Operation, OpStatus } from './history.js';

interface Draft {
  id: number;
  client: number;
  key: string;
  kind: OpKind;
  call: number;
  ret: number | null;
  input: OpInput;
  output?: OpOutput;
  status: OpStatus | 'pending';
}

export class HistoryRecorder {
  private readonly ops: Draft[] = [];
  /** Client -> id of its operation in flight; a client issues one operation at a time. */
  private readonly inFlight = new Map<number, number>();

  /** `now` is injectable so simulated histories can use virtual time. */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Records an invocation and returns its operation id. */
  invoke(client: number, key: string, kind: OpKind, input: OpInput = {}): number {
    const busy = this.inFlight.get(client);
    if (busy !== undefined) {
      throw new Error(`client ${client} invoked a new operation while #${busy} is still in flight`);
    }
    const id = this.ops.length;
    this.ops.push({ id, client, key, kind, call: this.now(), ret: null, input: { ...input }, status: 'pending' });
    this.inFlight.set(client, id);
    return id;
  }

  /** The operation returned with this result (put: {}; get: {found, value?}; cas: {succeeded, current?}). */
  complete(id: number, output: OpOutput = {}): void {
    const op = this.settle(id);
    op.ret = this.now();
    op.output = { ...output };
    op.status = 'ok';
  }

  /** The server said the operation was definitely not applied. */
  fail(id: number): void {
    const op = this.settle(id);
    op.ret = this.now();
    op.status = 'fail';
  }

  /** The outcome is unknown (timeout, connection or leadership lost mid-flight). */
  unknown(id: number): void {
    const op = this.settle(id);
    op.status = 'unknown';
  }

  /** A snapshot of the history; operations still in flight appear as 'unknown'. */
  history(): Operation[] {
    return this.ops.map((d): Operation => {
      const status = d.status === 'pending' ? 'unknown' : d.status;
      const base = { id: d.id, client: d.client, key: d.key, kind: d.kind, call: d.call, ret: d.ret, input: d.input, status };
      return d.output === undefined ? base : { ...base, output: d.output };
    });
  }

  private settle(id: number): Draft {
    const op = this.ops[id];
    if (op === undefined) throw new Error(`no operation #${id}`);
    if (op.status !== 'pending') throw new Error(`operation #${id} already settled as ${op.status}`);
    this.inFlight.delete(op.client);
    return op;
  }
}

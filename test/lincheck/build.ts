// Terse construction of hand-written histories for the checker's tests.
import type { Operation, OpStatus } from './history.js';

export interface OpOpts {
  readonly key?: string;
  readonly status?: OpStatus;
}

export class HistoryBuilder {
  readonly ops: Operation[] = [];

  put(client: number, call: number, ret: number | null, value: string, o: OpOpts = {}): this {
    return this.add({ client, call, ret, kind: 'put', input: { value }, output: {} }, o);
  }

  /** `read` null = found nothing. */
  get(client: number, call: number, ret: number | null, read: string | null, o: OpOpts = {}): this {
    const output = read === null ? { found: false } : { found: true, value: read };
    return this.add({ client, call, ret, kind: 'get', input: {}, output }, o);
  }

  cas(
    client: number,
    call: number,
    ret: number | null,
    expected: string | null,
    value: string,
    succeeded: boolean,
    o: OpOpts & { current?: string | null } = {},
  ): this {
    const output = o.current === undefined ? { succeeded } : { succeeded, current: o.current };
    return this.add({ client, call, ret, kind: 'cas', input: { expected, value }, output }, o);
  }

  private add(p: Omit<Operation, 'id' | 'key' | 'status'>, o: OpOpts): this {
    const status = o.status ?? 'ok';
    const op: Operation = { ...p, id: this.ops.length + 1, key: o.key ?? 'k', status, ret: status === 'unknown' ? null : p.ret };
    this.ops.push(status === 'ok' ? op : { ...op, output: undefined });
    return this;
  }
}

export const history = (): HistoryBuilder => new HistoryBuilder();

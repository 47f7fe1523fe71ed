// The key-value commands: get, put, del, watch --key, cas, txn. Values are text (UTF-8)
// on the command line and in the output unless --base64 says otherwise.
import { readFileSync } from 'node:fs';
import type { KeyValue, TxnCompare, TxnOp, TxnRequestSpec } from '../client/leaderd-client.js';
import { CliError, EXIT_RUNTIME, UsageError } from './usage.js';
import { makeClient, out, table, withClient, explain, parseTimeout, type ClientFlags, untilInterrupted } from './client-context.js';

export interface ValueFlags extends ClientFlags {
  base64?: boolean;
}

/** A value given on the command line; `-` reads it from stdin. */
export function valueArg(raw: string, flags: ValueFlags): Buffer {
  const text = raw === '-' ? readFileSync(0) : Buffer.from(raw, 'utf8');
  if (!flags.base64) return text;
  const s = text.toString('utf8').trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new UsageError(`--base64: the value is not base64: '${s.slice(0, 40)}'`);
  return Buffer.from(s, 'base64');
}

export function showValue(v: Buffer, flags: ValueFlags): string {
  return flags.base64 ? v.toString('base64') : v.toString('utf8');
}

/** A value in a table cell: control characters escaped (\\n, \\u0000), so that a row stays one line. */
export function cellValue(v: Buffer, flags: ValueFlags): string {
  let s = '';
  for (const ch of showValue(v, flags)) {
    const code = ch.charCodeAt(0);
    s += code < 0x20 || code === 0x7f ? JSON.stringify(ch).slice(1, -1) : ch;
  }
  return s;
}

export function kvJson(kv: KeyValue, flags: ValueFlags): Record<string, unknown> {
  return {
    key: kv.key,
    value: showValue(kv.value, flags),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

export function parseWhole(raw: string | undefined, what: string, min = 0): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${what} must be a whole number${min > 0 ? ` >= ${min}` : ''}, got '${raw}'`);
  return n;
}

export async function runGet(
  key: string,
  flags: ValueFlags & { prefix?: boolean; limit?: string; serializable?: boolean; keysOnly?: boolean },
): Promise<void> {
  const limit = parseWhole(flags.limit, '--limit', 1);
  await withClient(flags, async (c) => {
    const serializable = flags.serializable ?? false;
    if (!flags.prefix) {
      const r = await c.get(key, { serializable });
      if (flags.json) out(JSON.stringify({ revision: r.revision, kv: r.kv ? kvJson(r.kv, flags) : null }));
      else if (r.kv) out(showValue(r.kv.value, flags));
      if (!r.kv) throw new CliError([`${key}: no such key`], EXIT_RUNTIME);
      return;
    }
    const r = await c.range(key, { serializable, ...(limit !== undefined ? { limit } : {}) });
    if (flags.json) out(JSON.stringify({ revision: r.revision, more: r.more, kvs: r.kvs.map((kv) => kvJson(kv, flags)) }));
    else if (flags.keysOnly) for (const kv of r.kvs) out(kv.key);
    else if (r.kvs.length > 0)
      out(
        table([
          ['KEY', 'VALUE', 'MOD-REV', 'VERSION', 'LEASE'],
          ...r.kvs.map((kv) => [
            kv.key,
            cellValue(kv.value, flags),
            String(kv.modRevision),
            String(kv.version),
            kv.lease ? String(kv.lease) : '-',
          ]),
        ]),
      );
    if (r.more && !flags.json) process.stderr.write(`leaderd: more keys under '${key}' than --limit ${limit}\n`);
  });
}

export async function runPut(key: string, value: string, flags: ValueFlags & { lease?: string }): Promise<void> {
  const v = valueArg(value, flags);
  const lease = parseWhole(flags.lease, '--lease', 1);
  await withClient(flags, async (c) => {
    const r = await c.put(key, v, lease !== undefined ? { lease } : {});
    out(flags.json ? JSON.stringify(r) : `OK (revision ${r.revision})`);
  });
}

export async function runDel(key: string, flags: ClientFlags & { prefix?: boolean }): Promise<void> {
  await withClient(flags, async (c) => {
    const r = await c.delete(key, { prefix: flags.prefix ?? false });
    out(flags.json ? JSON.stringify(r) : `deleted ${r.deleted} (revision ${r.revision})`);
  });
}

export async function runCas(
  key: string,
  value: string,
  flags: ValueFlags & { expect?: string; expectAbsent?: boolean; expectModRevision?: string; lease?: string },
): Promise<void> {
  const given = [flags.expect !== undefined, flags.expectAbsent === true, flags.expectModRevision !== undefined].filter(Boolean).length;
  if (given !== 1) throw new UsageError('cas needs exactly one of --expect VALUE, --expect-absent, --expect-mod-revision N');
  const v = valueArg(value, flags);
  const lease = parseWhole(flags.lease, '--lease', 1);
  const expectation =
    flags.expect !== undefined
      ? { value: valueArg(flags.expect, flags) }
      : flags.expectAbsent
        ? ({ absent: true } as const)
        : { modRevision: parseWhole(flags.expectModRevision, '--expect-mod-revision')! };
  await withClient(flags, async (c) => {
    const r = await c.compareAndSwap(key, v, expectation, lease !== undefined ? { lease } : {});
    const current = r.current ? { value: showValue(r.current.value, flags), modRevision: r.current.modRevision } : null;
    if (flags.json) out(JSON.stringify({ succeeded: r.succeeded, revision: r.revision, current }));
    else if (r.succeeded) out(`OK (revision ${r.revision})`);
    if (!r.succeeded)
      throw new CliError(
        [current ? `cas failed: ${key} is '${current.value}' (mod revision ${current.modRevision})` : `cas failed: ${key} does not exist`],
        EXIT_RUNTIME,
      );
  });
}

const TARGETS = ['value', 'version', 'createRevision', 'modRevision', 'lease'] as const;
const OPS = ['=', '!=', '>', '<'] as const;

function parseOp(o: unknown, where: string): TxnOp {
  const op = o as { type?: unknown; key?: unknown; value?: unknown; lease?: unknown; prefix?: unknown };
  if (typeof op?.key !== 'string') throw new UsageError(`txn: ${where}.key must be a string`);
  switch (op.type) {
    case 'put':
      if (typeof op.value !== 'string') throw new UsageError(`txn: ${where}.value must be a string`);
      return { type: 'put', key: op.key, value: op.value, ...(typeof op.lease === 'number' ? { lease: op.lease } : {}) };
    case 'delete':
      return { type: 'delete', key: op.key, ...(op.prefix === true ? { prefix: true } : {}) };
    case 'get':
      return { type: 'get', key: op.key };
    default:
      throw new UsageError(`txn: ${where}.type must be put, delete or get, got ${JSON.stringify(op.type)}`);
  }
}

/**
 * A transaction as JSON: {"compare":[{"key","target","op","operand"}...],
 * "success":[{"type":"put"|"delete"|"get","key",...}...],"failure":[...]}.
 */
export function parseTxn(text: string): TxnRequestSpec {
  let j: { compare?: unknown; success?: unknown; failure?: unknown };
  try {
    j = JSON.parse(text) as typeof j;
  } catch (err) {
    throw new UsageError(`txn: not JSON: ${(err as Error).message}`);
  }
  const list = (v: unknown, name: string): unknown[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new UsageError(`txn: ${name} must be an array`);
    return v;
  };
  const compare = list(j.compare, 'compare').map((c, i): TxnCompare => {
    const x = c as { key?: unknown; target?: unknown; op?: unknown; operand?: unknown };
    const where = `compare[${i}]`;
    if (typeof x?.key !== 'string') throw new UsageError(`txn: ${where}.key must be a string`);
    const target = (x.target ?? 'value') as (typeof TARGETS)[number];
    if (!TARGETS.includes(target)) throw new UsageError(`txn: ${where}.target must be one of ${TARGETS.join(', ')}`);
    const op = (x.op ?? '=') as (typeof OPS)[number];
    if (!OPS.includes(op)) throw new UsageError(`txn: ${where}.op must be one of ${OPS.join(' ')}`);
    if (target === 'value' ? typeof x.operand !== 'string' : typeof x.operand !== 'number')
      throw new UsageError(`txn: ${where}.operand must be ${target === 'value' ? 'a string' : 'a number'}`);
    return { key: x.key, target, op, operand: x.operand as string | number };
  });
  return {
    compare,
    success: list(j.success, 'success').map((o, i) => parseOp(o, `success[${i}]`)),
    failure: list(j.failure, 'failure').map((o, i) => parseOp(o, `failure[${i}]`)),
  };
}

export async function runTxn(file: string | undefined, flags: ValueFlags): Promise<void> {
  const spec = parseTxn(readFileSync(file === undefined || file === '-' ? 0 : file, 'utf8'));
  await withClient(flags, async (c) => {
    const r = await c.txn(spec);
    const responses = r.responses.map((x) => {
      switch (x.type) {
        case 'put':
          return { type: 'put', revision: x.revision };
        case 'delete':
          return { type: 'delete', revision: x.revision, deleted: x.deleted };
        case 'get':
          return { type: 'get', revision: x.revision, kv: x.kv ? kvJson(x.kv, flags) : null };
      }
    });
    if (flags.json) out(JSON.stringify({ succeeded: r.succeeded, revision: r.revision, responses }));
    else {
      out(r.succeeded ? 'SUCCESS' : 'FAILURE');
      for (const x of r.responses) {
        if (x.type === 'put') out(`put (revision ${x.revision})`);
        else if (x.type === 'delete') out(`deleted ${x.deleted} (revision ${x.revision})`);
        else out(x.kv ? `${x.kv.key} = ${cellValue(x.kv.value, flags)}` : 'get: no such key');
      }
    }
    // Like cas: a false comparison is exit 1, so a script can branch on it.
    if (!r.succeeded) throw new CliError(['txn: a comparison was false: ran the failure branch'], EXIT_RUNTIME);
  });
}

/** Stream changes to a key (or every key under a prefix) until Ctrl-C. */
export async function runWatchKey(
  key: string,
  flags: ValueFlags & { prefix?: boolean; startRevision?: string },
  signal?: AbortSignal,
): Promise<void> {
  const startRevision = parseWhole(flags.startRevision, '--start-revision', 1);
  const c = makeClient(flags);
  const ac = untilInterrupted(signal);
  try {
    const opts = { prefix: flags.prefix ?? false, signal: ac.signal, ...(startRevision !== undefined ? { startRevision } : {}) };
    for await (const batch of c.watch(key, opts)) {
      for (const e of batch.events) {
        if (flags.json) out(JSON.stringify({ type: e.type, revision: batch.revision, ...kvJson(e.kv, flags) }));
        else if (e.type === 'put') out(`${batch.revision} PUT ${e.kv.key} ${cellValue(e.kv.value, flags)}`);
        else out(`${batch.revision} DELETE ${e.kv.key}`);
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw await explain(err, c, parseTimeout(flags));
  } finally {
    ac.dispose();
    c.close();
  }
}

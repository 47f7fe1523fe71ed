// Values are bytes on the wire; most users store text or JSON. These read a KeyValue
// (or nothing) as either, the way etcd3's `.string()` and `.json()` do.
import type { KeyValue } from './types.js';

/** The value as UTF-8 text, or null when there is no key. */
export function textOf(kv: KeyValue | null | undefined): string | null {
  return kv ? kv.value.toString('utf8') : null;
}

/** The value parsed as JSON, or null when there is no key; a value that is not JSON throws a SyntaxError naming the key. */
export function jsonOf<T = unknown>(kv: KeyValue | null | undefined): T | null {
  if (!kv) return null;
  try {
    return JSON.parse(kv.value.toString('utf8')) as T;
  } catch (err) {
    throw new SyntaxError(`value of ${kv.key} is not JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** A value for put(): JSON text of `value` (undefined is refused: it has no JSON form). */
export function jsonValue(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError('putJson: the value has no JSON form (undefined, a function or a symbol)');
  return text;
}

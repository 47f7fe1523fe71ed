// The protected resource's side of fencing (Kleppmann, "How to do distributed locking";
// Chubby's sequencers): every grant of an election or lock carries a token that is
// strictly larger than any earlier grant's, so a resource that remembers the highest
// token it accepted can refuse a holder whose grant was superseded — even one that still
// believes it holds it (a paused process, a delayed packet).

/** Normalise a token; tokens are non-negative integers (leaderd's are creation revisions). */
export function toToken(token: number | bigint): bigint {
  if (typeof token === 'bigint') {
    if (token < 0n) throw new RangeError(`fencing token must be >= 0, got ${token}`);
    return token;
  }
  if (!Number.isSafeInteger(token) || token < 0) throw new RangeError(`fencing token must be a non-negative safe integer, got ${token}`);
  return BigInt(token);
}

export type FencingCheck = { readonly ok: true } | { readonly ok: false; readonly highest: bigint };

/**
 * Remembers, per resource, the highest token accepted, and accepts a token only if it is
 * at least that high. Equal is accepted: the same holder's repeated writes carry the same
 * token. Independent per resource name.
 *
 * In memory only: a resource server that restarts must restore the highest tokens from
 * its own durable state (pass them to the constructor, persist entries()), otherwise it
 * would accept one stale write per resource after the restart. The map grows with the
 * number of distinct resource names; use a bounded set of names.
 */
export class FencingVerifier {
  private readonly highestByResource = new Map<string, bigint>();

  constructor(initial: Iterable<readonly [string, number | bigint]> = []) {
    for (const [r, t] of initial) this.highestByResource.set(r, toToken(t));
  }

  /** Accept (and record) `token` for `resource` if it is >= the highest seen; refuse a stale one. */
  check(resource: string, token: number | bigint): FencingCheck {
    const t = toToken(token);
    const highest = this.highestByResource.get(resource);
    if (highest !== undefined && t < highest) return { ok: false, highest };
    this.highestByResource.set(resource, t);
    return { ok: true };
  }

  /** The highest token accepted for `resource`, if any. */
  highest(resource: string): bigint | undefined {
    return this.highestByResource.get(resource);
  }

  /** Every resource and its highest token, for persisting. */
  entries(): [string, bigint][] {
    return [...this.highestByResource.entries()];
  }
}

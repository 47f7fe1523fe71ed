// lease grant|revoke|keep-alive|ttl, and the inspection of an election or a lock: who
// holds it and who waits, in the order they will be granted.
import { LeaderdError } from '../client/leaderd-client.js';
import { sleep } from '../client/backoff.js';
import { CliError, EXIT_RUNTIME, UsageError } from './usage.js';
import { explain, makeClient, out, parseTimeout, table, withClient, type ClientFlags, untilInterrupted } from './client-context.js';
import { cellValue, kvJson, parseWhole, type ValueFlags } from './kv-commands.js';

function leaseId(raw: string): number {
  // Lease ids are printed in decimal; etcd users may paste hex, so accept 0x... too.
  const n = /^0x[0-9a-f]+$/i.test(raw) ? Number.parseInt(raw.slice(2), 16) : Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`lease id must be a positive whole number, got '${raw}'`);
  return n;
}

export async function runLeaseGrant(ttl: string, flags: ClientFlags): Promise<void> {
  const ttlMs = parseWhole(ttl, 'TTL_MS', 1)!;
  await withClient(flags, async (c) => {
    const r = await c.grantLease(ttlMs);
    out(flags.json ? JSON.stringify(r) : `lease ${r.id} granted with TTL ${r.ttlMs} ms`);
  });
}

export async function runLeaseRevoke(id: string, flags: ClientFlags): Promise<void> {
  const lease = leaseId(id);
  await withClient(flags, async (c) => {
    const r = await c.revokeLease(lease);
    out(flags.json ? JSON.stringify({ id: lease, ...r }) : `lease ${lease} revoked (revision ${r.revision})`);
  });
}

export async function runLeaseTtl(id: string, flags: ClientFlags & { keys?: boolean }): Promise<void> {
  const lease = leaseId(id);
  await withClient(flags, async (c) => {
    const r = await c.timeToLive(lease, { keys: flags.keys ?? false });
    if (flags.json) out(JSON.stringify(r));
    else if (r.ttlMs >= 0)
      out(`lease ${lease}: ${r.ttlMs} ms left of ${r.grantedTtlMs} ms` + (flags.keys ? `; keys: ${r.keys.join(', ') || '(none)'}` : ''));
    if (r.ttlMs < 0) throw new CliError([`lease ${lease} does not exist (expired or revoked)`], EXIT_RUNTIME);
  });
}

/** Keep a lease alive (every third of its TTL) until Ctrl-C, or once with --once. */
export async function runLeaseKeepAlive(id: string, flags: ClientFlags & { once?: boolean }, signal?: AbortSignal): Promise<void> {
  const lease = leaseId(id);
  const c = makeClient(flags);
  const ac = untilInterrupted(signal);
  try {
    while (!ac.signal.aborted) {
      let r: { id: number; ttlMs: number };
      try {
        r = await c.keepAliveOnce(lease, { signal: ac.signal });
      } catch (err) {
        if (ac.signal.aborted && err instanceof LeaderdError && err.kind === 'cancelled') return;
        throw err;
      }
      if (r.ttlMs <= 0) throw new CliError([`lease ${lease} does not exist (expired or revoked)`], EXIT_RUNTIME);
      out(flags.json ? JSON.stringify({ at: new Date().toISOString(), ...r }) : `lease ${lease} kept alive: TTL ${r.ttlMs} ms`);
      if (flags.once) return;
      await sleep(Math.max(50, r.ttlMs / 3), ac.signal);
    }
  } catch (err) {
    throw await explain(err, c, parseTimeout(flags));
  } finally {
    ac.dispose();
    c.close();
  }
}

// Where the server keeps the keys of campaigns and locks: one key per lease under
// <prefix><name>/, granted in creation order (the fencing token is the creation revision).
const GRANT_PREFIX = { election: '_leaderd/election/', lock: '_leaderd/lock/' } as const;

/** Who holds election or lock `name`, and who waits behind it. */
export async function runInspect(kind: 'election' | 'lock', name: string, flags: ValueFlags): Promise<void> {
  await withClient(flags, async (c) => {
    const r = await c.range(`${GRANT_PREFIX[kind]}${name}/`);
    const queue = [...r.kvs].sort((a, b) => a.createRevision - b.createRevision);
    if (flags.json) {
      out(
        JSON.stringify({
          name,
          revision: r.revision,
          holder: queue[0] ? { ...kvJson(queue[0], flags), token: queue[0].createRevision } : null,
          waiting: queue.slice(1).map((kv) => ({ ...kvJson(kv, flags), token: kv.createRevision })),
        }),
      );
      return;
    }
    if (queue.length === 0) {
      out(`nobody holds ${kind} ${name}`);
      return;
    }
    const rows = [['STATE', 'KEY', 'LEASE', 'TOKEN', ...(kind === 'election' ? ['VALUE'] : [])]];
    queue.forEach((kv, i) =>
      rows.push([
        i === 0 ? 'holder' : 'waiting',
        kv.key,
        String(kv.lease),
        String(kv.createRevision),
        ...(kind === 'election' ? [cellValue(kv.value, flags)] : []),
      ]),
    );
    out(table(rows));
  });
}

// The cluster commands: leader, status, watch (leadership), members, transfer, health.
import type { LeaderdError, LeaderInfo, NodeStatus } from '../client/leaderd-client.js';
import { CliError, EXIT_RUNTIME, EXIT_UNAVAILABLE } from './usage.js';
import {
  clientSecurity,
  describeFailure,
  detailsOf,
  makeClient,
  out,
  parseEndpoints,
  parseTimeout,
  table,
  withClient,
  type ClientFlags,
  untilInterrupted,
} from './client-context.js';
import { LeaderdClient } from '../client/leaderd-client.js';

export { parseEndpoints, table } from './client-context.js';
export type { ClientFlags } from './client-context.js';

function describeLeader(l: { leaderId: string; leaderAddress: string; term: number }): string {
  return l.leaderId === '' ? `no leader (term ${l.term})` : `${l.leaderId} ${l.leaderAddress} term ${l.term}`;
}

function leaderJson(l: LeaderInfo): string {
  return JSON.stringify({ leaderId: l.leaderId, leaderAddress: l.leaderAddress, term: l.term });
}

export async function runLeader(flags: ClientFlags): Promise<void> {
  await withClient(flags, async (c) => {
    const l = await c.leader();
    out(flags.json ? leaderJson(l) : describeLeader(l));
  });
}

type Probe = { address: string; status: NodeStatus; error?: undefined } | { address: string; status?: undefined; error: string };

/** Every member the cluster knows of plus every endpoint given, each asked for its own status. */
async function probeAll(flags: ClientFlags): Promise<Probe[]> {
  const timeoutMs = parseTimeout(flags);
  const c = makeClient({ ...flags, timeoutMs: String(Math.min(timeoutMs, 2000)) });
  try {
    let addresses = [...c.endpoints];
    try {
      const members = await c.members();
      const known = members.map((m) => m.clientAddress).filter((a) => a !== '');
      addresses = [...new Set([...known, ...(flags.endpoints || process.env.LEADERD_ENDPOINTS ? c.endpoints : [])])];
    } catch {
      // no endpoint answered: report each as unreachable below
    }
    return await Promise.all(
      addresses.map(async (a): Promise<Probe> => {
        try {
          return { address: a, status: await c.status(a) };
        } catch (err) {
          return { address: a, error: await describeFailure(err, a, Math.min(timeoutMs, 2000)) };
        }
      }),
    );
  } finally {
    c.close();
  }
}

export async function runStatus(flags: ClientFlags): Promise<void> {
  const results = await probeAll(flags);
  if (flags.json) {
    out(JSON.stringify(results.map((r) => (r.status ? { address: r.address, ...r.status } : { address: r.address, error: r.error }))));
  } else {
    const rows = [['ID', 'ADDRESS', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'LAST', 'LEASE', 'VERSION']];
    for (const r of results) {
      const s = r.status;
      if (s)
        rows.push([
          s.nodeId,
          r.address,
          s.role,
          String(s.term),
          s.leaderId || '-',
          String(s.commitIndex),
          String(s.appliedIndex),
          String(s.lastLogIndex),
          s.leaseValid ? 'valid' : '-',
          s.version || '-',
        ]);
      else rows.push(['?', r.address, 'unreachable', '', '', '', '', '', '', '']);
    }
    out(table(rows));
    // A store near its quota is about to refuse writes: say so before it does.
    for (const r of results) {
      const s = r.status;
      if (s && s.quotaBytes > 0 && s.storeBytes >= 0.8 * s.quotaBytes)
        out(
          `${s.nodeId} store holds ${s.storeBytes} of its ${s.quotaBytes}-byte quota (${Math.floor((100 * s.storeBytes) / s.quotaBytes)}%): ` +
            'past it, writes that grow the store fail; delete keys to free space or raise --quota-bytes',
        );
    }
    // A refused handshake isolates a member however healthy it looks above: say why.
    for (const r of results)
      for (const p of r.status?.refusedPeers ?? [])
        out(`${r.status!.nodeId} ${p.byPeer ? 'is refused by' : 'refuses'} ${p.peerId} (${p.kind}): ${p.reason}`);
  }
  const down = results.filter((r) => r.status === undefined);
  if (down.length === results.length)
    throw new CliError(['no endpoint answered', ...down.map((r) => `${r.address}: ${r.error}`)], EXIT_UNAVAILABLE);
}

/**
 * Like `etcdctl endpoint health`: every member (and endpoint given) is healthy when it
 * answers and sees a leader; the exit code is non-zero when any one is not.
 */
export async function runHealth(flags: ClientFlags): Promise<void> {
  const results = await probeAll(flags);
  const verdicts = results.map((r) => {
    if (!r.status) return { address: r.address, healthy: false, id: '?', reason: r.error };
    if (r.status.leaderId === '')
      return { address: r.address, healthy: false, id: r.status.nodeId, reason: `no leader known (term ${r.status.term})` };
    return {
      address: r.address,
      healthy: true,
      id: r.status.nodeId,
      reason: `${r.status.role}, leader ${r.status.leaderId}, term ${r.status.term}`,
    };
  });
  if (flags.json) out(JSON.stringify(verdicts));
  else
    out(
      table([
        ['ID', 'ADDRESS', 'HEALTH', 'DETAIL'],
        ...verdicts.map((v) => [v.id, v.address, v.healthy ? 'healthy' : 'UNHEALTHY', v.reason]),
      ]),
    );
  const bad = verdicts.filter((v) => !v.healthy);
  const why = bad.map((b) => `${b.address}: ${b.reason}`);
  if (bad.length === verdicts.length) throw new CliError([`no endpoint is healthy (${bad.length} checked)`, ...why], EXIT_UNAVAILABLE);
  if (bad.length > 0) throw new CliError([`${bad.length} of ${verdicts.length} endpoints unhealthy`, ...why], EXIT_RUNTIME);
}

export async function runTransfer(flags: ClientFlags & { to?: string }): Promise<void> {
  await withClient(flags, async (c) => {
    if (flags.to !== undefined) {
      // The node would accept a transfer to itself and wait out its timeout; say it at once.
      const now = await c.leader();
      if (now.leaderId === flags.to) {
        if (flags.json) out(JSON.stringify({ ...JSON.parse(leaderJson(now)), transferred: false }));
        else out(`${flags.to} already leads (term ${now.term}): nothing to transfer`);
        return;
      }
    }
    const l = await c.transferLeader(flags.to ?? '');
    out(flags.json ? leaderJson(l) : `leader is now ${describeLeader(l)}`);
  });
}

/** Stream leadership changes until interrupted (Ctrl-C) or `signal` aborts. */
export async function runWatch(flags: ClientFlags, signal?: AbortSignal): Promise<void> {
  const c = makeClient(flags);
  const attemptMs = Math.max(100, Math.min(2000, Math.floor(parseTimeout(flags) / 2)));
  const ac = untilInterrupted(signal);
  try {
    // One line per failed attempt (at most one a second once the backoff reaches its cap),
    // so a cluster that is down is said to be down instead of a silent wait.
    const onRetry = (err: LeaderdError, delayMs: number) => {
      const endpoint = err.endpoint ?? '?';
      void describeFailure(err, endpoint, attemptMs).then((why) =>
        process.stderr.write(`leaderd: watch: ${endpoint}: ${why}; retrying in ${(delayMs / 1000).toFixed(1)} s\n`),
      );
    };
    for await (const l of c.watchLeader(ac.signal, { onRetry })) {
      const at = new Date().toISOString();
      if (flags.json) out(JSON.stringify({ at, leaderId: l.leaderId, leaderAddress: l.leaderAddress, term: l.term, via: l.endpoint }));
      else out(`${at}  ${describeLeader(l)}  (via ${l.endpoint})`);
    }
  } finally {
    ac.dispose();
    c.close();
  }
}

/**
 * `leaderd probe`: the first endpoint only, over gRPC health checking, which needs no
 * token (orchestrators hold none). Ready = SERVING (the node knows a leader); with --live,
 * any answer will do. Exit 0 or 1, one line either way.
 */
export async function runProbe(flags: ClientFlags & { live?: boolean }): Promise<void> {
  const endpoint = parseEndpoints(flags.endpoints)[0]!;
  const c = new LeaderdClient({ endpoints: [endpoint], timeoutMs: parseTimeout(flags), security: clientSecurity(flags) });
  try {
    let status: string;
    try {
      status = await c.health(endpoint);
    } catch (err) {
      throw new CliError([`${endpoint} does not answer: ${detailsOf(err).slice(0, 160)}`], EXIT_UNAVAILABLE);
    }
    if (!flags.live && status !== 'SERVING') throw new CliError([`${endpoint} is not ready: ${status} (no leader known)`], EXIT_RUNTIME);
    out(flags.json ? JSON.stringify({ endpoint, status }) : `${endpoint} ${flags.live ? 'live' : 'ready'}: ${status}`);
  } finally {
    c.close();
  }
}

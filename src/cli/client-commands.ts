// The client subcommands: leader, status, watch, members, transfer.
import { ClusterClient, type LeaderInfo, type NodeStatus } from '../client/cluster-client.js';
import { parseAddress } from '../server/config.js';
import { UsageError } from './usage.js';
import { LOCAL_CLIENT_ENDPOINTS } from './local-ports.js';

export interface ClientFlags {
  endpoints?: string;
  json?: boolean;
  timeoutMs?: string;
}

export function parseEndpoints(value: string | undefined): string[] {
  if (value === undefined) return LOCAL_CLIENT_ENDPOINTS;
  const list = value
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (list.length === 0) throw new UsageError('--endpoints is empty');
  try {
    return list.map((e) => parseAddress(e, '--endpoints entry'));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function makeClient(flags: ClientFlags): ClusterClient {
  let timeoutMs = 2000;
  if (flags.timeoutMs !== undefined) {
    timeoutMs = Number(flags.timeoutMs);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1)
      throw new UsageError(`--timeout-ms must be a positive whole number, got '${flags.timeoutMs}'`);
  }
  return new ClusterClient(parseEndpoints(flags.endpoints), { timeoutMs });
}

function out(line: string): void {
  process.stdout.write(line + '\n');
}

function describeLeader(l: LeaderInfo): string {
  return l.leaderId === '' ? `no leader (term ${l.term})` : `${l.leaderId} ${l.leaderAddress} term ${l.term}`;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export async function runLeader(flags: ClientFlags): Promise<void> {
  const c = makeClient(flags);
  try {
    const l = await c.getLeader();
    out(flags.json ? JSON.stringify({ leaderId: l.leaderId, leaderAddress: l.leaderAddress, term: l.term }) : describeLeader(l));
  } finally {
    c.close();
  }
}

export async function runStatus(flags: ClientFlags): Promise<void> {
  const c = makeClient(flags);
  try {
    // Every member the cluster knows of, plus any endpoint given that is not one.
    let addresses = [...c.endpoints];
    try {
      const members = await c.listMembers();
      const known = members.map((m) => m.clientAddress).filter((a) => a !== '');
      addresses = [...new Set([...known, ...(flags.endpoints ? c.endpoints : [])])];
    } catch {
      // no endpoint answered: report each as unreachable below
    }
    type Result = { address: string; status: NodeStatus; error?: undefined } | { address: string; status?: undefined; error: string };
    const results = await Promise.all(
      addresses.map(async (a): Promise<Result> => {
        try {
          return { address: a, status: await c.getStatus(a) };
        } catch (err) {
          return { address: a, error: (err as { details?: string }).details || (err as Error).message };
        }
      }),
    );
    const reachable = results.filter((r) => r.status !== undefined);
    if (flags.json) {
      out(JSON.stringify(results.map((r) => (r.status ? { address: r.address, ...r.status } : { address: r.address, error: r.error }))));
    } else {
      const rows = [['ID', 'ADDRESS', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'LAST', 'LEASE', 'VERSION']];
      for (const r of results) {
        const s = r.status;
        if (s) {
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
        } else {
          rows.push(['?', r.address, 'unreachable', '', '', '', '', '', '', '']);
        }
      }
      out(table(rows));
    }
    if (reachable.length === 0) throw new Error('no endpoint answered');
  } finally {
    c.close();
  }
}

export async function runMembers(flags: ClientFlags): Promise<void> {
  const c = makeClient(flags);
  try {
    const members = await c.listMembers();
    if (flags.json) out(JSON.stringify(members));
    else
      out(
        table([
          ['ID', 'PEER', 'CLIENT', 'LEARNER'],
          ...members.map((m) => [m.id, m.peerAddress, m.clientAddress || '-', m.learner ? 'yes' : 'no']),
        ]),
      );
  } finally {
    c.close();
  }
}

export async function runTransfer(flags: ClientFlags & { to?: string }): Promise<void> {
  const c = makeClient(flags);
  try {
    const l = await c.transferLeader(flags.to ?? '');
    out(
      flags.json
        ? JSON.stringify({ leaderId: l.leaderId, leaderAddress: l.leaderAddress, term: l.term })
        : `leader is now ${describeLeader(l)}`,
    );
  } finally {
    c.close();
  }
}

/** Stream leadership changes until interrupted (Ctrl-C) or `signal` aborts. */
export async function runWatch(flags: ClientFlags, signal?: AbortSignal): Promise<void> {
  const c = makeClient(flags);
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  signal?.addEventListener('abort', stop);
  try {
    for await (const l of c.watchLeader(ac.signal)) {
      const at = new Date().toISOString();
      if (flags.json) out(JSON.stringify({ at, leaderId: l.leaderId, leaderAddress: l.leaderAddress, term: l.term, via: l.endpoint }));
      else out(`${at}  ${describeLeader(l)}  (via ${l.endpoint})`);
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    c.close();
  }
}

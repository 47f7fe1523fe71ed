// The failover drill: a steady write load through LeaderdClient, every node's status polled
// one request at a time, and one fault injected per trial. After each trial it waits for a
// healthy cluster, reads back every acknowledged write linearizably (RPO) and checks the
// polls for two leaders at once; it times detection, the new leader and write unavailability.
import { performance } from 'node:perf_hooks';
import { LeaderdClient } from '../client/leaderd-client.js';
import type { ClientSecurity } from '../security/client-credentials.js';
import { sleep } from '../client/backoff.js';
import {
  leadershipOverlaps,
  leadershipSpans,
  lostWrites,
  trialTimings,
  type AckedWrite,
  type FoundValue,
  type StatusObservation,
  type WriteSample,
} from './checker.js';
import { downsampleSamples, summarizeTrials, type DrillFault, type DrillResult, type DrillTrial } from './result.js';

/** What the drill acts on: client endpoints, and the process controls a fault needs. */
export interface DrillTarget {
  readonly endpoints: readonly string[];
  /** Which faults this target can inject (a cluster the drill attached to can only transfer). */
  readonly can: { readonly kill: boolean; readonly pause: boolean; readonly restart: boolean; readonly isolate: boolean };
  kill(id: string): Promise<void>;
  restart(id: string): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** Cut the node off from its peers (clients and the drill's probes still reach it). */
  isolate(id: string): Promise<void>;
  heal(id: string): Promise<void>;
}

export interface DrillOptions {
  readonly fault: DrillFault;
  readonly trials: number;
  readonly target: DrillTarget;
  readonly security?: ClientSecurity;
  /** One write started every this many ms (default 10: 100 writes/s). */
  readonly writeIntervalMs?: number;
  /** Each node's status is polled every this many ms (default 20). */
  readonly pollIntervalMs?: number;
  /** How long a trial may take to recover before it is recorded as failed (default 20000). */
  readonly trialTimeoutMs?: number;
  /** Settings reported with the result (heartbeat, election timeout ...). */
  readonly settings?: Record<string, number>;
  readonly signal?: AbortSignal;
  onTrial?(trial: DrillTrial): void;
  onPhase?(what: string): void;
}

/** Unfinished writes allowed at once: past this the load records a failed write instead of queueing. */
const MAX_IN_FLIGHT = 500;
const MAX_PLOT_SAMPLES = 20_000;
const READ_PAGE = 1000;

class DrillError extends Error {
  override readonly name = 'DrillError';
}

export async function runDrill(opts: DrillOptions): Promise<DrillResult & { interrupted?: boolean }> {
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const startedAt = new Date().toISOString();
  const writeIntervalMs = opts.writeIntervalMs ?? 10;
  const pollIntervalMs = opts.pollIntervalMs ?? 20;
  const trialTimeoutMs = opts.trialTimeoutMs ?? 20_000;
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const sec = opts.security ? { security: opts.security } : {};
  // A paused leader must cost one short attempt, not the default 2 s, and retries must not
  // back off past a few hundred ms: otherwise the drill measures the client's patience
  // rather than the cluster's failover.
  const clientRetry = { attemptTimeoutMs: 500, backoffMs: 20, maxBackoffMs: 200, attempts: 1000 };
  const writer = new LeaderdClient({ endpoints: opts.target.endpoints, timeoutMs: 10_000, retry: clientRetry, ...sec });
  const admin = new LeaderdClient({ endpoints: opts.target.endpoints, timeoutMs: 5000, retry: clientRetry, ...sec });
  const poller = new LeaderdClient({ endpoints: opts.target.endpoints, timeoutMs: 250, ...sec });
  // The read-back pages through every key the drill wrote: a page of a thousand keys on a
  // loaded machine takes longer than the writers' 500 ms attempt, which would time out every
  // try. It goes to the node the polls show leading: a follower forwards a ReadIndex and gives
  // up after one election timeout, which at load average 20 happened on every try for 20 s.
  const readerFor = (): LeaderdClient => {
    const leader = [...latest.values()].find((o) => o.status?.role === 'leader')?.node;
    const first = opts.target.endpoints.find((e) => idOf.get(e) === leader);
    const endpoints = first === undefined ? opts.target.endpoints : [first, ...opts.target.endpoints.filter((e) => e !== first)];
    return new LeaderdClient({ endpoints, timeoutMs: 10_000, retry: { attemptTimeoutMs: 5000 }, ...sec });
  };

  // ---- status polls, one loop per node, one request at a time
  const observations: StatusObservation[] = [];
  const idOf = new Map<string, string>();
  const latest = new Map<string, StatusObservation>();
  const pollLoops = opts.target.endpoints.map(async (endpoint) => {
    while (!stop.signal.aborted) {
      const sentMs = now();
      let status: StatusObservation['status'] = null;
      try {
        const s = await poller.status(endpoint);
        idOf.set(endpoint, s.nodeId);
        status = { role: s.role, term: Number(s.term), leaderId: s.leaderId, leaseValid: s.leaseValid };
      } catch {
        // no answer in time: recorded as such, it breaks the node's run of lease claims
      }
      const node = idOf.get(endpoint) ?? endpoint;
      const o: StatusObservation = { node, sentMs, receivedMs: now(), status };
      observations.push(o);
      latest.set(node, o);
      await sleep(pollIntervalMs, stop.signal);
    }
  });

  // ---- the write load: open loop, one write every writeIntervalMs
  const prefix = `_drill/${startedAt.replace(/[:.]/g, '')}-${Math.random().toString(36).slice(2, 8)}/`;
  const samples: WriteSample[] = [];
  const acked: AckedWrite[] = [];
  let inFlight = 0;
  let seq = 0;
  const loadStop = new AbortController();
  const writes = new Set<Promise<void>>();
  const load = (async () => {
    let next = now();
    while (!loadStop.signal.aborted) {
      const startMs = now();
      if (inFlight >= MAX_IN_FLIGHT) samples.push({ startMs, ackMs: null });
      else {
        const n = seq++;
        const key = `${prefix}${String(n).padStart(8, '0')}`;
        const value = String(n);
        inFlight++;
        const p = writer
          .put(key, value)
          .then(
            ({ revision }) => {
              const ackMs = now();
              samples.push({ startMs, ackMs });
              acked.push({ key, value, revision, ackedAtMs: ackMs });
            },
            () => {
              samples.push({ startMs, ackMs: null });
            },
          )
          .finally(() => {
            inFlight--;
            writes.delete(p);
          });
        writes.add(p);
      }
      next += writeIntervalMs;
      await sleep(Math.max(0, next - now()), loadStop.signal);
    }
  })();

  // ---- helpers over the polls
  const timeLeft = (deadline: number) => {
    if (stop.signal.aborted) throw new DrillError('interrupted');
    if (now() > deadline) return false;
    return true;
  };
  /** One leader with a valid lease that every node answers and follows; its id and term. */
  const healthyLeader = (): { id: string; term: number } | null => {
    const fresh = [...latest.values()].filter((o) => o.status !== null && now() - o.receivedMs < 500);
    if (fresh.length < opts.target.endpoints.length) return null;
    const leaders = fresh.filter((o) => o.status!.role === 'leader');
    if (leaders.length !== 1 || !leaders[0]!.status!.leaseValid) return null;
    const l = leaders[0]!;
    if (!fresh.every((o) => o.status!.leaderId === l.node && o.status!.term === l.status!.term)) return null;
    return { id: l.node, term: l.status!.term };
  };
  const waitFor = async <T>(what: string, f: () => T | null, timeoutMs: number): Promise<T> => {
    const deadline = now() + timeoutMs;
    while (timeLeft(deadline)) {
      const v = f();
      if (v !== null) return v;
      await sleep(pollIntervalMs, stop.signal);
    }
    throw new DrillError(`${what} within ${timeoutMs} ms`);
  };
  const newLeaderSince = (faultMs: number, oldTerm: number): string | null => {
    for (const o of latest.values()) if (o.sentMs >= faultMs && o.status?.role === 'leader' && o.status.term > oldTerm) return o.node;
    return null;
  };
  const ackStartedAfter = (faultMs: number): true | null =>
    acked.length > 0 && samples.some((s) => s.ackMs !== null && s.startMs > faultMs) ? true : null;

  // ---- read-back of every acknowledged write (linearizable range reads, paged)
  const counted = new Set<string>();
  /** The read-back, retried while the cluster is between leaders (a read needs a leader with a quorum). */
  const readBackLost = async (): Promise<number> => {
    const deadline = now() + trialTimeoutMs;
    for (;;) {
      try {
        return await readBackOnce();
      } catch (err) {
        if (!timeLeft(deadline)) throw new DrillError(`the read-back of acknowledged writes failed: ${(err as Error).message}`);
        await sleep(100, stop.signal);
      }
    }
  };
  const readBackOnce = async (): Promise<number> => {
    const readStart = now();
    const check = acked.filter((w) => w.ackedAtMs < readStart);
    const found = new Map<string, FoundValue>();
    let startAfter = '';
    const reader = readerFor();
    try {
      for (;;) {
        const page = await reader.range(prefix, { limit: READ_PAGE, ...(startAfter ? { startAfter } : {}) });
        for (const kv of page.kvs) found.set(kv.key, { value: kv.value.toString('utf8'), modRevision: kv.modRevision });
        if (!page.more || page.kvs.length === 0) break;
        startAfter = page.kvs[page.kvs.length - 1]!.key;
      }
    } finally {
      reader.close();
    }
    let fresh = 0;
    for (const w of lostWrites(check, found))
      if (!counted.has(w.key)) {
        counted.add(w.key);
        fresh++;
      }
    return fresh;
  };

  /** The node a trial's fault hit when it was not the leader (restart-follower). */
  let bystander: string | null = null;
  const inject = async (fault: DrillFault, leader: string, faultMs: number, oldTerm: number): Promise<void> => {
    const t = opts.target;
    const untilNewLeader = () => waitFor('no new leader', () => newLeaderSince(faultMs, oldTerm), trialTimeoutMs);
    const untilWrites = () => waitFor('no write acknowledged after the fault', () => ackStartedAfter(faultMs), trialTimeoutMs);
    // Inject, wait for a new leader and a write acknowledged after the fault, and undo the
    // fault whatever happened: the next trial needs every node back.
    const faultThenRecover = async (inject: () => Promise<void>, undo: () => Promise<void>) => {
      await inject();
      try {
        await untilNewLeader();
        await untilWrites();
      } finally {
        await undo();
      }
    };
    switch (fault) {
      case 'kill':
        return faultThenRecover(
          () => t.kill(leader),
          () => t.restart(leader),
        );
      case 'pause':
        return faultThenRecover(
          () => t.pause(leader),
          () => t.resume(leader),
        );
      case 'transfer':
        await admin.transferLeader('');
        await untilNewLeader();
        await untilWrites();
        return;
      case 'restart-follower': {
        const follower = [...latest.values()].find((o) => o.node !== leader && o.status !== null)?.node;
        if (follower === undefined) throw new DrillError('no follower to restart');
        bystander = follower;
        await t.kill(follower);
        try {
          await sleep(1000, stop.signal);
        } finally {
          await t.restart(follower);
        }
        await untilWrites();
        return;
      }
      case 'isolate':
        if (!t.can.isolate) throw new DrillError('isolate needs the drill to run each node in its own network namespace');
        // The old leader is still polled: it must drop its lease before the others elect.
        return faultThenRecover(
          () => t.isolate(leader),
          () => t.heal(leader),
        );
      default: {
        const never: never = fault;
        throw new DrillError(`unknown fault ${String(never)}`);
      }
    }
  };

  const trials: DrillTrial[] = [];
  let interrupted = false;
  try {
    opts.onPhase?.('waiting for a leader');
    await waitFor('the cluster had no healthy leader', healthyLeader, 30_000);
    for (let index = 0; index < opts.trials && !stop.signal.aborted; index++) {
      const trialStart = now();
      let trial: DrillTrial;
      try {
        const { id: oldLeader, term: oldTerm } = await waitFor('the cluster did not become healthy', healthyLeader, trialTimeoutMs);
        // A stretch of normal writes first, so the fault has a last acknowledged write before it.
        await sleep(300, stop.signal);
        const settled = now() - 300;
        // The first trial may reach here before the first write is acknowledged (the client
        // opens its session first): RTO needs an acknowledged write before the fault.
        await waitFor(
          'no write was acknowledged before the fault',
          () => (acked.length > 0 && acked[acked.length - 1]!.ackedAtMs >= settled ? true : null),
          trialTimeoutMs,
        );
        opts.onPhase?.(`trial ${index + 1}: ${opts.fault} (leader ${oldLeader}, term ${oldTerm})`);
        const faultMs = now();
        bystander = null;
        let error: string | undefined;
        try {
          await inject(opts.fault, oldLeader, faultMs, oldTerm);
          await waitFor('the cluster did not recover', healthyLeader, trialTimeoutMs);
        } catch (err) {
          if (stop.signal.aborted) throw err;
          error = (err as Error).message;
        }
        // A restarted follower knows no leader until it hears from one: that is its own
        // restart, not the cluster detecting a fault.
        const windowObs = observations.filter((o) => o.sentMs >= trialStart);
        const timingObs = bystander === null ? windowObs : windowObs.filter((o) => o.node !== bystander);
        const timings = trialTimings(faultMs, oldTerm, timingObs, samples);
        const overlaps = leadershipOverlaps(windowObs);
        let writesLost = 0;
        try {
          writesLost = await readBackLost();
        } catch (err) {
          if (stop.signal.aborted) throw err;
          error = error ?? (err as Error).message;
        }
        trial = {
          index,
          fault: opts.fault,
          startedAtMs: Math.round(faultMs),
          detectionMs: round(timings.detectionMs),
          newLeaderMs: round(timings.newLeaderMs),
          rtoMs: round(timings.rtoMs),
          writesLost,
          leaseOverlap: overlaps.length > 0,
          oldLeader,
          newLeader: timings.newLeader,
          ...(overlaps.length > 0 ? { overlaps: overlaps.map((o) => o.detail) } : {}),
          ...(error !== undefined ? { error } : {}),
        };
      } catch (err) {
        if (stop.signal.aborted) throw err;
        trial = {
          index,
          fault: opts.fault,
          startedAtMs: Math.round(trialStart),
          detectionMs: null,
          newLeaderMs: null,
          rtoMs: null,
          writesLost: 0,
          leaseOverlap: false,
          oldLeader: null,
          newLeader: null,
          error: (err as Error).message,
        };
      }
      trials.push(trial);
      opts.onTrial?.(trial);
    }
  } catch (err) {
    if (!stop.signal.aborted) throw err;
    interrupted = true;
  } finally {
    loadStop.abort();
    await load;
    await Promise.allSettled([...writes]);
  }
  // The final read-back, with the load stopped: every acknowledged write is in it.
  if (!interrupted && trials.length > 0) {
    opts.onPhase?.('reading back every acknowledged write');
    const last = trials[trials.length - 1]!;
    try {
      last.writesLost += await readBackLost();
    } catch (err) {
      last.error = last.error ?? (err as Error).message;
    }
    // The drill's keys are no one's data: gone from a cluster it attached to, whatever happens.
    await admin.delete(prefix, { prefix: true }).catch(() => undefined);
  }
  stop.abort();
  await Promise.allSettled(pollLoops);
  opts.signal?.removeEventListener('abort', onAbort);
  writer.close();
  admin.close();
  poller.close();

  const result: DrillResult & { interrupted?: boolean; writesAcknowledged: number } = {
    version: 1,
    fault: opts.fault,
    trials,
    startedAt,
    nodes: opts.target.endpoints.length,
    settings: { writeIntervalMs, pollIntervalMs, clientAttemptTimeoutMs: clientRetry.attemptTimeoutMs, ...opts.settings },
    samples: downsampleSamples(
      samples.map((s) => ({ atMs: round(s.startMs)!, latencyMs: s.ackMs === null ? null : round(s.ackMs - s.startMs) })),
      MAX_PLOT_SAMPLES,
    ).sort((a, b) => a.atMs - b.atMs),
    leadership: leadershipSpans(observations).map((s) => ({ ...s, fromMs: round(s.fromMs)!, toMs: round(s.toMs)! })),
    summary: summarizeTrials(trials),
    writesAcknowledged: acked.length,
    ...(interrupted ? { interrupted } : {}),
  };
  return result;
}

function round(x: number | null): number | null {
  return x === null ? null : Math.round(x * 10) / 10;
}

// leaderd next to etcd 3.4 and next to the ceiling of any Node.js gRPC server, in one run
// on one machine:
//
//   npm run bench                     # full run (~15 min on 2 cores)
//   npm run bench -- --quick          # short runs and 2 failover trials per setting (< 2 min)
//   npm run bench -- --only failover  # or --only throughput
//   options: --no-etcd  --etcd-bin /usr/bin/etcd  --trials N  --seconds S  --data-root DIR  --keep
//            --cpu-prof DIR (leaderd nodes write V8 CPU profiles there; they are stopped with SIGTERM)
//
// Both clusters: 3 members on 127.0.0.1, heartbeat 50 ms / election timeout 300 ms, data
// under one root on the same disk, fsync on (leaderd syncs each Ready batch; etcd syncs
// its WAL), driven by the same grpc-js client code (bench/clients.ts) against the leader.
// The echo server (bench/echo-server.ts) answers the same calls with no work behind them.
// etcd is run where installed (Debian: apt-get install etcd-server etcd-client); without
// it leaderd runs alone and the bench says so.
//
// Failover trials: every 10 ms a write of a unique key goes to every running member (open
// loop, 2 s deadline each); the leader is SIGKILLed; "kill -> leader" is when both
// survivors name the same new leader and it says it leads (polled every 5 ms), "kill ->
// write" when the first write sent after the kill is acknowledged. The victim is
// restarted and must catch up before the next trial; then every acknowledged key is read
// back linearizably, and a missing one is a lost write. leaderd runs the trials twice: as
// configured by default (the kill -9 fast path on: survivors act on the dead leader's
// clean close and refused port) and with --fast-failover=false (the election timeout).
//
// Results: bench/results/latest.{json,md} (latest-quick.* for --quick). Exit code 1 if a
// failover trial failed or a write was lost. Every process started here is killed by PID
// and every data dir removed (unless --keep), also on error and on SIGINT/SIGTERM.
import { execSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { diskCeiling, type SyncResult } from './disk.js';
import { closedLoop, type LoadResult } from './load.js';
import { pollUntil, rssBytes, sleep, stats, type Stats } from './procs.js';
import { EchoServer, EtcdCluster, LeaderdCluster, probeEtcd, type BenchCluster, type Timing } from './systems.js';

const CONCURRENCY = [1, 16, 64, 256] as const;
const VALUE = Buffer.alloc(100, 'x');
const SAME: Timing = { heartbeatMs: 50, electionMs: 300 };
const ETCD_DEFAULTS: Timing = { heartbeatMs: 100, electionMs: 1000 };
/** Label of the leaderd cluster run with --fast-failover=false. */
const NO_FAST = '(--fast-failover=false)';
const TRIAL_LIMIT_MS = 10_000;
const STEADY_LIMIT_MS = 30_000;
/** Failover probes: a write to every member this often, each with this deadline. */
const PROBE_EVERY_MS = 10;
const WRITE_DEADLINE_MS = 2000;
const STAGES = ['queue', 'persist', 'replicate', 'commit', 'apply'] as const;

interface Options {
  readonly quick: boolean;
  readonly seconds: number;
  readonly trials: number;
  readonly restarts: number;
  readonly only: 'all' | 'throughput' | 'failover';
  readonly etcdBin: string;
  readonly noEtcd: boolean;
  readonly dataRoot: string;
  readonly keep: boolean;
  readonly cpuProf: string | undefined;
}

// ---------------------------------------------------------------------------------------
// Results

/** Mean time per write stage on the leader and its fsync/batch figures over one run (leaderd only). */
interface StageBreakdown {
  readonly meanMs: Record<(typeof STAGES)[number], number>;
  readonly proposalCommitMeanMs: number;
  readonly fsyncMeanMs: number;
  readonly fsyncsPerSecond: number;
  readonly entriesPerFsync: number;
}

interface ThroughputResult {
  readonly puts: (LoadResult & { stages?: StageBreakdown })[];
  readonly gets64: LoadResult;
  readonly leaderQuery1: LoadResult;
  readonly rssIdleMiB?: number;
  readonly rssAfterMiB?: number;
  readonly restartCaughtUpMs?: Stats;
}

interface FailoverTrial {
  readonly killed: string;
  readonly newLeader: string;
  readonly leaderMs: number;
  readonly writeMs: number;
  readonly acked: number;
  readonly lost: number;
  readonly rejoinMs: number;
}

interface FailoverResult {
  readonly label: string;
  readonly timing: Timing;
  readonly trials: FailoverTrial[];
  readonly leaderMs?: Stats;
  readonly writeMs?: Stats;
  readonly lost: number;
  readonly failure?: string;
}

interface Report {
  readonly when: string;
  readonly command: string;
  readonly machine: Record<string, string | number>;
  readonly settings: Record<string, string | number | boolean>;
  readonly etcd: string;
  readonly disk?: Record<string, SyncResult>;
  readonly echo?: ThroughputResult;
  readonly leaderd?: ThroughputResult;
  readonly etcdRun?: ThroughputResult;
  readonly failover: FailoverResult[];
}

// ---------------------------------------------------------------------------------------
// Cleanup on every exit path

const cleanups: (() => Promise<void>)[] = [];
async function cleanUp(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: Error) => console.error(`cleanup: ${err.message}`));
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping every process started by the bench`);
    void cleanUp().finally(() => process.exit(130));
  });
}

async function withCluster<T>(c: BenchCluster, keep: boolean, f: (c: BenchCluster) => Promise<T>): Promise<T> {
  const stop = () => c.stop(keep);
  cleanups.push(stop);
  try {
    await c.start();
    return await f(c);
  } finally {
    cleanups.splice(cleanups.indexOf(stop), 1);
    await stop();
  }
}

// ---------------------------------------------------------------------------------------
// Throughput, latency, memory, restart

const mib = (b: number | undefined) => (b === undefined ? undefined : b / 2 ** 20);

function maxRss(c: BenchCluster): number | undefined {
  const xs = c.members.flatMap((m) => {
    const pid = c.pid(m);
    const r = pid === undefined ? undefined : rssBytes(pid);
    return r === undefined ? [] : [r];
  });
  return xs.length === 0 ? undefined : Math.max(...xs);
}

/** Samples `name{...stage="s"...}` sums and counts from a Prometheus text page. */
function promSamples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m) continue;
    const stage = /stage="([a-z]+)"/.exec(m[2] ?? '')?.[1];
    out.set(stage ? `${m[1]}:${stage}` : m[1]!, Number(m[3]));
  }
  return out;
}

async function scrape(url: string | undefined): Promise<Map<string, number> | undefined> {
  if (!url) return undefined;
  try {
    return promSamples(await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text());
  } catch {
    return undefined;
  }
}

function breakdown(a: Map<string, number>, b: Map<string, number>, seconds: number): StageBreakdown {
  const d = (k: string) => (b.get(k) ?? 0) - (a.get(k) ?? 0);
  const mean = (name: string) => (d(`${name}_count`) > 0 ? (1000 * d(`${name}_sum`)) / d(`${name}_count`) : 0);
  const meanMs = Object.fromEntries(
    STAGES.map((s) => [
      s,
      d(`leaderd_write_stage_seconds_count:${s}`) > 0
        ? (1000 * d(`leaderd_write_stage_seconds_sum:${s}`)) / d(`leaderd_write_stage_seconds_count:${s}`)
        : 0,
    ]),
  ) as StageBreakdown['meanMs'];
  return {
    meanMs,
    proposalCommitMeanMs: mean('leaderd_proposal_commit_seconds'),
    fsyncMeanMs: mean('leaderd_fsync_seconds'),
    fsyncsPerSecond: d('leaderd_fsync_seconds_count') / seconds,
    entriesPerFsync:
      d('leaderd_persist_batch_entries_count') > 0 ? d('leaderd_persist_batch_entries_sum') / d('leaderd_persist_batch_entries_count') : 0,
  };
}

function line(what: string, r: LoadResult, extra = ''): void {
  const l = r.latency;
  console.log(
    `  ${what.padEnd(22)} ${r.perSecond.toFixed(0).padStart(7)}/s  p50 ${l ? l.median.toFixed(2) : '-'} ms  p99 ${l ? l.p99.toFixed(2) : '-'} ms  ` +
      `client ${r.clientCpuUsPerCall.toFixed(0)} µs/call  server ${Object.entries(r.serverCpuPercent)
        .map(([k, v]) => `${k} ${v.toFixed(0)}%`)
        .join(' ')}${r.errors > 0 ? `  errors ${r.errors} (${r.firstError})` : ''}${extra}`,
  );
}

async function throughput(c: BenchCluster, o: Options): Promise<ThroughputResult> {
  await sleep(o.quick ? 500 : 2000);
  const rssIdle = maxRss(c);
  const leader = (await pollUntil(() => c.whole(), STEADY_LIMIT_MS, 25))!.value.leader;
  const t = c.target(leader);
  const watch = { leader: c.pid(leader) };
  const metrics = c.metricsUrl?.(leader);
  console.log(`${c.label}: leader ${leader}, idle RSS (largest member) ${mib(rssIdle)?.toFixed(0)} MiB`);
  if (!o.quick) await closedLoop((i) => t.put(`warm/${i % 1000}`, VALUE), 16, 1);
  const puts: ThroughputResult['puts'] = [];
  for (const n of CONCURRENCY) {
    const before = await scrape(metrics);
    const r = await closedLoop((i) => t.put(`k/${n}/${i % 10_000}`, VALUE), n, o.seconds, watch);
    const after = await scrape(metrics);
    const stages = before && after ? breakdown(before, after, r.seconds) : undefined;
    puts.push({ ...r, ...(stages ? { stages } : {}) });
    line(`put c=${n}`, r);
  }
  const gets64 = await closedLoop((i) => t.get(`k/64/${i % 1000}`), 64, o.seconds, watch);
  line('linearizable get c=64', gets64);
  const leaderQuery1 = await closedLoop(() => t.leaderQuery(), 1, o.seconds, watch);
  line('leader query c=1', leaderQuery1);
  const rssAfter = maxRss(c);
  console.log(`  RSS after load (largest member) ${mib(rssAfter)?.toFixed(0)} MiB`);
  const restartCaughtUpMs = await restarts(c, o.restarts);
  return {
    puts,
    gets64,
    leaderQuery1,
    ...(rssIdle !== undefined ? { rssIdleMiB: mib(rssIdle)! } : {}),
    ...(rssAfter !== undefined ? { rssAfterMiB: mib(rssAfter)! } : {}),
    ...(restartCaughtUpMs ? { restartCaughtUpMs } : {}),
  };
}

/**
 * Restart -> caught up: kill -9 a follower, write 1,000 entries without it, restart it on
 * its data dir, and time from the spawn until it has applied everything the leader had.
 */
async function restarts(c: BenchCluster, n: number): Promise<Stats | undefined> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const before = await pollUntil(() => c.whole(), STEADY_LIMIT_MS, 25);
    if (!before) throw new Error(`${c.label}: cluster not whole before restart trial ${i + 1}`);
    const leader = before.value.leader;
    const follower = c.members.find((m) => m !== leader)!;
    await c.kill(follower);
    let t = c.target(leader);
    let seq = 0;
    const deadline = performance.now() + STEADY_LIMIT_MS;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (seq < 1000 && performance.now() < deadline) {
          const key = `restart/${i}/${seq++}`;
          // A loaded machine may change leaders meanwhile: follow it, as any client would.
          while (
            !(await t.put(key, VALUE).then(
              () => true,
              () => false,
            )) &&
            performance.now() < deadline
          ) {
            const now = await pollUntil(() => c.agreed(c.running()), STEADY_LIMIT_MS, 25);
            if (now) t = c.target(now.value.leader);
          }
        }
      }),
    );
    const leaderNow = (await pollUntil(() => c.agreed(c.running()), STEADY_LIMIT_MS, 25))?.value.leader ?? leader;
    const target = await c.appliedIndex(leaderNow);
    const t0 = performance.now();
    c.restart(follower);
    const caught = await pollUntil(async () => ((await c.appliedIndex(follower, true)) >= target ? true : undefined), STEADY_LIMIT_MS, 5);
    if (!caught) throw new Error(`${c.label}: ${follower} did not catch up within ${STEADY_LIMIT_MS} ms of its restart`);
    times.push(caught.at - t0);
    console.log(`  restart ${follower} -> caught up (index ${target}) in ${(caught.at - t0).toFixed(0)} ms`);
    await pollUntil(() => c.whole(), STEADY_LIMIT_MS, 25);
  }
  return stats(times);
}

// ---------------------------------------------------------------------------------------
// Failover

async function failover(c: BenchCluster, timing: Timing, o: Options): Promise<FailoverResult> {
  const trials: FailoverTrial[] = [];
  let failure: string | undefined;
  for (let i = 1; i <= o.trials && failure === undefined; i++) {
    // A random phase, so kills land anywhere within a heartbeat interval.
    await sleep((o.quick ? 300 : 1000) + Math.random() * timing.heartbeatMs);
    const before = await pollUntil(() => c.whole(), STEADY_LIMIT_MS, 5);
    if (!before) {
      failure = `trial ${i}: the cluster was not whole before the kill`;
      break;
    }
    const old = before.value.leader;
    const survivors = c.members.filter((m) => m !== old);
    // Open-loop probes: a new write to every member every PROBE_EVERY_MS, each with its own
    // deadline, so no probe waits behind a stuck one. A write counts for "kill -> write" only
    // if it was sent after the kill: one sent before may have committed before it.
    const acks: { key: string; sent: number; at: number }[] = [];
    const inflight = new Set<Promise<void>>();
    let seq = 0;
    const probe = () => {
      for (const m of c.running()) {
        const key = `fo/${i}/${m}/${seq++}`;
        const sent = performance.now();
        const p = c
          .target(m)
          .put(key, VALUE, WRITE_DEADLINE_MS)
          .then(
            () => void acks.push({ key, sent, at: performance.now() }),
            () => {},
          )
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
    };
    const timer = setInterval(probe, PROBE_EVERY_MS);
    await sleep(200);
    const killedAt = performance.now();
    await c.kill(old);
    const elected = await pollUntil(() => c.agreed(survivors, old), TRIAL_LIMIT_MS, 5);
    const wrote = await pollUntil(async () => (acks.some((a) => a.sent >= killedAt) ? true : undefined), TRIAL_LIMIT_MS, 2);
    await sleep(100);
    clearInterval(timer);
    await Promise.all(inflight);
    if (!elected || !wrote) {
      failure = `trial ${i}: ${!elected ? 'no new leader agreed' : 'no write acknowledged'} within ${TRIAL_LIMIT_MS} ms of killing ${old}`;
      break;
    }
    const firstAck = Math.min(...acks.filter((a) => a.sent >= killedAt).map((a) => a.at));
    const restartedAt = performance.now();
    c.restart(old);
    const rejoined = await pollUntil(() => c.whole(), STEADY_LIMIT_MS, 25);
    if (!rejoined) {
      failure = `trial ${i}: ${old} did not rejoin within ${STEADY_LIMIT_MS} ms`;
      break;
    }
    const reader = c.target(rejoined.value.leader);
    let lost = 0;
    for (let k = 0; k < acks.length; k += 64)
      await Promise.all(
        acks.slice(k, k + 64).map(async (a) => {
          if ((await reader.get(a.key)) === null) lost++;
        }),
      );
    const t: FailoverTrial = {
      killed: old,
      newLeader: elected.value.leader,
      leaderMs: elected.at - killedAt,
      writeMs: firstAck - killedAt,
      acked: acks.length,
      lost,
      rejoinMs: rejoined.at - restartedAt,
    };
    trials.push(t);
    console.log(
      `  ${c.label} trial ${String(i).padStart(2)}/${o.trials}: killed ${old} -> ${t.newLeader}; leader after ${t.leaderMs.toFixed(0)} ms, ` +
        `first write after ${t.writeMs.toFixed(0)} ms; ${t.acked} acknowledged writes, ${t.lost} lost; rejoined in ${t.rejoinMs.toFixed(0)} ms`,
    );
  }
  const leaderMs = stats(trials.map((t) => t.leaderMs));
  const writeMs = stats(trials.map((t) => t.writeMs));
  return {
    label: c.label,
    timing,
    trials,
    ...(leaderMs ? { leaderMs } : {}),
    ...(writeMs ? { writeMs } : {}),
    lost: trials.reduce((a, t) => a + t.lost, 0),
    ...(failure !== undefined ? { failure } : {}),
  };
}

// ---------------------------------------------------------------------------------------
// Report

const f0 = (x: number | undefined) => (x === undefined ? '-' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? '-' : `${(a / b).toFixed(2)}×`;

function markdown(r: Report): string {
  const L = r.leaderd;
  const E = r.etcdRun;
  const C = r.echo;
  const rows: string[][] = [];
  const row = (figure: string, l: number | undefined, e: number | undefined, c?: number, better: 'higher' | 'lower' = 'higher') =>
    rows.push([
      figure,
      f0(l),
      f0(e),
      ratio(l, e) + (better === 'lower' && l !== undefined && e !== undefined ? ' (lower is better)' : ''),
      f0(c),
      ratio(l, c),
    ]);
  if (L || E) {
    CONCURRENCY.forEach((n, i) => row(`puts/s, concurrency ${n}`, L?.puts[i]?.perSecond, E?.puts[i]?.perSecond, C?.puts[i]?.perSecond));
    CONCURRENCY.forEach((n, i) =>
      row(`put p50 ms, c=${n}`, L?.puts[i]?.latency?.median, E?.puts[i]?.latency?.median, C?.puts[i]?.latency?.median, 'lower'),
    );
    CONCURRENCY.forEach((n, i) =>
      row(`put p99 ms, c=${n}`, L?.puts[i]?.latency?.p99, E?.puts[i]?.latency?.p99, C?.puts[i]?.latency?.p99, 'lower'),
    );
    CONCURRENCY.forEach((n, i) =>
      row(
        `leader CPU % of a core, puts c=${n}`,
        L?.puts[i]?.serverCpuPercent['leader'],
        E?.puts[i]?.serverCpuPercent['leader'],
        C?.puts[i]?.serverCpuPercent['leader'],
        'lower',
      ),
    );
    CONCURRENCY.forEach((n, i) =>
      row(
        `client CPU µs per put, c=${n}`,
        L?.puts[i]?.clientCpuUsPerCall,
        E?.puts[i]?.clientCpuUsPerCall,
        C?.puts[i]?.clientCpuUsPerCall,
        'lower',
      ),
    );
    row('linearizable gets/s, c=64', L?.gets64.perSecond, E?.gets64.perSecond, C?.gets64.perSecond);
    row('linearizable get p99 ms, c=64', L?.gets64.latency?.p99, E?.gets64.latency?.p99, C?.gets64.latency?.p99, 'lower');
    row('leader queries/s, c=1', L?.leaderQuery1.perSecond, E?.leaderQuery1.perSecond, C?.leaderQuery1.perSecond);
    row('leader query p99 ms, c=1', L?.leaderQuery1.latency?.p99, E?.leaderQuery1.latency?.p99, C?.leaderQuery1.latency?.p99, 'lower');
    row('RSS idle MiB (largest member)', L?.rssIdleMiB, E?.rssIdleMiB, C?.rssIdleMiB, 'lower');
    row('RSS after load MiB (largest member)', L?.rssAfterMiB, E?.rssAfterMiB, C?.rssAfterMiB, 'lower');
    row('restart → caught up ms (median)', L?.restartCaughtUpMs?.median, E?.restartCaughtUpMs?.median, undefined, 'lower');
  }
  const fo = (label: string) => r.failover.find((x) => x.label === label);
  const foRows = (title: string, l: FailoverResult | undefined, e: FailoverResult | undefined) => {
    if (!l && !e) return;
    for (const [k, name] of [
      ['leaderMs', 'kill -9 → new leader agreed'],
      ['writeMs', 'kill -9 → first acknowledged write'],
    ] as const) {
      for (const q of ['median', 'p90', 'max'] as const) row(`${name} ms, ${title}, ${q}`, l?.[k]?.[q], e?.[k]?.[q], undefined, 'lower');
    }
    rows.push([
      `writes lost / acknowledged, ${title}`,
      l ? `${l.lost} / ${l.trials.reduce((a, t) => a + t.acked, 0)}` : '-',
      e ? `${e.lost} / ${e.trials.reduce((a, t) => a + t.acked, 0)}` : '-',
      '',
      '',
      '',
    ]);
    rows.push([
      `trials, ${title}`,
      l ? `${l.trials.length}${l.failure ? ` (FAILED: ${l.failure})` : ''}` : '-',
      e ? `${e.trials.length}${e.failure ? ` (FAILED: ${e.failure})` : ''}` : '-',
      '',
      '',
      '',
    ]);
  };
  foRows('both 50/300 ms', fo('leaderd 50/300'), fo('etcd 50/300'));
  foRows('both 50/300 ms, leaderd --fast-failover=false', fo(`leaderd 50/300 ${NO_FAST}`), fo('etcd 50/300'));
  foRows('defaults (leaderd 50/300, etcd 100/1000)', fo('leaderd 50/300'), fo('etcd 100/1000'));

  const out: string[] = [];
  out.push(`# leaderd benchmark (${r.settings['mode']})`, '');
  out.push(`${r.when} — \`${r.command}\``, '');
  out.push(
    `Machine: ${Object.entries(r.machine)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}.`,
    '',
  );
  out.push(
    `Settings: ${Object.entries(r.settings)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}. etcd: ${r.etcd}.`,
    '',
  );
  out.push('| figure | leaderd | etcd | leaderd/etcd | echo ceiling | leaderd/echo |', '|---|---:|---:|---:|---:|---:|');
  for (const x of rows) out.push(`| ${x.join(' | ')} |`);
  if (r.disk) {
    out.push('', "**The disk's limit** (data dir file system, same run): small synced writes, one at a time:", '');
    out.push('| write | per second | p50 ms | p99 ms |', '|---|---:|---:|---:|');
    const what = {
      append: 'append + fdatasync (file grows)',
      overwrite: 'overwrite + fdatasync (preallocated, as a WAL segment)',
      leveldb: 'LevelDB one-op batch, sync: true',
    } as Record<string, string>;
    for (const [k, v] of Object.entries(r.disk))
      out.push(`| ${what[k] ?? k} | ${f0(v.perSecond)} | ${f0(v.latency?.median)} | ${f0(v.latency?.p99)} |`);
  }
  if (L?.puts.some((p) => p.stages)) {
    out.push('', '**Where a leaderd write waits** (leader, mean ms per write, from its `/metrics` over each put run):', '');
    out.push(`| concurrency | ${STAGES.join(' | ')} | proposal→commit | fsync | fsyncs/s | entries per fsync | leader CPU % |`);
    out.push(`|---:|${STAGES.map(() => '---:').join('|')}|---:|---:|---:|---:|---:|`);
    for (const p of L.puts) {
      const s = p.stages;
      if (!s) continue;
      out.push(
        `| ${p.concurrency} | ${STAGES.map((k) => f0(s.meanMs[k])).join(' | ')} | ${f0(s.proposalCommitMeanMs)} | ${f0(s.fsyncMeanMs)} | ${f0(s.fsyncsPerSecond)} | ${f0(s.entriesPerFsync)} | ${f0(p.serverCpuPercent['leader'])} |`,
      );
    }
  }
  out.push('');
  return out.join('\n');
}

function machine(dataRoot: string): Record<string, string | number> {
  const c = cpus();
  let fs = '?';
  try {
    fs = execSync(`df -T ${JSON.stringify(dataRoot)} | tail -1`, { encoding: 'utf8' })
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');
  } catch {
    // df missing: say so in the report by leaving '?'
  }
  return {
    cpus: c.length,
    cpu: c[0]?.model ?? '?',
    'memory GiB': Number((totalmem() / 2 ** 30).toFixed(1)),
    'free GiB at start': Number((freemem() / 2 ** 30).toFixed(1)),
    kernel: release(),
    node: process.version,
    'data dir filesystem': fs,
    'load average at start': loadavg()
      .map((x) => x.toFixed(1))
      .join(' '),
  };
}

// ---------------------------------------------------------------------------------------

function options(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string', default: 'all' },
      trials: { type: 'string' },
      seconds: { type: 'string' },
      'etcd-bin': { type: 'string', default: '/usr/bin/etcd' },
      'no-etcd': { type: 'boolean', default: false },
      'data-root': { type: 'string', default: tmpdir() },
      keep: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
    },
  });
  const quick = values.quick!;
  const num = (v: string | undefined, d: number, what: string) => {
    const n = v === undefined ? d : Number(v);
    if (!(n > 0)) throw new Error(`${what} must be a positive number, got '${v}'`);
    return n;
  };
  const only = values.only as Options['only'];
  if (!['all', 'throughput', 'failover'].includes(only)) throw new Error(`--only must be throughput or failover, got '${values.only}'`);
  return {
    quick,
    seconds: num(values.seconds, quick ? 1.2 : 8, '--seconds'),
    trials: Math.round(num(values.trials, quick ? 2 : 20, '--trials')),
    restarts: quick ? 1 : 3,
    only,
    etcdBin: values['etcd-bin']!,
    noEtcd: values['no-etcd']!,
    dataRoot: resolve(values['data-root']!),
    keep: values.keep!,
    cpuProf: values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']),
  };
}

async function main(): Promise<number> {
  const o = options();
  const root = mkdtempSync(join(o.dataRoot, 'leaderd-bench-'));
  cleanups.push(async () => {
    if (!o.keep) rmSync(root, { recursive: true, force: true });
  });
  if (o.cpuProf) mkdirSync(o.cpuProf, { recursive: true });
  const env = o.cpuProf ? { ...process.env, LEADERD_NODE_ARGS: `--cpu-prof --cpu-prof-dir=${o.cpuProf}` } : process.env;
  const probe = o.noEtcd ? '--no-etcd given' : probeEtcd(o.etcdBin);
  const etcd = typeof probe === 'string' ? null : probe;
  const etcdNote = etcd
    ? `${o.etcdBin} ${etcd.version}${etcd.preVote ? ', --pre-vote=true' : ''}`
    : `NOT RUN (${probe}); leaderd runs alone`;
  console.log(`leaderd bench (${o.quick ? 'quick' : 'full'}): data under ${root}; etcd: ${etcdNote}`);
  const m = machine(root);
  console.log(`machine: ${JSON.stringify(m)}\n`);

  let disk: Record<string, SyncResult> | undefined;
  if (o.only !== 'failover') {
    disk = await diskCeiling(root, o.quick ? 1 : 3);
    console.log(
      `disk (${m['data dir filesystem']}): synced small writes one at a time: ` +
        Object.entries(disk)
          .map(([k, v]) => `${k} ${v.perSecond.toFixed(0)}/s (p50 ${v.latency?.median.toFixed(2)} ms)`)
          .join(', ') +
        '\n',
    );
  }
  let echo: ThroughputResult | undefined;
  let leaderd: ThroughputResult | undefined;
  let etcdRun: ThroughputResult | undefined;
  const fo: FailoverResult[] = [];

  if (o.only !== 'failover') {
    const server = await EchoServer.start();
    const stopEcho = () => server.stop();
    cleanups.push(stopEcho);
    const t = server.target();
    const watch = { leader: server.pid };
    const puts: LoadResult[] = [];
    console.log('echo server (bare grpc-js, same client):');
    const rssIdle = server.pid === undefined ? undefined : rssBytes(server.pid);
    for (const n of CONCURRENCY) {
      const r = await closedLoop((i) => t.put(`k/${i}`, VALUE), n, o.seconds, watch);
      puts.push(r);
      line(`put c=${n}`, r);
    }
    const gets64 = await closedLoop((i) => t.get(`k/${i}`), 64, o.seconds, watch);
    line('get c=64', gets64);
    const leaderQuery1 = await closedLoop(() => t.leaderQuery(), 1, o.seconds, watch);
    line('leader query c=1', leaderQuery1);
    const rssAfter = server.pid === undefined ? undefined : rssBytes(server.pid);
    t.close();
    await stopEcho();
    cleanups.splice(cleanups.indexOf(stopEcho), 1);
    echo = {
      puts,
      gets64,
      leaderQuery1,
      ...(rssIdle ? { rssIdleMiB: mib(rssIdle)! } : {}),
      ...(rssAfter ? { rssAfterMiB: mib(rssAfter)! } : {}),
    };
  }

  const runLeaderd = async () => {
    const c = await LeaderdCluster.create(join(root, 'leaderd'), SAME, env);
    await withCluster(c, o.keep, async () => {
      if (o.only !== 'failover') leaderd = await throughput(c, o);
      if (o.only !== 'throughput') fo.push(await failover(c, SAME, o));
    });
    if (o.only === 'throughput') return;
    // The same trials with the kill -9 fast path off: what failure detection by silence
    // alone (the election timeout) costs, measured in the same run.
    console.log('');
    const slow = await LeaderdCluster.create(join(root, 'leaderd-no-fast'), SAME, env, ['--fast-failover', 'false'], NO_FAST);
    await withCluster(slow, o.keep, async () => {
      fo.push(await failover(slow, SAME, o));
    });
  };
  const runEtcd = async (timing: Timing, what: 'all' | 'failover') => {
    const c = await EtcdCluster.create(o.etcdBin, join(root, `etcd-${timing.electionMs}`), timing, etcd!.preVote);
    await withCluster(c, o.keep, async () => {
      if (what === 'all' && o.only !== 'failover') etcdRun = await throughput(c, o);
      if (o.only !== 'throughput') fo.push(await failover(c, timing, o));
    });
  };
  console.log('');
  await runLeaderd();
  if (etcd) {
    console.log('');
    await runEtcd(SAME, 'all');
    if (o.only !== 'throughput') {
      console.log('');
      await runEtcd(ETCD_DEFAULTS, 'failover');
    }
  }

  const report: Report = {
    when: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine: m,
    settings: {
      mode: o.quick ? 'quick' : 'full',
      'seconds per run': o.seconds,
      'failover trials': o.trials,
      'heartbeat/election ms': `${SAME.heartbeatMs}/${SAME.electionMs}`,
      'value bytes': VALUE.length,
      fsync: 'on (both)',
      client: 'one grpc-js channel to the leader, closed loop',
    },
    etcd: etcdNote,
    ...(disk ? { disk } : {}),
    ...(echo ? { echo } : {}),
    ...(leaderd ? { leaderd } : {}),
    ...(etcdRun ? { etcdRun } : {}),
    failover: fo,
  };
  const md = markdown(report);
  console.log(`\n${md}`);
  const here = dirname(fileURLToPath(import.meta.url));
  // bench/results of the source tree, whether this runs from bench/ or dist/bench/.
  const results = resolve(here, here.endsWith(join('dist', 'bench')) ? '../../bench/results' : 'results');
  mkdirSync(results, { recursive: true });
  const base = o.only === 'all' ? (o.quick ? 'latest-quick' : 'latest') : `latest-${o.only}${o.quick ? '-quick' : ''}`;
  writeFileSync(join(results, `${base}.json`), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(results, `${base}.md`), md);
  console.log(`written: ${join(results, `${base}.json`)} and .md`);
  const failed = fo.filter((x) => x.failure !== undefined || x.lost > 0);
  for (const x of failed) console.error(`FAILED ${x.label}: ${x.failure ?? `${x.lost} acknowledged writes lost`}`);
  return failed.length > 0 ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
} finally {
  await cleanUp();
}
process.exit(code);

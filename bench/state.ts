// Big state on a 3-node leaderd cluster on this machine (issue 8): load large values and
// many small keys, then measure what an operator lives with: load time, leader changes,
// RSS per node against the state's size, how long a restarted follower takes to catch up,
// and how long a follower that was down for the whole load takes to get the state by
// snapshot; every key is read back from the caught-up followers. The longest event-loop
// pause of each node is taken per phase (load, with the leader's snapshots; a follower
// installing the snapshot; a follower restarting) from its /metrics
// (nodejs_eventloop_lag_max_seconds, which prom-client resets at each scrape).
//
//   npm run bench:state                                   # 1,000 x 1 MiB values + 1,000,000 keys
//   npm run bench:state -- --values 200 --keys 200000     # smaller
//   flags: --values N --value-bytes N --keys N --batch N (keys per Txn, <= 128)
//          --concurrency N --keep (keep the data dir) --out FILE.json
//          --heartbeat-ms N --election-ms N (default 50 / 300; a machine shared with other
//          work may need more to keep one leader through the load)
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LeaderdClient } from '../src/client/leaderd-client.js';
import { loadPublicApi } from '../src/transport/protos.js';
import { rssBytes, sleep, waitFor } from './procs.js';
import { LeaderdCluster } from './systems.js';

interface Flags {
  values: number;
  valueBytes: number;
  keys: number;
  batch: number;
  concurrency: number;
  keep: boolean;
  out: string | null;
  heartbeatMs: number;
  electionMs: number;
}

function parseFlags(argv: readonly string[]): Flags {
  const f: Flags = {
    values: 1000,
    valueBytes: 1 << 20,
    keys: 1_000_000,
    batch: 128,
    concurrency: 8,
    keep: false,
    out: null,
    heartbeatMs: 50,
    electionMs: 300,
  };
  const num = (name: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      process.stderr.write(`bench:state: ${name} must be a whole number from ${min} to ${max}, got '${v}'\n`);
      process.exit(2);
    }
    return n;
  };
  const numeric: Record<
    string,
    { key: 'values' | 'valueBytes' | 'keys' | 'batch' | 'concurrency' | 'heartbeatMs' | 'electionMs'; min: number; max: number }
  > = {
    '--values': { key: 'values', min: 0, max: 100_000 },
    '--value-bytes': { key: 'valueBytes', min: 1, max: 1 << 20 },
    '--keys': { key: 'keys', min: 0, max: 10_000_000 },
    '--batch': { key: 'batch', min: 1, max: 128 },
    '--concurrency': { key: 'concurrency', min: 1, max: 256 },
    '--heartbeat-ms': { key: 'heartbeatMs', min: 10, max: 10_000 },
    '--election-ms': { key: 'electionMs', min: 50, max: 60_000 },
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const n = numeric[a];
    if (n !== undefined) f[n.key] = num(a, argv[++i], n.min, n.max);
    else if (a === '--keep') f.keep = true;
    else if (a === '--out' && argv[i + 1] !== undefined) f.out = argv[++i]!;
    else {
      process.stderr.write(`bench:state: unknown flag ${a}\n`);
      process.exit(2);
    }
  }
  return f;
}

type Unary = (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void;

function kvClient(endpoint: string): grpc.Client {
  return new (loadPublicApi().leaderd.v1.KV)(endpoint, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 8 << 20,
    'grpc.max_receive_message_length': 8 << 20,
  });
}

function call<T>(client: grpc.Client, method: string, req: unknown, timeoutMs = 60_000): Promise<T> {
  const f = (client as unknown as Record<string, Unary>)[method]!.bind(client);
  return new Promise((resolve, reject) =>
    f(req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

/** Retries a write refused as overloaded or by a leader change (the client library would, within its deadline). */
async function write(client: () => grpc.Client, method: string, req: unknown): Promise<number> {
  let retries = 0;
  for (;;) {
    try {
      await call(client(), method, req);
      return retries;
    } catch (err) {
      const code = (err as grpc.ServiceError).code;
      if (retries > 50 || (code !== grpc.status.UNAVAILABLE && code !== grpc.status.RESOURCE_EXHAUSTED)) throw err;
      retries++;
      await sleep(Math.min(1000, 20 * 2 ** Math.min(retries, 6)));
    }
  }
}

async function pool(total: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next < total) await job(next++);
    }),
  );
}

const valueKey = (i: number) => `big/${String(i).padStart(6, '0')}`;
const smallKey = (i: number) => `small/${String(i).padStart(8, '0')}`;
const smallValue = (i: number) => Buffer.from(`v${i}`);
const mib = (b: number) => Math.round(b / 2 ** 20);

function bigValue(i: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes, i % 251);
  b.writeUInt32BE(i, 0);
  return b;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const root = mkdtempSync(join(tmpdir(), 'leaderd-bench-state-'));
  const cluster = await LeaderdCluster.create(root, { heartbeatMs: flags.heartbeatMs, electionMs: flags.electionMs });
  const out: Record<string, unknown> = { flags, startedAt: new Date().toISOString() };
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const stateBytes = flags.values * flags.valueBytes + flags.keys * (smallKey(0).length + 8);
  log(
    `bench:state: ${flags.values} values of ${flags.valueBytes} bytes + ${flags.keys} small keys (~${mib(stateBytes)} MiB), data in ${root}`,
  );
  const peakRss = new Map<string, number>();
  // Peak RSS per phase and node, in MiB, so a peak over the target names the phase it came from.
  const peakByPhase: Record<string, Record<string, number>> = {};
  out['peakRssMiBByPhase'] = peakByPhase;
  const sampler = setInterval(() => {
    for (const m of cluster.members) {
      const pid = cluster.pid(m);
      const r = pid === undefined ? undefined : rssBytes(pid);
      if (r === undefined) continue;
      peakRss.set(m, Math.max(peakRss.get(m) ?? 0, r));
      const at = (peakByPhase[phase] ??= {});
      at[m] = Math.max(at[m] ?? 0, mib(r));
    }
  }, 250);
  sampler.unref();
  // Largest V8 heap and external memory per phase and node, in MiB, from the same scrapes.
  const memoryByPhase: Record<string, Record<string, { heapUsed: number; external: number }>> = {};
  out['memoryMiBByPhase'] = memoryByPhase;
  // Longest event-loop pause per phase and node, in ms, scraped from /metrics every 500 ms.
  let phase = 'start';
  const pauses: Record<string, Record<string, number>> = {};
  // Filled in as the run goes, so a run that fails part-way still reports the phases it saw.
  out['longestPauseMs'] = pauses;
  const scrape = async () => {
    await Promise.all(
      cluster.running().map(async (m) => {
        try {
          const text = await (await fetch(cluster.metricsUrl(m), { signal: AbortSignal.timeout(2000) })).text();
          // Where the memory is: V8's heap and what lives outside it (Buffers, ArrayBuffers).
          for (const [metric, name] of [
            ['nodejs_heap_size_used_bytes', 'heapUsed'],
            ['nodejs_external_memory_bytes', 'external'],
          ] as const) {
            const b = new RegExp(`^${metric}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
            if (b === null) continue;
            const at = ((memoryByPhase[phase] ??= {})[m] ??= { heapUsed: 0, external: 0 });
            at[name] = Math.max(at[name], mib(Number(b[1])));
          }
          const v = /^nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text);
          if (v === null) return;
          const at = (pauses[phase] ??= {});
          at[m] = Math.max(at[m] ?? 0, Math.round(Number(v[1]) * 1000));
        } catch {
          // A node busy or down this time: its pause shows at the next scrape.
        }
      }),
    );
  };
  const pauseSampler = setInterval(() => void scrape(), 500);
  pauseSampler.unref();
  /** Ends the current phase: one last scrape, so its longest pause is not counted in the next. */
  const nextPhase = async (name: string) => {
    await scrape();
    phase = name;
  };
  // Ctrl-C or a timeout's SIGTERM: stop the three nodes too, then exit.
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      void cluster.stop(flags.keep).finally(() => process.exit(130));
    });
  try {
    await cluster.start();
    const first = await waitFor('leader', () => cluster.whole(), 60_000);
    const leaderOf = async () => (await waitFor('leader', () => cluster.agreed(cluster.running()), 60_000)).leader;
    let leader = first.leader;
    const clients = new Map<string, grpc.Client>();
    const clientFor = (m: string) => {
      let c = clients.get(m);
      if (!c) clients.set(m, (c = kvClient(cluster.endpoint(m))));
      return c;
    };
    // The follower that is down for the whole load: it must get the state by snapshot.
    const absent = cluster.members.find((m) => m !== leader)!;
    await cluster.kill(absent);
    const running = () => cluster.running();

    let retries = 0;
    await nextPhase('load');
    const t0 = performance.now();
    await pool(flags.values, Math.min(4, flags.concurrency), async (i) => {
      retries += await write(() => clientFor(leader), 'Put', { key: valueKey(i), value: bigValue(i, flags.valueBytes) });
    });
    const valuesMs = performance.now() - t0;
    log(`values: ${flags.values} in ${(valuesMs / 1000).toFixed(1)} s (${(flags.values / (valuesMs / 1000)).toFixed(1)}/s)`);
    const t1 = performance.now();
    const txns = Math.ceil(flags.keys / flags.batch);
    await pool(txns, flags.concurrency, async (t) => {
      const success = [];
      for (let i = t * flags.batch; i < Math.min(flags.keys, (t + 1) * flags.batch); i++)
        success.push({ put: { key: smallKey(i), value: smallValue(i) } });
      retries += await write(() => clientFor(leader), 'Txn', { compare: [], success, failure: [] });
      if (t % 500 === 0 && t > 0) log(`  ${t * flags.batch} keys, ${((performance.now() - t1) / 1000).toFixed(0)} s`);
    });
    const keysMs = performance.now() - t1;
    log(`keys: ${flags.keys} in ${txns} txns, ${(keysMs / 1000).toFixed(1)} s (${Math.round(flags.keys / (keysMs / 1000))} keys/s)`);
    leader = await leaderOf();
    const leaderStatus = await cluster.target(leader).status(5000);
    const rssAfterLoad = Object.fromEntries(running().map((m) => [m, mib(rssBytes(cluster.pid(m)!) ?? 0)]));
    out['load'] = {
      valuesSeconds: valuesMs / 1000,
      keysSeconds: keysMs / 1000,
      retries,
      termAtStart: first.term,
      termAfterLoad: leaderStatus.term,
      leaderChanges: leaderStatus.term - first.term,
      rssMiB: rssAfterLoad,
    };
    log(`after load: term ${first.term} -> ${leaderStatus.term}, ${retries} retried writes, RSS MiB ${JSON.stringify(rssAfterLoad)}`);

    // A follower that was down for the whole load: the leader compacted past it, so it gets a snapshot.
    const commit = leaderStatus.commitIndex;
    await nextPhase('install-snapshot');
    const t2 = performance.now();
    cluster.restart(absent);
    // The transfer alone: from when the node answers (its process is up) to when its
    // metrics count a snapshot installed from the leader, and that snapshot's size.
    const transfer = { upMs: NaN, installedMs: NaN, bytes: 0 };
    const watchTransfer = async () => {
      if (!Number.isNaN(transfer.installedMs)) return;
      try {
        const text = await (await fetch(cluster.metricsUrl(absent), { signal: AbortSignal.timeout(1000) })).text();
        if (Number.isNaN(transfer.upMs)) transfer.upMs = performance.now() - t2;
        const installed = /^leaderd_snapshots_total\{[^}]*origin="leader"[^}]*\} (\d+)/m.exec(text);
        if (installed !== null && Number(installed[1]) > 0) {
          transfer.installedMs = performance.now() - t2;
          transfer.bytes = Number(/^leaderd_snapshot_last_bytes\{[^}]*origin="leader"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
        }
      } catch {
        // Not up yet.
      }
    };
    await waitFor(
      `${absent} caught up by snapshot`,
      async () => {
        await watchTransfer();
        return (await cluster.appliedIndex(absent, true)) >= commit ? true : undefined;
      },
      600_000,
      100,
    );
    const snapshotMs = performance.now() - t2;
    log(`follower down during the load: caught up (snapshot) ${(snapshotMs / 1000).toFixed(1)} s after its start`);
    const transferS = (transfer.installedMs - transfer.upMs) / 1000;
    log(
      `  snapshot from the leader: ${mib(transfer.bytes)} MiB, installed ${transferS.toFixed(1)} s after the node answered ` +
        `(${(transfer.bytes / 2 ** 20 / transferS).toFixed(1)} MiB/s; polled every 0.1 s)`,
    );
    out['snapshotTransfer'] = { bytes: transfer.bytes, seconds: transferS, mibPerSecond: transfer.bytes / 2 ** 20 / transferS };

    // A follower restarted after the load: it reads its own snapshot and log back from disk.
    const other = cluster.members.find((m) => m !== leader && m !== absent)!;
    await nextPhase('between');
    await cluster.kill(other);
    await nextPhase('restart');
    const t3 = performance.now();
    cluster.restart(other);
    const commit2 = (await cluster.target(leader).status(5000)).commitIndex;
    await waitFor(
      `${other} caught up after restart`,
      async () => ((await cluster.appliedIndex(other, true)) >= commit2 ? true : undefined),
      600_000,
      200,
    );
    const restartMs = performance.now() - t3;
    log(`follower restarted: caught up ${(restartMs / 1000).toFixed(1)} s after its start`);

    // A follower whose data dir is lost: removed from the membership, started on an empty
    // data dir with --join, and added back (README "Lost disks"); it gets the state by snapshot.
    await nextPhase('wiped');
    const t5 = performance.now();
    const admin = new LeaderdClient({ endpoints: cluster.members.map((m) => cluster.endpoint(m)) });
    // A follower (removing the leader would first hand leadership over, a separate story).
    const nowLeader = await leaderOf();
    const wiped = [absent, other].find((m) => m !== nowLeader)!;
    try {
      await admin.removeMember(wiped, { timeoutMs: 60_000 });
      await cluster.kill(wiped);
      rmSync(cluster.dataDir(wiped), { recursive: true, force: true });
      cluster.restart(wiped, ['--join']);
      await admin.addMember(
        { id: wiped, peerAddress: cluster.peerAddress(wiped), clientAddress: cluster.endpoint(wiped) },
        { timeoutMs: 600_000 },
      );
    } finally {
      admin.close();
    }
    const commit3 = (await cluster.target(await leaderOf()).status(5000)).commitIndex;
    await waitFor(
      `${wiped} caught up after its data dir was wiped and it was re-added`,
      async () => ((await cluster.appliedIndex(wiped, true)) >= commit3 ? true : undefined),
      600_000,
      200,
    );
    const wipedMs = performance.now() - t5;
    log(`follower wiped and re-added: caught up ${(wipedMs / 1000).toFixed(1)} s after its removal`);

    // Every key, from both followers (serializable reads: their own applied state).
    await nextPhase('read-back');
    const t4 = performance.now();
    let missing = 0;
    for (const m of [absent, other]) {
      const c = kvClient(cluster.endpoint(m));
      for (let i = 0; i < flags.values; i++) {
        const r = await call<{ found: boolean; value: Buffer }>(c, 'Get', { key: valueKey(i), serializable: true });
        if (!r.found || !r.value.equals(bigValue(i, flags.valueBytes))) missing++;
      }
      for (let start = 0; start < flags.keys; start += 10_000) {
        const r = await call<{ kvs: { key: string; value: Buffer }[] }>(c, 'Range', {
          prefix: 'small/',
          startAfter: start === 0 ? '' : smallKey(start - 1),
          limit: 10_000,
          serializable: true,
        });
        for (let j = 0; j < Math.min(10_000, flags.keys - start); j++) {
          const kv = r.kvs[j];
          if (kv?.key !== smallKey(start + j) || !kv.value.equals(smallValue(start + j))) missing++;
        }
      }
      c.close();
    }
    log(`read back every key from ${absent} and ${other}: ${missing} missing or wrong (${((performance.now() - t4) / 1000).toFixed(1)} s)`);
    const finalTerm = (await cluster.target(await leaderOf()).status(5000)).term;
    const rssFinal = Object.fromEntries(running().map((m) => [m, mib(rssBytes(cluster.pid(m)!) ?? 0)]));
    out['catchUp'] = {
      snapshotSeconds: snapshotMs / 1000,
      restartSeconds: restartMs / 1000,
      wipedSeconds: wipedMs / 1000,
      missing,
      finalTerm,
    };
    const peak = Object.fromEntries([...peakRss].map(([m, b]) => [m, mib(b)]));
    // The target (issue 8): no node's RSS above the state's size + 300 MiB at any time.
    const targetMiB = mib(stateBytes) + 300;
    const worst = Math.max(...Object.values(peak));
    out['rssMiB'] = { final: rssFinal, peak, stateMiB: mib(stateBytes), targetMiB, withinTarget: worst <= targetMiB };
    log(`RSS MiB now ${JSON.stringify(rssFinal)}, peak ${JSON.stringify(peak)}; final term ${finalTerm}`);
    log(`peak RSS ${worst} MiB against state + 300 = ${targetMiB} MiB: ${worst <= targetMiB ? 'within' : 'OVER'}`);
    log(`peak RSS MiB by phase: ${JSON.stringify(peakByPhase)}`);
    log(`largest V8 heap used / external memory MiB by phase: ${JSON.stringify(memoryByPhase)}`);
    // Every leader change of the run with its cause, as the final leader saw them (its dashboard's timeline).
    try {
      const base = cluster.metricsUrl(await leaderOf()).replace(/\/metrics$/, '');
      const view = (await (await fetch(`${base}/api/cluster`, { signal: AbortSignal.timeout(5000) })).json()) as {
        snapshot: { timeline: { at: number; leader: string | null; term: number; cause: string; leaderlessMs: number }[] };
      };
      const changes = view.snapshot.timeline.map((c) => ({ term: c.term, leader: c.leader, cause: c.cause, leaderlessMs: c.leaderlessMs }));
      out['leaderChanges'] = changes;
      log(
        `leader changes seen by the leader: ${changes.map((c) => `term ${c.term} ${c.leader ?? '-'} (${c.cause}, ${c.leaderlessMs} ms)`).join('; ')}`,
      );
    } catch (err) {
      log(`leader changes: not available (${String(err)})`);
    }
    await nextPhase('end');
    log(`longest event-loop pause (ms) by phase and node: ${JSON.stringify(pauses)}`);
    for (const c of clients.values()) c.close();
    if (missing > 0) process.exitCode = 1;
  } finally {
    clearInterval(sampler);
    clearInterval(pauseSampler);
    await cluster.stop(flags.keep);
    out['finishedAt'] = new Date().toISOString();
    out['peakRssMiB'] = Object.fromEntries([...peakRss].map(([m, b]) => [m, mib(b)]));
    const json = JSON.stringify(out, null, 2);
    if (flags.out) writeFileSync(flags.out, `${json}\n`);
    log(json);
  }
}

void main();

// One client floods each limited resource of a 3-node leaderd cluster until it gets the
// limit's error, while another client measures its own Put + linearizable Get latency;
// the same measurement without a flood, before and after the floods in the same run, is
// the baseline (issue 8: "a single client flooding each unbounded resource gets a clear
// error while other clients' latency stays within 2x normal").
//
//   npm run bench:flood
//   npm run bench:flood -- --probes 300 --rounds 3 --heartbeat-ms 50 --election-ms 300 --out FILE.json
//
// Real processes: three `leaderd start` nodes (bench/systems.ts), the flooder in a child
// process of its own (this file with --flood KIND), and the measuring client here. The
// limits are scaled down so each flood reaches its limit in seconds: --max-watches 2000,
// --max-watches-per-connection 1000, --max-leases 2000, --max-waiters-per-name 200.
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { LeaderdClient } from '../src/client/leaderd-client.js';
import { loadPublicApi } from '../src/transport/protos.js';
import { waitFor } from './procs.js';
import { LeaderdCluster } from './systems.js';

const LIMIT_FLAGS = [
  '--max-watches',
  '2000',
  '--max-watches-per-connection',
  '1000',
  '--max-leases',
  '2000',
  '--max-waiters-per-name',
  '200',
];

type FloodKind = 'watches' | 'leases' | 'campaigners';
const FLOODS: Record<FloodKind, string> = {
  watches: 'watch streams (10 connections x 250)',
  leases: 'lease grants (64 concurrent)',
  campaigners: 'campaigners on one name (260)',
};

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

// ---------------------------------------------------------------------------------------
// The flooder (a child process): floods one resource of one node, prints the error it got.

function stubs(endpoint: string) {
  const api = loadPublicApi().leaderd.v1;
  const creds = grpc.credentials.createInsecure();
  // A channel each: the watch flood spreads its streams over separate connections.
  const o = { 'grpc.use_local_subchannel_pool': 1 };
  return { kv: new api.KV(endpoint, creds, o), lease: new api.Lease(endpoint, creds, o), election: new api.Election(endpoint, creds, o) };
}

type Unary = (req: unknown, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { id: number }) => void) => void;
const unary = (client: unknown, method: string): Unary => (client as Record<string, Unary>)[method]!.bind(client) as Unary;

async function grantLease(endpoint: ReturnType<typeof stubs>): Promise<{ id?: number; err?: grpc.ServiceError }> {
  return new Promise((res) =>
    unary(endpoint.lease, 'Grant')({ ttlMs: 60_000 }, { deadline: Date.now() + 10_000 }, (e, r) => res(e ? { err: e } : { id: r!.id })),
  );
}

async function revokeAll(s: ReturnType<typeof stubs>, ids: readonly number[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 64)
    await Promise.all(
      ids.slice(i, i + 64).map((id) => new Promise((res) => unary(s.lease, 'Revoke')({ id }, { deadline: Date.now() + 10_000 }, res))),
    );
}

async function flood(kind: FloodKind, endpoint: string): Promise<string> {
  switch (kind) {
    case 'watches': {
      const calls: grpc.ClientReadableStream<unknown>[] = [];
      let err = '';
      for (let c = 0; c < 10 && !err; c++) {
        const s = stubs(endpoint);
        for (let i = 0; i < 250 && !err; i++) {
          const call = s.kv.Watch({ key: `w/${c}/${i}`, prefix: false, startRevision: 0 }) as grpc.ClientReadableStream<unknown>;
          calls.push(call);
          call.on('data', () => {});
          call.on('error', (e: grpc.ServiceError) => {
            if (e.code === grpc.status.RESOURCE_EXHAUSTED && !err) err = `${grpc.status[e.code]}: ${e.details}`;
          });
          if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
        }
      }
      await new Promise((r) => setTimeout(r, 1000));
      for (const c of calls) c.cancel();
      return err;
    }
    case 'leases': {
      const s = stubs(endpoint);
      let err = '';
      const ids: number[] = [];
      // UNAVAILABLE (a leader change under the flood) is retried, as a client would:
      // the flood goes on until the limit's own error, or 200 retries.
      let unavailable = 0;
      const worker = async () => {
        while (!err) {
          const r = await grantLease(s);
          if (r.err?.code === grpc.status.UNAVAILABLE && ++unavailable <= 200) continue;
          if (r.err) err = `${grpc.status[r.err.code]}: ${r.err.details}`;
          else ids.push(r.id!);
        }
      };
      await Promise.all(Array.from({ length: 64 }, worker));
      await revokeAll(s, ids);
      return err;
    }
    case 'campaigners': {
      const s = stubs(endpoint);
      const leases: number[] = [];
      for (let i = 0; i < 260; i++) {
        const r = await grantLease(s);
        if (r.id !== undefined) leases.push(r.id);
      }
      let err = '';
      await Promise.all(
        leases.map(
          (lease) =>
            new Promise<void>((res) =>
              unary(s.election, 'Campaign')(
                { name: 'flood', lease, value: Buffer.from('v') },
                { deadline: Date.now() + 3000 },
                (e: grpc.ServiceError | null) => {
                  if (e?.code === grpc.status.RESOURCE_EXHAUSTED && !err) err = `${grpc.status[e.code]}: ${e.details}`;
                  res();
                },
              ),
            ),
        ),
      );
      await revokeAll(s, leases);
      return err;
    }
  }
}

// ---------------------------------------------------------------------------------------
// The measuring client and the run.

/** The other client's latency: sequential Put + linearizable Get pairs, ms each, until `until` settles (at least 50) or `max`. */
async function probe(c: LeaderdClient, max: number, until?: Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  let stop = false;
  void until?.finally(() => (stop = true));
  for (let i = 0; i < max && !(stop && out.length >= 50); i++) {
    const t0 = performance.now();
    await c.put(`probe/${i % 10}`, 'x');
    await c.get(`probe/${i % 10}`);
    out.push(performance.now() - t0);
  }
  return out;
}

/** Runs the flooder in its own process; resolves to the error it printed. */
function floodInChild(kind: FloodKind, endpoint: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--flood', kind, '--endpoint', endpoint], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`flooder ${kind} exited with ${code}`));
      else resolve((JSON.parse(out) as { error: string }).error);
    });
  });
}

interface Flags {
  probes: number;
  rounds: number;
  heartbeatMs: number;
  electionMs: number;
  out: string | null;
}

function parseFlags(argv: readonly string[]): Flags {
  const f: Flags = { probes: 300, rounds: 3, heartbeatMs: 50, electionMs: 300, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[++i];
    const n = Number(v);
    if (a === '--out' && v !== undefined) f.out = v;
    else if (['--probes', '--rounds', '--heartbeat-ms', '--election-ms'].includes(a) && Number.isSafeInteger(n) && n > 0) {
      if (a === '--probes') f.probes = n;
      else if (a === '--rounds') f.rounds = n;
      else if (a === '--heartbeat-ms') f.heartbeatMs = n;
      else f.electionMs = n;
    } else {
      process.stderr.write(`bench:flood: unknown flag or bad value: ${a} ${v ?? ''}\n`);
      process.exit(2);
    }
  }
  return f;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const root = mkdtempSync(join(tmpdir(), 'leaderd-bench-flood-'));
  const cluster = await LeaderdCluster.create(
    root,
    { heartbeatMs: flags.heartbeatMs, electionMs: flags.electionMs },
    process.env,
    LIMIT_FLAGS,
  );
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      void cluster.stop().finally(() => process.exit(130));
    });
  const result: Record<string, unknown> = { flags, limits: LIMIT_FLAGS.join(' '), startedAt: new Date().toISOString() };
  const log = (line: string) => process.stdout.write(`${line}\n`);
  try {
    await cluster.start();
    const first = await waitFor('leader', () => cluster.whole(), 60_000);
    // Both clients talk to a follower, as most clients of a 3-node cluster do.
    const follower = cluster.members.find((m) => m !== first.leader)!;
    const endpoint = cluster.endpoint(follower);
    const other = new LeaderdClient({ endpoints: [endpoint] });
    await probe(other, 50); // warm-up
    const before = await probe(other, flags.probes);
    const rows: Record<string, unknown>[] = [];
    // Each flood `rounds` times, each right after a quiet window of its own: on a machine
    // whose other load comes and goes (2 cores shared with test suites), a baseline taken
    // minutes away from the flood measures the machine as much as the flood.
    const quietPairs = Math.max(50, Math.round(flags.probes / 3));
    for (const kind of Object.keys(FLOODS) as FloodKind[]) {
      const lat: number[] = [];
      const quiet: number[] = [];
      const ratios: number[] = [];
      let error = '';
      for (let r = 0; r < flags.rounds; r++) {
        const q = await probe(other, quietPairs);
        const f = floodInChild(kind, endpoint);
        const l = await probe(other, flags.probes, f);
        error ||= await f;
        quiet.push(...q);
        lat.push(...l);
        ratios.push(pct(l, 50) / pct(q, 50));
      }
      rows.push({
        flood: FLOODS[kind],
        error,
        samples: lat.length,
        p50: pct(lat, 50),
        p99: pct(lat, 99),
        quietP50: pct(quiet, 50),
        ratios,
      });
    }
    const after = await probe(other, flags.probes);
    other.close();
    const base = [...before, ...after];
    const term = (await cluster.target(first.leader).status(5000)).term;
    log(`bench:flood on 3 leaderd processes (${flags.heartbeatMs}/${flags.electionMs} ms), limits ${LIMIT_FLAGS.join(' ')}`);
    log(
      `baseline (no flood, before and after): Put+Get p50 ${pct(base, 50).toFixed(2)} ms, p99 ${pct(base, 99).toFixed(2)} ms (${base.length} pairs; before p50 ${pct(before, 50).toFixed(2)}, after p50 ${pct(after, 50).toFixed(2)})`,
    );
    log(
      `${flags.rounds} rounds per flood, each after ${quietPairs} quiet pairs; p50 / quiet: the flood's p50 over the p50 of the quiet pairs just before it, per round, then pooled`,
    );
    log(
      '| flood | error the flooder got | p50 (ms) | p50 / quiet, per round | p50 / quiet, pooled | p50 / baseline | p99 (ms) | p99 / baseline |',
    );
    log('|---|---|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      const p50 = r['p50'] as number;
      const p99 = r['p99'] as number;
      const ratios = (r['ratios'] as number[]).map((x) => x.toFixed(2)).join(' / ');
      log(
        `| ${String(r['flood'])} | ${String(r['error']) || '(none)'} | ${p50.toFixed(2)} | ${ratios} | ${(p50 / (r['quietP50'] as number)).toFixed(2)} | ${(p50 / pct(base, 50)).toFixed(2)} | ${p99.toFixed(2)} | ${(p99 / pct(base, 99)).toFixed(2)} |`,
      );
    }
    log(`term ${first.term} -> ${term} (${term - first.term} leader changes)`);
    Object.assign(result, {
      baseline: { p50: pct(base, 50), p99: pct(base, 99), samples: base.length },
      floods: rows,
      leaderChanges: term - first.term,
    });
    if (rows.some((r) => r['error'] === '')) process.exitCode = 1;
  } finally {
    await cluster.stop();
    if (flags.out) writeFileSync(flags.out, `${JSON.stringify(result, null, 2)}\n`);
  }
}

const at = process.argv.indexOf('--flood');
if (at >= 0) {
  const kind = process.argv[at + 1] as FloodKind;
  const endpoint = process.argv[process.argv.indexOf('--endpoint') + 1]!;
  if (!(kind in FLOODS)) {
    process.stderr.write(`bench:flood: unknown flood ${kind}\n`);
    process.exit(2);
  }
  const error = await flood(kind, endpoint);
  process.stdout.write(`${JSON.stringify({ error })}\n`);
  process.exit(0);
} else {
  await main();
}

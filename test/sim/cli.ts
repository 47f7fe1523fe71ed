// npm run sim -- --seed N [--trace]       replay one seed (trace printed on failure, or always with --trace)
// npm run sim -- --seeds 100000 [--from K] run seeds K..K+N-1 with a progress bar and a summary
// (Run `npm run build` first: this is the compiled dist/test/sim/cli.js.)
import { Command, InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import { BROKEN } from './broken.js';
import { formatFailure, runSeed, type SimOptions, type SimResult } from './simulator.js';

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function rate(v: string): number {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('expected a probability in [0, 1]');
  return n;
}

interface CliOpts {
  seed?: number;
  seeds?: number;
  from: number;
  steps: number;
  voters?: number;
  drop?: number;
  dup?: number;
  partition?: number;
  crash?: number;
  wipe?: number;
  processExits?: number;
  joinEmpty: boolean;
  drift?: number;
  diskLatency?: number;
  trace: boolean;
  liveness: boolean;
  broken?: string;
  adversary: boolean;
  maxFailures: number;
}

const program = new Command()
  .name('sim')
  .description('Deterministic Raft cluster simulator: every run is a pure function of its seed.')
  .option('--seed <n>', 'replay one seed', int)
  .option('--seeds <n>', 'run this many seeds', int)
  .option('--from <k>', 'first seed for --seeds', int, 1)
  .option('--steps <n>', 'events in the fault phase of each run', int, 3000)
  .option('--voters <n>', '3 or 5 voters (default: drawn from the seed)', int)
  .option('--drop <p>', 'message drop probability (default: drawn from the seed)', rate)
  .option('--dup <p>', 'message duplication probability', rate)
  .option('--partition <p>', 'partition probability per scheduler round', rate)
  .option('--crash <p>', 'crash probability per scheduler round', rate)
  .option('--wipe <p>', 'share of crashes that also lose the data dir (new incarnation)', rate)
  .option('--process-exits <p>', "share of crashes whose linked peers see the process gone (fast failover's proof)", rate)
  .option('--join-empty', 'spares join with an empty configuration (leaderd start --join)', false)
  .option('--drift <d>', 'max relative clock-rate deviation (default leaseDriftTicks/electionTick/2)', Number)
  .option('--disk-latency <ms>', 'max disk write latency in virtual ms (default: drawn from the seed: 0, 10 or 40)', int)
  .option('--trace', 'print every event as it happens (with --seed)', false)
  .option('--no-liveness', 'skip the liveness phase')
  .option(
    '--adversary',
    'adversarial scheduling: crash leaders after partial replication, voters after a grant, clog links (knobs drawn per seed)',
    false,
  )
  .option('--broken <kind>', `inject a broken node (${Object.keys(BROKEN).join(', ')}) to see the checkers fire`)
  .option('--max-failures <n>', 'failures to print in full with --seeds', int, 3);

program.parse();
const o = program.opts<CliOpts>();

if ((o.seed === undefined) === (o.seeds === undefined)) {
  program.error('give exactly one of --seed N or --seeds N', { exitCode: 2 });
}
if (o.voters !== undefined && o.voters !== 3 && o.voters !== 5) program.error('--voters must be 3 or 5', { exitCode: 2 });
const broken = o.broken === undefined ? undefined : BROKEN[o.broken];
if (o.broken !== undefined && broken === undefined) program.error(`unknown --broken ${o.broken}`, { exitCode: 2 });

function options(seed: number, onTrace?: (l: string) => void): SimOptions {
  return {
    seed,
    steps: o.steps,
    liveness: o.liveness,
    ...(o.voters !== undefined ? { voters: o.voters as 3 | 5 } : {}),
    ...(o.drop !== undefined ? { drop: o.drop } : {}),
    ...(o.dup !== undefined ? { dup: o.dup } : {}),
    ...(o.partition !== undefined ? { partition: o.partition } : {}),
    ...(o.crash !== undefined ? { crash: o.crash } : {}),
    ...(o.wipe !== undefined ? { wipe: o.wipe } : {}),
    ...(o.processExits !== undefined ? { processExits: o.processExits } : {}),
    ...(o.diskLatency !== undefined ? { diskLatency: o.diskLatency } : {}),
    ...(o.joinEmpty ? { joinEmpty: true } : {}),
    ...(o.drift !== undefined ? { drift: o.drift } : {}),
    ...(broken ? { broken } : {}),
    ...(o.adversary ? { adversary: true } : {}),
    ...(onTrace ? { onTrace } : {}),
  };
}

if (o.seed !== undefined) {
  const r = await runSeed(options(o.seed, o.trace ? (l) => console.log(l) : undefined));
  if (r.violations.length > 0) {
    console.log(o.trace ? formatFailure({ ...r, trace: [] }) : formatFailure(r));
    process.exitCode = 1;
  } else {
    console.log(`seed ${o.seed} ok: ${summary([r])}`);
    console.log(`params: ${JSON.stringify(r.params)}`);
    if (r.adversary) console.log(`adversary: ${JSON.stringify(r.adversary)}`);
  }
} else {
  const n = o.seeds!;
  const started = Date.now();
  const results: SimResult[] = [];
  const failed: SimResult[] = [];
  const bar = new cliProgress.SingleBar(
    { format: 'seeds {bar} {value}/{total} | {eta_formatted} left | failures {failures}', hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(n, 0, { failures: 0 });
  for (let seed = o.from; seed < o.from + n; seed++) {
    const r = await runSeed(options(seed));
    // Keep the totals but not the traces of passing runs.
    results.push(r.violations.length > 0 ? r : { ...r, trace: [] });
    if (r.violations.length > 0) failed.push(r);
    bar.increment(1, { failures: failed.length });
  }
  bar.stop();
  for (const f of failed.slice(0, o.maxFailures)) console.log(`\n${formatFailure(f)}`);
  const byInvariant = new Map<string, number[]>();
  for (const f of failed) {
    const k = f.violations[0]!.invariant;
    byInvariant.set(k, [...(byInvariant.get(k) ?? []), f.seed]);
  }
  console.log(`\nseeds ${o.from}..${o.from + n - 1}: ${n} run, ${failed.length} with violations`);
  for (const [k, seeds] of byInvariant)
    console.log(`  ${k}: ${seeds.length} (seeds ${seeds.slice(0, 20).join(', ')}${seeds.length > 20 ? ', ...' : ''})`);
  console.log(`totals: ${summary(results)}`);
  console.log(`wall time: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (failed.length > 0) process.exitCode = 1;
}

function summary(rs: readonly SimResult[]): string {
  const total: Record<string, number> = {};
  const rates = { drop: 0, dup: 0, delay: 0, partition: 0, crash: 0, wipe: 0, confChange: 0, transfer: 0 };
  for (const r of rs) {
    for (const [k, v] of Object.entries(r.stats)) total[k] = (total[k] ?? 0) + v;
    for (const k of Object.keys(rates) as (keyof typeof rates)[]) rates[k] += r.params[k];
  }
  const n = Math.max(1, rs.length);
  const counts = Object.entries(total)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const mean = Object.entries(rates)
    .map(([k, v]) => `${k} ${(v / n).toFixed(4)}`)
    .join(', ');
  const dropped = total['messages'] ? ((100 * (total['dropped'] ?? 0)) / total['messages']).toFixed(1) : '0';
  return `${counts}\nmean fault rates (drop/dup/delay per message, the rest per scheduler round): ${mean}; ${dropped}% of messages dropped`;
}

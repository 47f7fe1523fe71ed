// npm run sim:mutants [-- --only figure-8,no-noop] [--budget 10000] [--from 1]
// Applies each known Raft bug of mutants.ts to a test-only build of the core and runs the
// simulator on it, seed after seed, until an invariant checker catches it. Prints, per
// mutant, the seeds it took and the checker; fails if a mutant survives the budget, or if
// the unmutated build fails a seed that caught a mutant (then the catch proves nothing).
import { Command, InvalidArgumentError } from 'commander';
import { MutantBuilder } from './build.js';
import { hunt, loadSim, type Catch } from './hunt.js';
import { MUTANTS } from './mutants.js';

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

const program = new Command()
  .name('sim:mutants')
  .description('Runs the simulator against each known Raft bug (test/mutants/mutants.ts) until a checker catches it.')
  .option('--only <ids>', `comma-separated mutant ids (${MUTANTS.map((m) => m.id).join(', ')})`)
  .option('--budget <n>', 'seeds to try per mutant before it counts as surviving', int, 10_000)
  .option('--from <k>', 'first seed', int, 1)
  .option('--seed <n>', 'replay one seed on each selected mutant and print its failure report with the last events', int)
  .option('--list', 'list the mutants and exit', false);
program.parse();
const o = program.opts<{ only?: string; budget: number; from: number; seed?: number; list: boolean }>();

if (o.list) {
  for (const m of MUTANTS) console.log(`${m.id.padEnd(26)} ${m.file}: ${m.bug}`);
  process.exit(0);
}
const wanted = o.only?.split(',').map((s) => s.trim()) ?? MUTANTS.map((m) => m.id);
const unknown = wanted.filter((id) => !MUTANTS.some((m) => m.id === id));
if (unknown.length > 0) program.error(`unknown mutant(s): ${unknown.join(', ')}`, { exitCode: 2 });
const selected = MUTANTS.filter((m) => wanted.includes(m.id));

const builder = new MutantBuilder();
// An interrupted sweep leaves no build behind.
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    builder.clean();
    process.exit(130);
  });
// Every entry must still apply, even those not run: a stale table fails here, loudly.
for (const m of MUTANTS) builder.check(m);
if (o.seed !== undefined) {
  for (const m of selected) {
    const sim = await loadSim(builder.build(m));
    const r = await sim.runSeed({ seed: o.seed, adversary: true, traceSize: 400 });
    console.log(`${m.id}: ${r.violations.length === 0 ? `seed ${o.seed} ok` : sim.formatFailure(r)}\n`);
  }
  builder.clean();
  process.exit(0);
}
const control = await loadSim(builder.build(null));
const started = Date.now();
const rows: { id: string; c: Catch | null; secs: number; controlOk: boolean; masked: string | undefined }[] = [];
let failed = false;
for (const m of selected) {
  const t0 = Date.now();
  const sim = await loadSim(builder.build(m));
  process.stdout.write(`${m.id}: `);
  const c = await hunt(sim, {
    from: o.from,
    budget: o.budget,
    onSeed: (seed) => {
      if ((seed - o.from + 1) % 100 === 0) process.stdout.write('.');
    },
  });
  const secs = (Date.now() - t0) / 1000;
  // The catching seed must pass without the mutation, or the catch is not the mutant's.
  const controlOk = c === null || (await control.runSeed({ seed: c.seed, adversary: true, traceSize: 0 })).violations.length === 0;
  if ((c === null && m.masked === undefined) || !controlOk) failed = true;
  console.log(
    c === null
      ? m.masked !== undefined
        ? `not reached in ${o.budget} seeds (${secs.toFixed(0)} s), as expected: masked, ${m.masked.why}; caught by ${m.masked.caughtBy}`
        : `SURVIVED ${o.budget} seeds (${secs.toFixed(0)} s)`
      : `caught at seed ${c.seed} (${c.seeds} seeds, ${secs.toFixed(1)} s) by ${c.invariant}: ${c.message}` +
          (controlOk ? '' : ' -- BUT THE UNMUTATED BUILD FAILS THIS SEED TOO'),
  );
  rows.push({ id: m.id, c, secs, controlOk, masked: m.masked?.caughtBy });
}

console.log(`\n| mutant | seeds to catch | first catching seed | checker |`);
console.log(`|---|---:|---:|---|`);
for (const r of rows) {
  console.log(
    r.c === null
      ? r.masked !== undefined
        ? `| ${r.id} | masked (not reachable), ${o.budget} run | - | ${r.masked} |`
        : `| ${r.id} | survived ${o.budget} | - | - |`
      : `| ${r.id} | ${r.c.seeds} | ${r.c.seed} | ${r.c.invariant}${r.controlOk ? '' : ' (control fails too)'} |`,
  );
}
console.log(`\nseeds from ${o.from}, budget ${o.budget} per mutant; wall time ${((Date.now() - started) / 1000).toFixed(0)} s`);
builder.clean();
if (failed) process.exitCode = 1;

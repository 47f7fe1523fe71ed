// Where a leaderd node spends its CPU: reads V8 .cpuprofile files (written by the nodes
// of `npm run bench -- --cpu-prof DIR`) and prints self time by function and by package,
// and the share of samples in which the process was idle (waiting: timers, I/O).
//
//   node dist/bench/profile-summary.js DIR/*.cpuprofile [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** The package or area a script URL belongs to: node_modules/<pkg>, leaderd's src/<dir>, or node: internals. */
export function area(url: string): string {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const src = /\/dist\/src\/([^/]+)\//.exec(url);
  if (src) return `leaderd ${src[1]}`;
  if (url.startsWith('node:')) return 'node internals';
  return url === '' ? '(vm)' : url;
}

export function summarize(p: Profile): { totalMs: number; byFunction: Map<string, number>; byArea: Map<string, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let totalMs = 0;
  p.samples.forEach((id, i) => {
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    totalMs += ms;
    const n = byId.get(id);
    if (!n) return;
    const f = n.callFrame;
    const name = f.functionName.startsWith('(') ? f.functionName : `${f.functionName || '(anonymous)'} ${area(f.url)}:${f.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    const a = f.functionName.startsWith('(') ? f.functionName : area(f.url);
    byArea.set(a, (byArea.get(a) ?? 0) + ms);
  });
  return { totalMs, byFunction, byArea };
}

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  const top = Number(values.top);
  for (const file of positionals) {
    const s = summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile);
    const pct = (ms: number) => `${((100 * ms) / s.totalMs).toFixed(1).padStart(5)}%`;
    console.log(`\n${file}: ${(s.totalMs / 1000).toFixed(1)} s profiled`);
    console.log('  by area:');
    for (const [k, v] of [...s.byArea].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`    ${pct(v)}  ${k}`);
    console.log('  by function (self time):');
    for (const [k, v] of [...s.byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`    ${pct(v)}  ${k}`);
  }
}

if (process.argv[1]?.endsWith('profile-summary.js')) main();

// Test-only builds of the simulator over a mutated core: the TypeScript sources of src/
// and test/sim/ transpiled (no type check: a mutant need not type-check) into a
// directory of their own, with one mutant's edit applied. The build lives under
// node_modules/.cache so that its imports of packages resolve to the repository's
// node_modules, and never next to the real sources or dist/.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import type { Mutant } from './mutants.js';

/** The repository root: the nearest parent holding package.json and src/raft. */
export function repoRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    try {
      readFileSync(join(dir, 'src', 'raft', 'raft.ts'));
      readFileSync(join(dir, 'package.json'));
      return dir;
    } catch {
      const up = dirname(dir);
      if (up === dir) throw new Error(`mutants: no repository root above ${from}`);
      dir = up;
    }
  }
}

/** The source trees a simulator build needs. */
const TREES = ['src', join('test', 'sim')];

/** A mutant's edit that cannot be applied: the table no longer matches the source. */
export class MutantNotApplicable extends Error {
  override readonly name = 'MutantNotApplicable';
}

/** `source` with the mutant's edit; throws unless `find` occurs exactly once. */
export function applyMutant(m: Mutant, source: string): string {
  const first = source.indexOf(m.find);
  if (first < 0) throw new MutantNotApplicable(`mutant ${m.id}: its snippet is not in ${m.file} (the source changed: rewrite the entry)`);
  if (source.indexOf(m.find, first + 1) >= 0)
    throw new MutantNotApplicable(`mutant ${m.id}: its snippet occurs more than once in ${m.file}`);
  return source.slice(0, first) + m.replace + source.slice(first + m.find.length);
}

function listTs(root: string, dir: string, out: string[]): void {
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = join(dir, e.name);
    if (e.isDirectory()) listTs(root, rel, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
  }
}

const OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ES2022,
  esModuleInterop: true,
  sourceMap: false,
  declaration: false,
};

/** The sources transpiled once per process; a build rewrites only the mutated file. */
export class MutantBuilder {
  readonly root: string;
  readonly cacheDir: string;
  private readonly sources = new Map<string, string>();
  private readonly compiled = new Map<string, string>();

  constructor(root = repoRoot()) {
    this.root = root;
    // One directory per process, so a test run and a sweep in the same checkout do not collide.
    this.cacheDir = join(root, 'node_modules', '.cache', 'leaderd-mutants', String(process.pid));
    const files: string[] = [];
    for (const t of TREES) listTs(root, t, files);
    for (const f of files) this.sources.set(f.split(sep).join('/'), readFileSync(join(root, f), 'utf8'));
  }

  /** Throws MutantNotApplicable if the mutant's edit does not apply to the current source. */
  check(m: Mutant): void {
    const src = this.sources.get(m.file);
    if (src === undefined) throw new MutantNotApplicable(`mutant ${m.id}: ${m.file} is not a source of the simulator build`);
    applyMutant(m, src);
  }

  /**
   * Writes a build with `m` applied (null: the unmutated control) and returns the URL of
   * its simulator module, to import().
   */
  build(m: Mutant | null): string {
    if (m !== null) this.check(m);
    const out = join(this.cacheDir, m === null ? 'control' : m.id);
    rmSync(out, { recursive: true, force: true });
    for (const [file, src] of this.sources) {
      const mutated = m !== null && m.file === file;
      const js = mutated ? transpile(file, applyMutant(m, src)) : this.transpiled(file, src);
      const target = join(out, file.replace(/\.ts$/, '.js'));
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, js);
    }
    return pathToFileURL(join(out, 'test', 'sim', 'simulator.js')).href;
  }

  /** Removes every build. */
  clean(): void {
    rmSync(this.cacheDir, { recursive: true, force: true });
  }

  private transpiled(file: string, src: string): string {
    let js = this.compiled.get(file);
    if (js === undefined) this.compiled.set(file, (js = transpile(file, src)));
    return js;
  }
}

function transpile(file: string, src: string): string {
  const r = ts.transpileModule(src, { compilerOptions: OPTIONS, fileName: file, reportDiagnostics: true });
  const errors = (r.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    const text = errors.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('; ');
    throw new Error(`mutants: ${file} does not parse after the edit: ${text}`);
  }
  return r.outputText;
}

// The recent drill runs for the dashboard: the result files `leaderd drill` saves under a
// drills directory (<data dir>/drills/<time>.json), newest first. The directory is listed
// at most every few seconds and each file parsed once per (size, mtime), with bounds on
// how many files and how many bytes are read, so a directory full of junk costs little
// and a malformed file shows as unreadable instead of breaking the page.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DrillResult } from '../drill/result.js';
import type { DrillRunSummary } from './snapshot.js';

/** Runs listed on the dashboard. */
export const MAX_DRILL_RUNS = 20;
/** A drill result larger than this is not read (a 20-trial drill at full rate is a few MB). */
export const MAX_DRILL_FILE_BYTES = 32 * 1024 * 1024;
const LIST_EVERY_MS = 3000;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$/;

export class DrillRuns {
  private listedAt = -Infinity;
  private listed: readonly DrillRunSummary[] = [];
  private readonly parsed = new Map<string, { key: string; summary: DrillRunSummary }>();

  constructor(
    private readonly dir: string,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** The newest runs, newest first (cached for a few seconds). */
  list(): readonly DrillRunSummary[] {
    if (this.now() - this.listedAt < LIST_EVERY_MS) return this.listed;
    this.listedAt = this.now();
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => NAME_RE.test(n));
    } catch {
      names = [];
    }
    // File names are ISO times with ':' and '.' replaced: they sort by time.
    names.sort().reverse();
    const keep = names.slice(0, MAX_DRILL_RUNS);
    for (const n of this.parsed.keys()) if (!keep.includes(n)) this.parsed.delete(n);
    this.listed = keep.map((n) => this.summary(n));
    return this.listed;
  }

  /** A run's full result, by file name as listed; null for a name not listed or a file that is not a drill result. */
  result(name: string): DrillResult | null {
    if (!NAME_RE.test(name)) return null;
    this.listedAt = -Infinity;
    if (!this.list().some((r) => r.name === name && r.error === null)) return null;
    const r = readResult(join(this.dir, name));
    return 'error' in r ? null : r.result;
  }

  private summary(name: string): DrillRunSummary {
    const path = join(this.dir, name);
    let key: string;
    try {
      const st = statSync(path);
      key = `${st.size}:${st.mtimeMs}`;
    } catch (err) {
      return unreadable(name, (err as Error).message);
    }
    const cached = this.parsed.get(name);
    if (cached && cached.key === key) return cached.summary;
    const r = readResult(path);
    const summary: DrillRunSummary =
      'error' in r
        ? unreadable(name, r.error)
        : {
            name,
            startedAt: r.result.startedAt,
            fault: r.result.fault,
            trials: r.result.summary.trials,
            writesLost: r.result.summary.writesLost,
            leaseOverlaps: r.result.summary.leaseOverlaps,
            rtoMedianMs: r.result.summary.rtoMs?.median ?? null,
            rtoMaxMs: r.result.summary.rtoMs?.max ?? null,
            newLeaderMedianMs: r.result.summary.newLeaderMs?.median ?? null,
            error: null,
          };
    this.parsed.set(name, { key, summary });
    return summary;
  }
}

function unreadable(name: string, error: string): DrillRunSummary {
  return {
    name,
    startedAt: null,
    fault: null,
    trials: null,
    writesLost: null,
    leaseOverlaps: null,
    rtoMedianMs: null,
    rtoMaxMs: null,
    newLeaderMedianMs: null,
    error,
  };
}

/** Read and check one result file: the fields the dashboard and the report rely on. */
export function readResult(path: string): { result: DrillResult } | { error: string } {
  try {
    if (statSync(path).size > MAX_DRILL_FILE_BYTES) return { error: `larger than ${MAX_DRILL_FILE_BYTES} bytes` };
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    const problem = drillResultProblem(value);
    return problem === null ? { result: value as DrillResult } : { error: problem };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** Why `v` is not a drill result the report can render, or null. */
export function drillResultProblem(v: unknown): string | null {
  if (typeof v !== 'object' || v === null) return 'not a JSON object';
  const r = v as Record<string, unknown>;
  if (r.version !== 1) return `unknown version ${JSON.stringify(r.version)}`;
  for (const k of ['trials', 'samples', 'leadership'] as const) if (!Array.isArray(r[k])) return `${k} is not a list`;
  if (typeof r.startedAt !== 'string' || Number.isNaN(Date.parse(r.startedAt))) return 'startedAt is not a time';
  if (typeof r.summary !== 'object' || r.summary === null) return 'no summary';
  return null;
}

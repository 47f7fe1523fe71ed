// The dashboard's list of saved drills: newest first, bounded, a junk file shown as
// unreadable, and only listed names ever read.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DrillRuns, MAX_DRILL_RUNS } from '../../src/dashboard/drill-runs.js';
import { renderDrillReport } from '../../src/dashboard/drill-report.js';
import { sampleDrill } from '../browser/sample-drill.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function drillsDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'leaderd-drills-'));
  dirs.push(d);
  return d;
}

describe('drill runs', () => {
  it('lists saved results newest first with their summary, and a junk file as unreadable', () => {
    const dir = drillsDir();
    const older = { ...sampleDrill(), startedAt: '2026-11-29T10:00:00.000Z' };
    writeFileSync(join(dir, '2026-11-29T10-00-00-000Z.json'), JSON.stringify(older));
    writeFileSync(join(dir, '2026-11-30T05-00-00-000Z.json'), JSON.stringify(sampleDrill()));
    writeFileSync(join(dir, '2026-11-30T06-00-00-000Z.json'), '{"version": 7}');
    writeFileSync(join(dir, 'notes.txt'), 'not a result');
    const runs = new DrillRuns(dir).list();
    expect(runs.map((r) => r.name)).toEqual([
      '2026-11-30T06-00-00-000Z.json',
      '2026-11-30T05-00-00-000Z.json',
      '2026-11-29T10-00-00-000Z.json',
    ]);
    expect(runs[0]!.error).toContain('unknown version 7');
    expect(runs[1]).toMatchObject({
      fault: 'kill',
      trials: 3,
      writesLost: 0,
      leaseOverlaps: 0,
      rtoMedianMs: 510,
      rtoMaxMs: 540,
      error: null,
    });
  });

  it('keeps the newest runs only, and an absent directory is an empty list', () => {
    const dir = drillsDir();
    for (let i = 0; i < MAX_DRILL_RUNS + 5; i++) writeFileSync(join(dir, `2026-11-30T05-00-${String(i).padStart(2, '0')}-000Z.json`), '{}');
    const runs = new DrillRuns(dir).list();
    expect(runs).toHaveLength(MAX_DRILL_RUNS);
    expect(runs[0]!.name).toBe(`2026-11-30T05-00-${MAX_DRILL_RUNS + 4}-000Z.json`);
    expect(new DrillRuns(join(dir, 'missing')).list()).toEqual([]);
  });

  it('gives a result only for a listed, readable name: no path reaches another file', () => {
    const dir = drillsDir();
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'x.json'), JSON.stringify(sampleDrill()));
    writeFileSync(join(dir, 'ok.json'), JSON.stringify(sampleDrill()));
    writeFileSync(join(dir, 'junk.json'), '[');
    const runs = new DrillRuns(dir);
    expect(runs.result('ok.json')?.trials).toHaveLength(3);
    for (const name of ['junk.json', 'sub/x.json', '../ok.json', '..%2fok.json', '', 'missing.json']) expect(runs.result(name)).toBeNull();
  });

  it('renders a report whose only outside references are none: everything inlined', () => {
    const html = renderDrillReport(sampleDrill());
    expect(html).not.toMatch(/\b(src|href)=["']?(https?:)?\/\//i);
    expect(html).toContain("default-src 'none'");
    // The hostile trial error is escaped in the table and cannot end the data element.
    expect(html).not.toContain('<script>window.__pwned');
    expect(html.match(/<\/script>/g)).toHaveLength(4);
  });
});

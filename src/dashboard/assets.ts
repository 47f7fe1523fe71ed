// The files the dashboard and the drill report are made of: uPlot from its npm package
// and the page's own scripts and stylesheet, shipped as they are in src/dashboard/static
// (no bundler, no CDN, nothing to build for users). Read once, kept in memory: together
// they are about 80 KB.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
}

const here = dirname(fileURLToPath(import.meta.url));

/** src/dashboard/static, whether this module runs from src (tests) or from dist/src (the package). */
function staticDir(): string {
  const candidates = [join(here, 'static'), join(here, '../../../src/dashboard/static')];
  const dir = candidates.find((d) => existsSync(join(d, 'charts.js')));
  if (!dir) throw new Error(`dashboard assets not found (looked in ${candidates.join(', ')})`);
  return dir;
}

const TYPES = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' } as const;

let cache: ReadonlyMap<string, Asset> | null = null;

/** Every asset by the name the page asks for under /assets/. */
export function dashboardAssets(): ReadonlyMap<string, Asset> {
  if (cache) return cache;
  const require = createRequire(import.meta.url);
  const uplotDir = dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const dir = staticDir();
  const files: [name: string, path: string, type: keyof typeof TYPES][] = [
    ['uPlot.iife.min.js', join(uplotDir, 'uPlot.iife.min.js'), 'js'],
    ['uPlot.min.css', join(uplotDir, 'uPlot.min.css'), 'css'],
    ['charts.js', join(dir, 'charts.js'), 'js'],
    ['dashboard.js', join(dir, 'dashboard.js'), 'js'],
    ['report.js', join(dir, 'report.js'), 'js'],
    ['dashboard.css', join(dir, 'dashboard.css'), 'css'],
  ];
  cache = new Map(files.map(([name, path, type]) => [name, { body: readFileSync(path), contentType: TYPES[type] }]));
  return cache;
}

/** One asset's text, for inlining into the drill report. */
export function assetText(name: string): string {
  const a = dashboardAssets().get(name);
  if (!a) throw new Error(`no dashboard asset ${name}`);
  return a.body.toString('utf8');
}

// Real-process tests run the compiled CLI (dist/src/cli/main.js), and the simulator and
// mutation tests load dist/ too: a run straight after an edit (`npx vitest run test/e2e/x.test.ts`)
// would otherwise test the code as it was at the last build. `npm test` builds first, so
// this finds dist/ fresh and costs a directory walk; otherwise it builds once, here.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const BUILT = join(ROOT, 'dist', 'src', 'cli', 'main.js');

/** The newest modification time of a .ts or .proto file under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith('.ts') || e.name.endsWith('.proto')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

export default function setup(): void {
  const sources = Math.max(...['src', 'test', 'bench', 'examples', 'scripts', 'proto'].map((d) => newest(join(ROOT, d))));
  if (existsSync(BUILT) && statSync(BUILT).mtimeMs >= sources) return;
  console.log('dist/ is older than the sources: building it (tsc -p tsconfig.json) before the tests run');
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')], {
    stdio: 'inherit',
  });
}

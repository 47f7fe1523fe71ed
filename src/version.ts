// The version of this leaderd, from package.json. The compiled file runs from dist/src/,
// the sources from src/ (vitest), so the file is found by walking up rather than by a
// fixed relative path.
import { readFileSync } from 'node:fs';

function readVersion(): string {
  let dir = new URL('.', import.meta.url);
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'leaderd' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: one level up
    }
    dir = new URL('..', dir);
  }
  throw new Error('leaderd: package.json not found next to the installed files');
}

export const VERSION = readVersion();

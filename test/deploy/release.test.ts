// Release basics a packager or operator checks first: the version the binary reports is
// the one in package.json, the license file is the one package.json declares, and the
// changelog has a section for the release.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { runCli } from '../e2e/cluster.js';
import { VERSION } from '../../src/version.js';

const root = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string; license: string };

describe('release basics', () => {
  it('leaderd --version and -V print the package.json version and exit 0', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(pkg.version);
    }
    expect(VERSION).toBe(pkg.version);
  });

  it('LICENSE is the full Apache License 2.0 text that package.json declares', () => {
    expect(pkg.license).toBe('Apache-2.0');
    const text = readFileSync(new URL('LICENSE', root), 'utf8');
    expect(text).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    // All nine sections and the end marker: not an abbreviated notice.
    for (let s = 1; s <= 9; s++) expect(text).toMatch(new RegExp(`\\n\\s+${s}\\. [A-Z]`));
    expect(text).toContain('END OF TERMS AND CONDITIONS');
  });

  it('CHANGELOG.md has a section for the released version', () => {
    const text = readFileSync(new URL('CHANGELOG.md', root), 'utf8');
    expect(text).toContain(`## [${pkg.version}]`);
  });
});

// Runs every script in test/raft/testdata (see interaction.ts for the format).
// UPDATE=1 npx vitest run test/raft/interaction.test.ts rewrites the expected output.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseScript, runScriptFile } from './interaction.js';

const dir = join(import.meta.dirname, 'testdata');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort();

describe('interaction scripts', () => {
  it('there are scripts to run', () => {
    expect(files.length).toBeGreaterThanOrEqual(7);
  });

  it.each(files)('%s', (file) => {
    const { expected, actual } = runScriptFile(join(dir, file));
    expect(parseScript(expected).steps.length).toBeGreaterThan(0);
    expect(actual).toBe(expected);
  });
});

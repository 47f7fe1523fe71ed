import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Builds dist/ when a source is newer: real-process tests must never run stale code.
    globalSetup: ['test/global-setup.ts'],
  },
});

// The memory settings a node starts with (src/server/memory-tuning.ts): malloc's fixed
// mmap threshold comes from the environment its launcher gives it, V8's heap growth is
// bounded by the node itself, and an operator's own choice of either is kept.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  heapGrowingPercent,
  HEAP_GROWING_PERCENT,
  MALLOC_MMAP_THRESHOLD_BYTES,
  mallocTuned,
  nodeProcessEnv,
  NODE_MEMORY_FLAGS,
} from '../../src/server/memory-tuning.js';
import { freePort } from '../e2e/cluster.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const LAUNCHER = [resolve(here, '../../bin/leaderd'), resolve(here, '../../../bin/leaderd')].find((p) => !p.includes('/dist/bin/'))!;

describe('nodeProcessEnv / mallocTuned', () => {
  it("fixes the threshold when the environment leaves it alone, and keeps an operator's", () => {
    expect(nodeProcessEnv({ PATH: '/bin' })).toEqual({ PATH: '/bin', MALLOC_MMAP_THRESHOLD_: String(MALLOC_MMAP_THRESHOLD_BYTES) });
    expect(nodeProcessEnv({ MALLOC_MMAP_THRESHOLD_: '65536' })['MALLOC_MMAP_THRESHOLD_']).toBe('65536');
    const tunable = { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=262144' };
    expect(nodeProcessEnv(tunable)).toEqual(tunable);
    expect(mallocTuned({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' })).toBe(false);
  });
});

describe('heapGrowingPercent', () => {
  it('reads the heap growth a node was started with; the last flag wins, as in V8', () => {
    expect(heapGrowingPercent(['--enable-source-maps'])).toBeNull();
    expect(heapGrowingPercent([...NODE_MEMORY_FLAGS])).toBe(HEAP_GROWING_PERCENT);
    expect(heapGrowingPercent([...NODE_MEMORY_FLAGS, '--heap_growing_percent=80'])).toBe(80);
  });
});

describe('bin/leaderd', () => {
  const dirs: string[] = [];
  const pids: number[] = [];
  afterEach(() => {
    for (const pid of pids.splice(0))
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** Starts a one-member node through the launcher; resolves with its 'memory settings' log record. */
  async function memorySettings(env: NodeJS.ProcessEnv): Promise<{ heapGrowingPercent: number | null; mallocThreshold: string | null }> {
    const dir = mkdtempSync(join(tmpdir(), 'leaderd-launcher-'));
    dirs.push(dir);
    const [peer, client] = [await freePort(), await freePort()];
    const proc = spawn(
      LAUNCHER,
      [
        'start',
        '--id',
        'n1',
        '--data-dir',
        join(dir, 'n1'),
        '--listen-peer',
        `127.0.0.1:${peer}`,
        '--listen-client',
        `127.0.0.1:${client}`,
        '--peers',
        `n1=127.0.0.1:${peer}`,
        '--cluster-id',
        'launcher',
        '--log-level',
        'info',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'], ...env } },
    );
    pids.push(proc.pid!);
    let out = '';
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`no 'memory settings' line within 15 s: ${out}`)), 15_000);
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const line = out.split('\n').find((l) => l.includes('"memory settings"'));
        if (line === undefined) return;
        clearTimeout(timer);
        resolvePromise(JSON.parse(line) as { heapGrowingPercent: number | null; mallocThreshold: string | null });
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited ${code} before its memory settings: ${out}`));
      });
    });
  }

  it("starts the node with malloc's threshold fixed and V8's heap growth bounded, as memory-tuning.ts says", async () => {
    const s = await memorySettings({});
    expect(s.mallocThreshold).toBe(String(MALLOC_MMAP_THRESHOLD_BYTES));
    expect(s.heapGrowingPercent).toBe(HEAP_GROWING_PERCENT);
  });

  it("keeps the operator's own threshold and heap growth", async () => {
    const s = await memorySettings({ MALLOC_MMAP_THRESHOLD_: '65536', LEADERD_NODE_FLAGS: '--heap-growing-percent=80' });
    expect(s.mallocThreshold).toBe('65536');
    expect(s.heapGrowingPercent).toBe(80);
  });
});

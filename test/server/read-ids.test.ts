// Scenario: a follower sends ReadIndex request "n2/1", restarts, and its first new read
// is "n2/1" again. The leader's answer to the old request (delayed in a stream, or sent
// just before the restart) then resolves the new read with an index from before it was
// issued, and the read can miss a write acknowledged in between. Read ids therefore carry
// a per-boot random id.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RaftNode } from '../../src/raft/raft.js';
import { LeaderdNode } from '../../src/server/node.js';
import { freePort, waitFor } from '../e2e/cluster.js';
import { singleNodeOptions } from './single-node.js';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function bootAndRead(dataDir: string, peer: string): Promise<string[]> {
  // A spy calls through to the real core; it only records the ids the runtime chose.
  const spy = vi.spyOn(RaftNode.prototype, 'readIndex');
  const node = await LeaderdNode.start(singleNodeOptions(dataDir, peer));
  try {
    await waitFor('leader', () => (node.isLeader() ? true : undefined), 5000);
    await node.readBarrier(AbortSignal.timeout(3000));
    await node.readBarrier(AbortSignal.timeout(3000));
  } finally {
    await node.stop({ transfer: false });
  }
  const ids = spy.mock.calls.map(([requestId]) => requestId);
  spy.mockRestore();
  return ids;
}

describe('ReadIndex request ids', () => {
  it('never repeat across restarts of the same node on the same data dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'leaderd-readids-'));
    dirs.push(dir);
    const peer = `127.0.0.1:${await freePort()}`;
    const first = await bootAndRead(dir, peer);
    const second = await bootAndRead(dir, peer);
    expect(first).toHaveLength(2);
    expect(second).toHaveLength(2);
    // Unique within a boot, and no id of the second boot was used by the first.
    expect(new Set(first).size).toBe(2);
    for (const id of second) expect(first).not.toContain(id);
  });
});

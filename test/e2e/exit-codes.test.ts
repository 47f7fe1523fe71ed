// What a supervisor sees: a refusal (bad configuration, a data dir of another cluster or
// node) exits 2, a runtime failure exits 1, and the shipped systemd unit restarts the
// second and not the first. systemd itself is not available in CI, so its documented
// rule for Restart=on-failure + RestartPreventExitStatus= (systemd.service(5)) is applied
// to the exit of real `leaderd start` processes.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster, freePort, lines, runCli, type Exit } from './cluster.js';

const here = dirname(fileURLToPath(import.meta.url));
const UNIT = [resolve(here, '../../cluster/three-hosts/leaderd.service'), resolve(here, '../../../cluster/three-hosts/leaderd.service')];

const root = mkdtempSync(join(tmpdir(), 'leaderd-e2e-exit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The [Service] settings of a unit file (last assignment wins, as in systemd). */
function serviceSettings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const m = /^\[(.+)\]$/.exec(line);
    if (m) section = m[1]!;
    else if (section === 'Service') {
      const eq = line.indexOf('=');
      out.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
    }
  }
  return out;
}

const CLEAN_SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE']);

/** systemd's decision after the main process exited (timeouts and watchdog aside). */
function systemdRestarts(unit: Map<string, string>, exit: Exit): boolean {
  const prevent = (unit.get('RestartPreventExitStatus') ?? '').split(/\s+/).filter((x) => x !== '');
  if (exit.code !== null && prevent.includes(String(exit.code))) return false;
  if (exit.signal !== null && prevent.includes(exit.signal)) return false;
  const clean = exit.code === 0 || (exit.signal !== null && CLEAN_SIGNALS.has(exit.signal));
  switch (unit.get('Restart') ?? 'no') {
    case 'no':
      return false;
    case 'always':
      return true;
    case 'on-failure':
      return !clean;
    case 'on-abnormal':
      return exit.signal !== null && !CLEAN_SIGNALS.has(exit.signal);
    default:
      throw new Error(`this test does not model Restart=${unit.get('Restart')}`);
  }
}

async function startArgs(id: string, dataDir: string, clusterId: string, over: Record<string, string> = {}): Promise<string[]> {
  const peer = `127.0.0.1:${await freePort()}`;
  const flags: Record<string, string> = {
    '--id': id,
    '--data-dir': dataDir,
    '--cluster-id': clusterId,
    '--listen-peer': peer,
    '--listen-client': `127.0.0.1:${await freePort()}`,
    '--peers': `${id}=${peer}`,
    '--log-level': 'error',
    ...over,
  };
  return ['start', ...Object.entries(flags).flat()];
}

describe('exit codes and the systemd unit', () => {
  const unitPath = UNIT.find((p) => {
    try {
      readFileSync(p);
      return true;
    } catch {
      return false;
    }
  })!;
  const unit = serviceSettings(readFileSync(unitPath, 'utf8'));

  it('the rule this test applies is systemd’s: it catches a unit that would loop on a refusal, or never restart a crash', () => {
    const loops = new Map([['Restart', 'on-failure']]);
    expect(systemdRestarts(loops, { code: 2, signal: null })).toBe(true);
    const never = new Map([
      ['Restart', 'on-failure'],
      ['RestartPreventExitStatus', '1 2'],
    ]);
    expect(systemdRestarts(never, { code: 1, signal: null })).toBe(false);
    expect(systemdRestarts(never, { code: null, signal: 'SIGKILL' })).toBe(true);
    expect(systemdRestarts(never, { code: null, signal: 'SIGTERM' })).toBe(false);
  });

  it('a refusal exits 2 and is not restarted; a runtime failure (exit 1) and a SIGKILL crash are restarted; a clean stop (exit 0) is not', async () => {
    const badConfig = await runCli(await startArgs('n1', join(root, 'bad'), 'alpha', { '--listen-client': 'bad' }));
    expect(badConfig.code).toBe(2);
    expect(systemdRestarts(unit, badConfig)).toBe(false);

    // A data dir of cluster "e2e", then pointed at by cluster "beta": refused.
    const c = await LocalCluster.create({ nodes: 1 });
    try {
      c.startAll();
      await c.waitForLeader();
      const clean = await c.terminate('n1');
      expect(clean.code).toBe(0);
      expect(systemdRestarts(unit, clean)).toBe(false);
      const otherCluster = await runCli(await startArgs('n1', c.spec('n1').dataDir, 'beta'));
      expect(otherCluster.code).toBe(2);
      expect(lines(otherCluster.stderr)).toHaveLength(1);
      expect(systemdRestarts(unit, otherCluster)).toBe(false);
    } finally {
      await c.stop();
    }

    // The client port is taken by another program: a runtime failure, worth retrying.
    const blocker: Server = createServer();
    const taken = await new Promise<number>((res) =>
      blocker.listen(0, '127.0.0.1', () => res((blocker.address() as { port: number }).port)),
    );
    try {
      const portTaken = await runCli(await startArgs('n9', join(root, 'n9'), 'alpha', { '--listen-client': `127.0.0.1:${taken}` }));
      expect(portTaken.code).toBe(1);
      expect(lines(portTaken.stderr)).toHaveLength(1);
      expect(systemdRestarts(unit, portTaken)).toBe(true);
    } finally {
      blocker.close();
    }

    expect(systemdRestarts(unit, { code: null, signal: 'SIGKILL' })).toBe(true);
  });
});

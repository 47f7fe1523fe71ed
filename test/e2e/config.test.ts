// `leaderd start` configuration as a supervisor sees it: bad usage or configuration is
// exit code 2 with exactly one line on stderr naming the problem, and nothing is
// created on disk; flags override the config file.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterClient } from '../../src/client/cluster-client.js';
import { CLI, exitOf, freePort, lines, runCli, waitFor } from './cluster.js';

const root = mkdtempSync(join(tmpdir(), 'leaderd-e2e-config-'));
const procs: ChildProcess[] = [];
const clients: ClusterClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(
    procs.splice(0).map(async (p) => {
      const exit = exitOf(p, 10_000).catch(() => undefined);
      p.kill('SIGKILL');
      await exit;
    }),
  );
});
// Files for the bad-usage cases are made once and removed after the file's last test. (An
// 'exit' handler never ran: vitest ends its fork workers without a normal exit, so every
// run left this directory behind in the temp dir.)
afterAll(() => rmSync(root, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const p = join(root, name);
  writeFileSync(p, content);
  return p;
}

describe('bad flags and configuration: exit code 2, one line on stderr naming the problem, nothing written', () => {
  const cases: { name: string; args: () => string[]; stderr: RegExp }[] = [
    { name: 'unknown flag', args: () => ['--id', 'n1', '--bogus-flag', 'x'], stderr: /unknown option '--bogus-flag'/ },
    { name: 'missing --id', args: () => [], stderr: /--id is required/ },
    {
      name: 'bad address',
      args: () => ['--id', 'n1', '--listen-client', 'localhost'],
      stderr: /--listen-client must be host:port, got 'localhost'/,
    },
    {
      name: 'port out of range',
      args: () => ['--id', 'n1', '--listen-peer', '127.0.0.1:70000'],
      stderr: /--listen-peer must be host:port, got '127\.0\.0\.1:70000'/,
    },
    {
      name: '--peers without this node',
      args: () => ['--id', 'n1', '--peers', 'n2=127.0.0.1:7102,n3=127.0.0.1:7103'],
      stderr: /--peers must include this node \(n1=/,
    },
    {
      name: 'heartbeat more than a third of the election timeout',
      args: () => ['--id', 'n1', '--heartbeat-ms', '200', '--election-timeout-ms', '500'],
      stderr: /--election-timeout-ms \(500\) must be at least 3x --heartbeat-ms \(200\)/,
    },
    {
      name: 'bad --listen-metrics',
      args: () => ['--id', 'n1', '--listen-metrics', '9090'],
      stderr: /--listen-metrics must be host:port, got '9090'/,
    },
    { name: 'bad --log-level', args: () => ['--id', 'n1', '--log-level', 'loud'], stderr: /--log-level must be one of .*got 'loud'/ },
    {
      name: 'config file that is not JSON',
      args: () => ['--config', file('not-json.json', 'id = "n1"\n')],
      stderr: /config file .*not-json\.json is not valid JSON/,
    },
    {
      name: 'config file with an unknown key',
      args: () => ['--config', file('unknown-key.json', JSON.stringify({ id: 'n1', 'heartbeat-millis': 50 }))],
      stderr: /config file .*unknown-key\.json: unknown setting 'heartbeat-millis'/,
    },
    {
      name: 'config file that does not exist',
      args: () => ['--id', 'n1', '--config', join(root, 'missing.json')],
      stderr: /cannot read config file .*missing\.json: ENOENT/,
    },
  ];

  describe.concurrent('leaderd start', () => {
    for (const c of cases) {
      it(`${c.name} -> exit 2`, async ({ expect }) => {
        // Every case names a data dir and free ports, so a missed check would start a node (and be killed by runCli's timeout).
        const dataDir = join(root, `data-${c.name.replace(/\W+/g, '-')}`);
        const args = [
          'start',
          '--data-dir',
          dataDir,
          '--listen-peer',
          `127.0.0.1:${await freePort()}`,
          '--listen-client',
          `127.0.0.1:${await freePort()}`,
          ...c.args(),
        ];
        const r = await runCli(args, { timeoutMs: 10_000 });
        expect(r.code, `stderr: ${r.stderr}`).toBe(2);
        expect(lines(r.stderr)).toHaveLength(1);
        expect(r.stderr).toMatch(/^leaderd: /);
        expect(r.stderr).toMatch(c.stderr);
        expect(r.stdout).toBe('');
        expect(existsSync(dataDir)).toBe(false);
      });
    }
  });
});

describe('configuration precedence', () => {
  it('flags override the config file (id, client address, log level), and the file supplies the rest (cluster id, peers, peer address)', async () => {
    const peer = `127.0.0.1:${await freePort()}`;
    const fileClient = `127.0.0.1:${await freePort()}`;
    const flagClient = `127.0.0.1:${await freePort()}`;
    const dataDir = join(root, 'precedence-data');
    const logPath = join(root, 'precedence.log');
    const config = file(
      'precedence.json',
      JSON.stringify({
        id: 'from-file',
        'data-dir': dataDir,
        'listen-peer': peer,
        'listen-client': fileClient,
        // Valid only for the id the flag gives: the file alone would be refused.
        peers: `from-flag=${peer}`,
        'cluster-id': 'file-cluster',
        // Invalid on its own: the flag must win before validation.
        'log-level': 'loud',
        'heartbeat-ms': 50,
        'election-timeout-ms': 300,
      }),
    );
    const fd = openSync(logPath, 'a');
    const proc = spawn(
      process.execPath,
      [CLI, 'start', '--config', config, '--id', 'from-flag', '--listen-client', flagClient, '--log-level', 'info'],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    procs.push(proc);

    const client = new ClusterClient([flagClient], { timeoutMs: 1000 });
    clients.push(client);
    // A one-node cluster elects itself.
    const status = await waitFor("the node to lead on the flag's client address", async () => {
      const s = await client.getStatus(flagClient);
      return s.role === 'leader' ? s : undefined;
    });
    expect(status.nodeId).toBe('from-flag');
    const members = await client.listMembers();
    expect(members.map((m) => ({ id: m.id, peerAddress: m.peerAddress, clientAddress: m.clientAddress }))).toEqual([
      { id: 'from-flag', peerAddress: peer, clientAddress: flagClient },
    ]);
    // Nothing listens on the file's client address.
    const fileSide = new ClusterClient([fileClient], { timeoutMs: 500 });
    clients.push(fileSide);
    await expect(fileSide.getStatus(fileClient)).rejects.toMatchObject({ code: 14 });
    // The file's cluster id and data dir were used.
    const started = lines(readFileSync(logPath, 'utf8'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'node started');
    expect(started).toMatchObject({ node: 'from-flag', cluster: 'file-cluster', peer, client: flagClient });
    expect(existsSync(join(dataDir, 'raft'))).toBe(true);

    const exit = exitOf(proc, 10_000);
    proc.kill('SIGTERM');
    expect(await exit).toEqual({ code: 0, signal: null });
  });
});

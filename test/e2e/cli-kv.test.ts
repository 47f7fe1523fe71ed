// The coordination commands of the CLI against a real 3-node cluster: keys, compare-and-
// swap, transactions, key watches, leases, and the inspection of elections and locks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { LeaderdClient } from '../../src/client/leaderd-client.js';
import { CLI, LocalCluster, exitOf, lines, runCli, waitFor } from './cluster.js';

let cluster: LocalCluster;
let all: string;
let client: LeaderdClient;

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3 });
  cluster.startAll();
  await cluster.waitForLeader();
  all = cluster.endpoints().join(',');
  client = new LeaderdClient({ endpoints: cluster.endpoints() });
});
afterAll(async () => {
  client?.close();
  await cluster?.stop();
});

/** The CLI against the whole cluster. */
const cli = (args: string[], input?: string) =>
  input === undefined
    ? runCli([...args, '--endpoints', all])
    : new Promise<Awaited<ReturnType<typeof runCli>>>((resolve, reject) => {
        const p = spawn(process.execPath, [CLI, ...args, '--endpoints', all], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        p.once('error', reject);
        p.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
        p.stdin.end(input);
      });

describe('leaderd get/put/del', () => {
  it('writes and reads text values, lists a prefix as a table and as JSON, deletes by prefix; a missing key is exit 1', async () => {
    const put = await cli(['put', 'cfg/mode', 'active']);
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toMatch(/^OK \(revision \d+\)\n$/);
    expect((await cli(['put', 'cfg/name', 'wörld ünïcode'])).code).toBe(0);
    expect((await cli(['put', 'cfg/blob', '-'], 'from stdin\n')).code).toBe(0);

    const get = await cli(['get', 'cfg/mode']);
    expect(get).toMatchObject({ code: 0, stdout: 'active\n', stderr: '' });
    expect((await cli(['get', 'cfg/name'])).stdout).toBe('wörld ünïcode\n');
    expect((await cli(['get', 'cfg/blob'])).stdout).toBe('from stdin\n\n');
    expect((await cli(['get', 'cfg/mode', '--base64'])).stdout).toBe(`${Buffer.from('active').toString('base64')}\n`);

    const table = await cli(['get', 'cfg/', '--prefix']);
    expect(table.code, table.stderr).toBe(0);
    const rows = lines(table.stdout).map((l) => l.split(/\s{2,}/));
    expect(rows[0]).toEqual(['KEY', 'VALUE', 'MOD-REV', 'VERSION', 'LEASE']);
    expect(rows.slice(1).map((r) => [r[0], r[1]])).toEqual([
      ['cfg/blob', 'from stdin\\n'],
      ['cfg/mode', 'active'],
      ['cfg/name', 'wörld ünïcode'],
    ]);
    const json = JSON.parse((await cli(['get', 'cfg/', '--prefix', '--json'])).stdout) as {
      kvs: { key: string; value: string; version: number }[];
    };
    expect(json.kvs.map((k) => `${k.key}=${k.value}@${k.version}`)).toEqual([
      'cfg/blob=from stdin\n@1',
      'cfg/mode=active@1',
      'cfg/name=wörld ünïcode@1',
    ]);
    expect((await client.get('cfg/mode')).kv?.value.toString()).toBe('active');

    const missing = await cli(['get', 'cfg/nope']);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(lines(missing.stderr)).toEqual(['leaderd: cfg/nope: no such key']);

    const del = await cli(['del', 'cfg/', '--prefix', '--json']);
    expect(del.code, del.stderr).toBe(0);
    expect(JSON.parse(del.stdout)).toMatchObject({ deleted: 3 });
    expect((await client.range('cfg/')).kvs).toEqual([]);
  });

  it('an input the server refuses is one clean line, exit 2', async () => {
    const empty = await cli(['put', '', 'x']);
    expect(empty.code).toBe(2);
    expect(lines(empty.stderr)).toEqual(['leaderd: key is empty']);
    const reserved = await cli(['put', '_leaderd/x', 'y']);
    expect(reserved.code).toBe(2);
    expect(lines(reserved.stderr)).toHaveLength(1);
    expect(reserved.stderr).toMatch(/^leaderd: key '_leaderd\/x' is under _leaderd\//);
    expect(reserved.stderr).not.toMatch(/INVALID_ARGUMENT|^3 /);
  });
});

describe('leaderd cas and txn', () => {
  it('cas succeeds only on the expected value, else exit 1 with the current value; txn runs one branch and exits 1 on the failure branch', async () => {
    expect((await cli(['cas', 'owner', 'a', '--expect-absent'])).code).toBe(0);
    const lost = await cli(['cas', 'owner', 'b', '--expect-absent']);
    expect(lost.code).toBe(1);
    expect(lines(lost.stderr)).toEqual([expect.stringMatching(/^leaderd: cas failed: owner is 'a' \(mod revision \d+\)$/)]);
    const swap = await cli(['cas', 'owner', 'b', '--expect', 'a', '--json']);
    expect(swap.code, swap.stderr).toBe(0);
    expect(JSON.parse(swap.stdout)).toMatchObject({ succeeded: true });
    expect((await client.get('owner')).kv?.value.toString()).toBe('b');
    const usage = await cli(['cas', 'owner', 'c']);
    expect(usage.code).toBe(2);

    const spec = (operand: string) =>
      JSON.stringify({
        compare: [{ key: 'owner', target: 'value', op: '=', operand }],
        success: [{ type: 'put', key: 'txn/ok', value: 'yes' }],
        failure: [{ type: 'get', key: 'owner' }],
      });
    const ok = await cli(['txn'], spec('b'));
    expect(ok.code, ok.stderr).toBe(0);
    expect(lines(ok.stdout)[0]).toBe('SUCCESS');
    expect((await client.get('txn/ok')).kv?.value.toString()).toBe('yes');
    const no = await cli(['txn', '--json'], spec('zzz'));
    expect(no.code).toBe(1);
    expect(JSON.parse(no.stdout)).toMatchObject({ succeeded: false, responses: [{ type: 'get', kv: { key: 'owner', value: 'b' } }] });
    const bad = await cli(['txn'], '{"compare":[{"key":"k","target":"colour","op":"="}]}');
    expect(bad.code).toBe(2);
    expect(lines(bad.stderr)).toEqual([
      'leaderd: txn: compare[0].target must be one of value, version, createRevision, modRevision, lease',
    ]);
  });
});

describe('leaderd watch --key', () => {
  it('prints each PUT and DELETE under a prefix in revision order; the leadership watch is unchanged without --key', async () => {
    const watch = spawn(process.execPath, [CLI, 'watch', '--key', 'w/', '--prefix', '--endpoints', all], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exit = exitOf(watch, 30_000);
    let out = '';
    watch.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      // The watch starts after the process has read the current revision; write until it sees one.
      const first = await waitFor(
        'the watch to see a write',
        async () => {
          await client.put('w/probe', 'p');
          return out.includes('PUT w/probe p') ? true : undefined;
        },
        20_000,
        300,
      );
      expect(first).toBe(true);
      const a = await client.put('w/a', '1');
      const d = await client.delete('w/a');
      await client.put('other', 'x');
      await waitFor('the delete to be printed', () => (out.includes(`${d.revision} DELETE w/a`) ? true : undefined), 10_000);
      expect(out).toContain(`${a.revision} PUT w/a 1\n${d.revision} DELETE w/a\n`);
      expect(out).not.toContain('other');
    } finally {
      watch.kill('SIGINT');
    }
    expect(await exit).toEqual({ code: 0, signal: null });
  });
});

describe('leaderd lease', () => {
  it('grant, attach a key, ttl with keys, keep-alive once, revoke deletes the key; a gone lease is exit 1', async () => {
    const grant = await cli(['lease', 'grant', '30000', '--json']);
    expect(grant.code, grant.stderr).toBe(0);
    const { id, ttlMs } = JSON.parse(grant.stdout) as { id: number; ttlMs: number };
    expect(ttlMs).toBe(30000);
    expect((await cli(['put', 'sess/a', 'here', '--lease', String(id)])).code).toBe(0);
    const ttl = await cli(['lease', 'ttl', String(id), '--keys']);
    expect(ttl.code, ttl.stderr).toBe(0);
    expect(ttl.stdout).toMatch(new RegExp(`^lease ${id}: \\d+ ms left of 30000 ms; keys: sess/a\\n$`));
    const ka = await cli(['lease', 'keep-alive', String(id), '--once']);
    expect(ka.code, ka.stderr).toBe(0);
    expect(ka.stdout).toBe(`lease ${id} kept alive: TTL 30000 ms\n`);
    expect((await cli(['lease', 'revoke', String(id)])).code).toBe(0);
    expect((await client.get('sess/a')).kv).toBeNull();
    const gone = await cli(['lease', 'ttl', String(id)]);
    expect(gone.code).toBe(1);
    expect(lines(gone.stderr)).toEqual([`leaderd: lease ${id} does not exist (expired or revoked)`]);
    const kaGone = await cli(['lease', 'keep-alive', String(id)]);
    expect(kaGone.code).toBe(1);
    const badId = await cli(['lease', 'ttl', 'abc']);
    expect(badId.code).toBe(2);
  });
});

describe('leaderd election and lock inspection', () => {
  it('shows the holder with its fencing token and the waiters in grant order', async () => {
    const other = new LeaderdClient({ endpoints: cluster.endpoints() });
    try {
      const leadership = await client.campaign('primary', 'host-a', { ttlMs: 10_000 });
      const waiting = other.campaign('primary', 'host-b', { ttlMs: 10_000 });
      waiting.catch(() => {});
      const st = await waitFor(
        'the second campaigner to queue',
        async () => {
          const r = await cli(['election', 'primary', '--json']);
          const j = JSON.parse(r.stdout) as { holder: { value: string; token: number } | null; waiting: { value: string }[] };
          return j.waiting.length === 1 ? j : undefined;
        },
        15_000,
        200,
      );
      expect(st.holder).toMatchObject({ value: 'host-a', token: leadership.token });
      expect(st.waiting.map((w) => w.value)).toEqual(['host-b']);
      const text = await cli(['election', 'primary']);
      const rows = lines(text.stdout).map((l) => l.split(/\s+/));
      expect(rows.map((r) => [r[0], r[4]])).toEqual([
        ['STATE', 'VALUE'],
        ['holder', 'host-a'],
        ['waiting', 'host-b'],
      ]);
      await leadership.resign();
      const next = await waiting;
      await next.resign();

      const lock = await client.lock('report', { ttlMs: 10_000 });
      const held = await cli(['lock', 'report']);
      expect(held.code, held.stderr).toBe(0);
      expect(lines(held.stdout)[1]!.split(/\s+/)).toEqual(['holder', lock.key, String(lock.lease.id), String(lock.token)]);
      await lock.unlock();
      expect((await cli(['lock', 'report'])).stdout).toBe('nobody holds lock report\n');
    } finally {
      other.close();
    }
  });
});

describe('every client command', () => {
  it('takes --endpoints and --json', async () => {
    const commands = [
      ['leader'],
      ['status'],
      ['health'],
      ['members', 'list'],
      ['members', 'add'],
      ['members', 'remove'],
      ['members', 'promote'],
      ['transfer'],
      ['watch'],
      ['get'],
      ['put'],
      ['del'],
      ['cas'],
      ['txn'],
      ['lease', 'grant'],
      ['lease', 'revoke'],
      ['lease', 'ttl'],
      ['lease', 'keep-alive'],
      ['election'],
      ['lock'],
    ];
    for (const c of commands) {
      const r = await runCli([...c, '--help']);
      expect(r.code, c.join(' ')).toBe(0);
      expect(r.stdout, c.join(' ')).toContain('--endpoints <list>');
      expect(r.stdout, c.join(' ')).toContain('--json');
    }
  });
});

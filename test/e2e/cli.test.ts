// The `leaderd` CLI as an operator uses it: `leaderd local` for a whole cluster on one
// machine, and the client commands against a running cluster.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localClientAddress, localMetricsAddress, localPeerAddress } from '../../src/cli/local-ports.js';
import type { LeaderInfo } from '../../src/client/cluster-client.js';
import {
  CLI,
  LocalCluster,
  alive,
  exitOf,
  freeBasePort,
  freePort,
  lines,
  pidsInLogs,
  portFree,
  runCli,
  sleep,
  waitFor,
} from './cluster.js';

const PKG_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

let cluster: LocalCluster | null = null;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) console.error(cluster.logTails());
  for (const f of cleanups.splice(0).reverse()) await f();
  await cluster?.stop();
  cluster = null;
});

/** Collects a child's stdout; `waitFor(re)` resolves with the first match. */
function watchStdout(proc: ChildProcess): { text: () => string; waitFor: (re: RegExp, timeoutMs: number) => Promise<RegExpMatchArray> } {
  let buf = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (buf += d));
  return {
    text: () => buf,
    waitFor: (re, timeoutMs) =>
      waitFor(`stdout to match ${re}`, () => buf.match(re) ?? undefined, timeoutMs, 20).catch((err: Error) => {
        throw new Error(`${err.message}; stdout so far: ${JSON.stringify(buf.slice(-800))}`);
      }),
  };
}

const LOCAL_IDS = ['n1', 'n2', 'n3'];

/**
 * `leaderd local --nodes 3` with `extra` flags on a free --base-port (not the default
 * 7001-7003: a developer's own `npm start` may hold those), stopped with every node it
 * started (found by PID in the logs) whatever the test does.
 */
async function startLocal(extra: string[] = []) {
  const base = await freeBasePort(LOCAL_IDS.length);
  const dir = mkdtempSync(join(tmpdir(), 'leaderd-e2e-local-'));
  const proc = spawn(process.execPath, [CLI, 'local', '--nodes', '3', '--base-port', String(base), '--data-dir', dir, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: false,
  });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const out = watchStdout(proc);
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const e = exitOf(proc, 5000).catch(() => undefined);
      proc.kill('SIGKILL');
      await e;
    }
    for (const pids of pidsInLogs(dir, LOCAL_IDS).values()) for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await sleep(100);
    rmSync(dir, { recursive: true, force: true });
  });
  const endpoints = LOCAL_IDS.map((_, i) => localClientAddress(i + 1, base)).join(',');
  /** SIGINT: exits 0 and every node it started is gone. */
  const interrupt = async () => {
    const childPids = pidsInLogs(dir, LOCAL_IDS);
    for (const id of LOCAL_IDS) expect(childPids.get(id), `pid of ${id} in ${id}.log`).toHaveLength(1);
    const exit = exitOf(proc, 20_000);
    proc.kill('SIGINT');
    expect(await exit).toEqual({ code: 0, signal: null });
    for (const [id, pids] of childPids) expect(alive(pids[0]!), `${id} (pid ${pids[0]}) still running`).toBe(false);
  };
  return { base, dir, proc, out, endpoints, interrupt, stderr: () => stderr };
}

describe('leaderd local', () => {
  it('runs a 3-node cluster on --base-port that `leaderd status` sees, prints no colour codes when piped, and on SIGINT exits 0 leaving no node process behind', async () => {
    const ids = LOCAL_IDS;
    const { base, out, endpoints, interrupt, stderr } = await startLocal();
    const addresses = ids.flatMap((_, i) => [
      localClientAddress(i + 1, base),
      localPeerAddress(i + 1, base),
      localMetricsAddress(i + 1, base),
    ]);

    const m = await out.waitFor(/leader: \S+ -> (n\d) \(term (\d+)\)/, 30_000);
    const [, leaderId, term] = m;
    expect(out.text()).toContain(`export LEADERD_ENDPOINTS=${endpoints}`);
    const st = await runCli(['status', '--endpoints', endpoints, '--json']);
    expect(st.code, st.stderr).toBe(0);
    const rows = JSON.parse(st.stdout) as { address: string; nodeId: string; role: string; term: number; leaderId: string }[];
    expect(rows.map((r) => r.nodeId).sort()).toEqual(ids);
    expect(rows.map((r) => r.address).sort()).toEqual(endpoints.split(','));
    const leaders = rows.filter((r) => r.role === 'leader');
    expect(leaders).toHaveLength(1);
    expect(rows.every((r) => r.leaderId === leaders[0]!.nodeId && r.term === leaders[0]!.term)).toBe(true);
    // Without --endpoints, the client commands take LEADERD_ENDPOINTS.
    const leader = await runCli(['leader', '--json'], { env: { LEADERD_ENDPOINTS: endpoints } });
    expect(leader.code, leader.stderr).toBe(0);
    expect(JSON.parse(leader.stdout)).toMatchObject({
      leaderId: leaders[0]!.nodeId,
      leaderAddress: rows.find((r) => r.role === 'leader')!.address,
    });
    console.log(
      `[e2e] leaderd local: first leader ${leaderId} (term ${term}); status: ${rows.map((r) => `${r.nodeId}=${r.role}`).join(' ')}`,
    );

    // Each node serves its metrics listener on the address `leaderd local` printed.
    for (const [i, id] of ids.entries()) {
      const url = `http://${localMetricsAddress(i + 1, base)}`;
      expect(out.text()).toContain(`${url}/metrics`);
      const metrics = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      expect(metrics).toContain(`leaderd_term{node="${id}"}`);
    }
    // The dashboard URL it printed serves the page, and its JSON names the same leader as status.
    const dash = /dashboard: +(http:\/\/\S+\/)/.exec(out.text());
    expect(dash?.[1]).toBe(`http://${localMetricsAddress(1, base)}/`);
    const page = await fetch(dash![1]!, { signal: AbortSignal.timeout(5000) });
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('/assets/dashboard.js');
    const state = (await (await fetch(`${dash![1]}api/cluster`, { signal: AbortSignal.timeout(5000) })).json()) as {
      snapshot: { members: { id: string; role: string | null }[] };
    };
    expect(state.snapshot.members.map((m) => m.id).sort()).toEqual(ids);

    await interrupt();
    for (const id of ids) expect(out.text()).toContain(`${id}: exited with code 0`);
    expect(stderr()).toBe('');
    // stdout is a pipe here, not a terminal: no live view, no colour or cursor codes.
    expect(out.text()).not.toContain('\x1b');
    for (const a of addresses) expect(await portFree(a), `${a} released`).toBe(true);
  });

  it('--tls: TLS on both listeners and tokens; the exports it prints make the CLI work, a reader cannot write, no token or no CA is refused', async () => {
    const { dir, out, endpoints, interrupt, stderr } = await startLocal(['--tls']);
    // The live view talks to the nodes over TLS with the admin token: a leader line means both work.
    await out.waitFor(/leader: \S+ -> (n\d) \(term (\d+)\)/, 60_000);
    const exp = /export LEADERD_CACERT=(\S+) LEADERD_TOKEN=\$\(cat (\S+)\)/.exec(out.text());
    expect(exp, out.text()).not.toBeNull();
    const [, cacert, tokenFile] = exp!;
    expect(cacert).toBe(join(dir, 'certs', 'ca.crt'));
    const admin = readFileSync(tokenFile!, 'utf8').trim();
    const tokens = (JSON.parse(readFileSync(join(dir, 'certs', 'tokens.json'), 'utf8')) as { tokens: { name: string; token: string }[] })
      .tokens;
    const tokenOf = (name: string) => tokens.find((t) => t.name === name)!.token;
    // Empty values shadow anything the developer's shell exports.
    const env = (token: string, ca = cacert!) => ({
      LEADERD_ENDPOINTS: endpoints,
      LEADERD_CACERT: ca,
      LEADERD_TOKEN: token,
      LEADERD_CERT: '',
      LEADERD_CERT_KEY: '',
    });

    const put = await runCli(['put', 'config/mode', 'blue'], { env: env(admin) });
    expect(put.code, put.stderr).toBe(0);
    const writer = await runCli(['put', 'config/mode', 'green'], { env: env(tokenOf('writer')) });
    expect(writer.code, writer.stderr).toBe(0);
    const read = await runCli(['get', 'config/mode', '--json'], { env: env(tokenOf('reader')) });
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toContain('green');

    const denied = await runCli(['put', 'config/mode', 'red'], { env: env(tokenOf('reader')) });
    expect(denied.code).toBe(1);
    expect(lines(denied.stderr)).toHaveLength(1);
    expect(denied.stderr).toMatch(/permission|needs write/i);
    const anonymous = await runCli(['get', 'config/mode'], { env: env('') });
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/unauthenticated|token/i);
    const plaintext = await runCli(['get', 'config/mode', '--timeout-ms', '1500'], { env: env(admin, '') });
    expect(plaintext.code).not.toBe(0);
    // Nothing the refused calls tried took effect.
    const after = await runCli(['get', 'config/mode', '--json'], { env: env(admin) });
    expect(after.stdout).toContain('green');
    expect(after.stdout).not.toContain('red');

    await interrupt();
    expect(stderr()).toBe('');
  });
});

/**
 * Run `observe` between two identical leader readings: a leader change in between (on a
 * loaded machine) is retried rather than blamed on the command under test.
 */
async function withStableLeader<T>(c: LocalCluster, observe: () => Promise<T>, attempts = 3): Promise<{ l: LeaderInfo; out: T }> {
  for (let i = 0; i < attempts; i++) {
    const before = await c.waitForLeader();
    const out = await observe();
    const after = await c.waitForLeader();
    if (after.leaderId === before.leaderId && after.term === before.term) return { l: before, out };
  }
  throw new Error(`the cluster's leader changed during each of ${attempts} attempts`);
}

describe('client commands against a running cluster', () => {
  it('leader --json, members --json and the status table report the cluster; a dead endpoint listed first is skipped', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    await c.waitForLeader();
    const dead = `127.0.0.1:${await freePort()}`;
    const all = c.endpoints().join(',');

    // One at a time: five CLI processes starting at once would starve the nodes of CPU on a 2-core machine.
    const { l, out: leader } = await withStableLeader(c, () => runCli(['leader', '--json', '--endpoints', all]));
    const members = await runCli(['members', '--json', '--endpoints', all]);
    const { l: l2, out: status } = await withStableLeader(c, () => runCli(['status', '--endpoints', all]));
    const { l: l3, out: leaderViaDead } = await withStableLeader(c, () =>
      runCli(['leader', '--json', '--endpoints', `${dead},${c.endpoint('n2')}`]),
    );
    const statusViaDead = await runCli(['status', '--endpoints', `${dead},${c.endpoint('n3')}`]);
    // Retried: on a loaded machine an election may leave a node without a leader for a moment.
    const health = await waitFor(
      'health to pass',
      async () => {
        const r = await runCli(['health', '--json', '--endpoints', all]);
        if (r.code !== 0) throw new Error(`health exited ${r.code}: ${r.stderr}`);
        return r;
      },
      20_000,
      200,
    );
    const healthWithDead = await waitFor(
      'health to fail on the dead endpoint only',
      async () => {
        const r = await runCli(['health', '--endpoints', `${dead},${c.endpoint('n3')}`]);
        if (lines(r.stderr).length !== 2) throw new Error(`health exited ${r.code}: ${r.stderr}`);
        return r;
      },
      20_000,
      200,
    );

    expect(leader.code, leader.stderr).toBe(0);
    expect(JSON.parse(leader.stdout)).toEqual({ leaderId: l.leaderId, leaderAddress: c.endpoint(l.leaderId), term: l.term });

    expect(members.code, members.stderr).toBe(0);
    const ms = JSON.parse(members.stdout) as { id: string; peerAddress: string; clientAddress: string; learner: boolean }[];
    expect(
      ms
        .map((m) => ({ id: m.id, peerAddress: m.peerAddress, clientAddress: m.clientAddress, learner: m.learner }))
        .sort((a, b) => a.id.localeCompare(b.id)),
    ).toEqual(c.specs.map((s) => ({ id: s.id, peerAddress: `127.0.0.1:${s.peerPort}`, clientAddress: c.endpoint(s.id), learner: false })));

    expect(status.code, status.stderr).toBe(0);
    const table = lines(status.stdout).map((r) => r.trim().split(/\s+/));
    expect(table[0]).toEqual(['ID', 'ADDRESS', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'LAST', 'LEASE', 'VERSION']);
    const body = table.slice(1);
    expect(body.map((r) => r[0]).sort()).toEqual(['n1', 'n2', 'n3']);
    for (const r of body) {
      expect(r[1]).toBe(c.endpoint(r[0]!));
      expect(r[2]).toBe(r[0] === l2.leaderId ? 'leader' : 'follower');
      expect(r[3]).toBe(String(l2.term));
      expect(r[4]).toBe(l2.leaderId);
      expect(r[8]).toBe(r[0] === l2.leaderId ? 'valid' : '-');
      expect(r[9]).toBe(PKG_VERSION);
    }

    expect(leaderViaDead.code, leaderViaDead.stderr).toBe(0);
    expect(JSON.parse(leaderViaDead.stdout)).toMatchObject({ leaderId: l3.leaderId, term: l3.term });
    expect(statusViaDead.code, statusViaDead.stderr).toBe(0);
    const viaDead = lines(statusViaDead.stdout)
      .slice(1)
      .map((r) => r.trim().split(/\s+/));
    expect(viaDead.filter((r) => r[2] === 'unreachable').map((r) => r[1])).toEqual([dead]);
    expect(
      viaDead
        .filter((r) => r[2] !== 'unreachable')
        .map((r) => r[0])
        .sort(),
    ).toEqual(['n1', 'n2', 'n3']);

    // Like etcdctl endpoint health: 0 when every member answers and sees a leader, 1 when one does not.
    expect(health.code, health.stderr).toBe(0);
    const verdicts = JSON.parse(health.stdout) as { id: string; healthy: boolean }[];
    expect(verdicts.map((v) => `${v.id}:${v.healthy}`).sort()).toEqual(['n1:true', 'n2:true', 'n3:true']);
    expect(healthWithDead.code, healthWithDead.stderr).toBe(1);
    expect(lines(healthWithDead.stderr)).toEqual([
      'leaderd: 1 of 4 endpoints unhealthy',
      `leaderd: ${dead}: connection refused: is a leaderd node running there? (check --endpoints or LEADERD_ENDPOINTS)`,
    ]);
    console.log(`[e2e] leaderd status:\n${status.stdout}`);
  });

  it('transfer moves leadership and watch prints each change; to the current leader says so at once; an unknown target is one clean line, exit 2; every endpoint dead is exit 3 with one line per endpoint; a malformed endpoint is exit 2', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.startAll();
    const l = await c.waitForLeader();
    const all = c.endpoints().join(',');

    const watch = spawn(process.execPath, [CLI, 'watch', '--json', '--endpoints', c.endpoint('n1')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const watchExit = exitOf(watch, 60_000);
    cleanups.push(async () => {
      if (watch.exitCode === null && watch.signalCode === null) {
        watch.kill('SIGKILL');
        await watchExit.catch(() => undefined);
      }
    });
    const out = watchStdout(watch);
    // The current leader first (the one polled above, unless it changed meanwhile on a loaded machine).
    await out.waitFor(/"leaderId":"n\d".*"term":\d+/, 10_000);

    const { target, after, before } = await waitFor(
      'a leadership transfer through the CLI',
      async () => {
        const current = await c.waitForLeader();
        const to = c.specs.map((s) => s.id).find((id) => id !== current.leaderId)!;
        const r = await runCli(['transfer', '--to', to, '--json', '--endpoints', all]);
        // Retried: a leader change between the poll and the call makes the call fail.
        if (r.code !== 0) throw new Error(`transfer exited ${r.code}: ${r.stderr.trim()}`);
        const moved = JSON.parse(r.stdout) as { leaderId: string; term: number };
        if (moved.leaderId !== to) throw new Error(`transfer to ${to} reported ${r.stdout.trim()}`);
        return { target: to, after: moved, before: current };
      },
      30_000,
      100,
    );
    expect(after.term).toBeGreaterThan(before.term);
    await out.waitFor(new RegExp(`"leaderId":"${target}".*"term":${after.term}`), 10_000);
    watch.kill('SIGINT');
    expect(await watchExit).toEqual({ code: 0, signal: null });
    const events = lines(out.text()).map((x) => JSON.parse(x) as { leaderId: string; term: number; via: string });
    expect(events.every((e) => e.via === c.endpoint('n1'))).toBe(true);
    expect(events[0]!.term).toBeGreaterThanOrEqual(l.term);
    for (let i = 1; i < events.length; i++) expect(events[i]!.term).toBeGreaterThanOrEqual(events[i - 1]!.term);
    const leaders = events.filter((e) => e.leaderId !== '').map((e) => `${e.leaderId}@${e.term}`);
    expect(leaders[leaders.length - 1]).toBe(`${target}@${after.term}`);
    expect(new Set(leaders).size).toBeGreaterThanOrEqual(2);

    // Asking for the leader that already leads is answered at once, not after the node's transfer timeout.
    const again = await withStableLeader(c, async () => {
      const t0 = performance.now();
      const r = await runCli(['transfer', '--to', target, '--endpoints', all]);
      return { r, ms: performance.now() - t0 };
    });
    if (again.l.leaderId === target) {
      expect(again.out.r.code, again.out.r.stderr).toBe(0);
      expect(again.out.r.stdout).toMatch(new RegExp(`^${target} already leads \\(term \\d+\\): nothing to transfer\\n$`));
      console.log(`[e2e] transfer --to the current leader answered in ${again.out.ms.toFixed(0)} ms (process start included)`);
    }
    // A server-side INVALID_ARGUMENT is one clean line, exit 2 (not "3 INVALID_ARGUMENT: ...").
    const unknown = await runCli(['transfer', '--to', 'n9', '--endpoints', all]);
    expect(unknown.code, unknown.stderr).toBe(2);
    expect(lines(unknown.stderr)).toHaveLength(1);
    expect(unknown.stderr).toMatch(/^leaderd: cannot transfer leadership to n9: /);
    expect(unknown.stderr).not.toMatch(/INVALID_ARGUMENT/);

    const deadList = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const dead = deadList.join(',');
    const cmds = ['leader', 'members', 'status', 'transfer', 'health'];
    const failures = await Promise.all(cmds.map((cmd) => runCli([cmd, '--endpoints', dead, '--timeout-ms', '1000'])));
    for (const [i, r] of failures.entries()) {
      // Exit 3: unreachable. A headline, then one short line per endpoint naming it and the failure.
      expect(r.code, `${cmds[i]}: ${r.stderr}`).toBe(3);
      const ls = lines(r.stderr);
      expect(ls[0], cmds[i]).toMatch(/^leaderd: no endpoint (answered|is healthy)/);
      const perEndpoint = ls.filter((l) => / connection refused: /.test(l));
      expect(perEndpoint.map((l) => l.split(': ')[1]).sort(), `${cmds[i]}: ${r.stderr}`).toEqual([...deadList].sort());
      for (const l of ls) expect(l.length, l).toBeLessThanOrEqual(160);
      expect(r.stderr).not.toMatch(/No connection established|Resolution note/);
    }
    const malformed = await runCli(['leader', '--endpoints', 'localhost']);
    expect(malformed.code).toBe(2);
    expect(lines(malformed.stderr)).toEqual(["leaderd: --endpoints entry must be host:port, got 'localhost'"]);
  });
});

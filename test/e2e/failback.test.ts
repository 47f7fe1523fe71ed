// Priority, failback with anti-flap, priority 0 and drain, with real leaderd processes.
// One 3-node cluster for the whole file; the tests run in order and each starts from
// where the one before left it (n1 preferred, n3 a priority-0 replica).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { LocalCluster, runCli, waitFor } from './cluster.js';

const DELAY_MS = 300;
const ANTI_FLAP_MS = 2000;
const ELECTION_TIMEOUT_MS = 300;

let c: LocalCluster;
let failed = false;

beforeAll(async () => {
  c = await LocalCluster.create({
    nodes: 3,
    electionTimeoutMs: ELECTION_TIMEOUT_MS,
    extraArgs: ['--failback-delay-ms', String(DELAY_MS), '--failback-anti-flap-ms', String(ANTI_FLAP_MS)],
  });
  c.startAll();
  await c.waitForLeader();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') {
    failed = true;
    console.error(c.logTails(40));
  }
});
afterAll(async () => {
  await c?.stop({ keepData: failed });
});

const cli = (...args: string[]) => runCli([...args, '--endpoints', c.endpoints().join(',')], { timeoutMs: 20_000 });
const logOf = (id: string) => readFileSync(c.spec(id).logPath, 'utf8');
/** n3's log from the moment it learned it has priority 0 (it may have campaigned at start-up, before). */
const n3SincePriorityZero = () => {
  const log = logOf('n3');
  const at = log.indexOf('priority 0: never standing for election');
  expect(at).toBeGreaterThan(0);
  return log.slice(at);
};

/** Poll who leads (as the running nodes agree) until `pred`, every 25 ms; returns when it first held (Date.now()). */
async function leaderUntil(pred: (id: string) => boolean, timeoutMs: number): Promise<number> {
  return waitFor(
    'leadership',
    async () => {
      const l = await c.waitForLeader({ timeoutMs: 2000 }).catch(() => null);
      return l !== null && pred(l.leaderId) ? Date.now() : undefined;
    },
    timeoutMs,
  );
}

describe('priority and failback', () => {
  it('the leader fails back to the member of highest priority; priority 0 is shown and refused as a transfer target', async () => {
    const three = await cli('members', 'update', 'n1', '--priority', '3');
    expect(three.code, three.stderr).toBe(0);
    const zero = await cli('members', 'update', 'n3', '--priority', '0', '--json');
    expect(zero.code, zero.stderr).toBe(0);
    const rows = JSON.parse(zero.stdout) as { id: string; priority: number; drained: boolean }[];
    expect(rows.map((r) => [r.id, r.priority, r.drained])).toEqual([
      ['n1', 3, false],
      ['n2', 1, false],
      ['n3', 0, false],
    ]);
    // Whoever leads now was elected at start-up, under ANTI_FLAP_MS ago at most.
    await leaderUntil((id) => id === 'n1', ANTI_FLAP_MS + DELAY_MS + 8000);
    const refused = await cli('transfer', '--to', 'n3');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/n3 may not lead \(priority 0\)/);
    expect((await c.waitForLeader()).leaderId).toBe('n1');
  });

  it('the preferred member dies: n2 (not the priority-0 n3) leads; n1 back and healthy is handed leadership after the anti-flap window', async () => {
    await c.kill('n1');
    const electedAt = await leaderUntil((id) => id !== 'n1' && id !== '', 10_000);
    expect((await c.waitForLeader()).leaderId).toBe('n2');
    c.start('n1');
    // n1 is healthy once it answers and follows n2 with the log applied (on a slow start
    // the window may have passed already, and n1 lead before a poll saw it follow).
    const healthyAt = await waitFor(
      'n1 to follow n2, caught up',
      async () => {
        const [s, l] = await Promise.all([c.status('n1').catch(() => null), c.status('n2').catch(() => null)]);
        if (s?.leaderId === 'n1') return Date.now();
        return s !== null && l !== null && s.leaderId === 'n2' && s.appliedIndex >= l.commitIndex ? Date.now() : undefined;
      },
      15_000,
    );
    const ledAt = await leaderUntil((id) => id === 'n1', ANTI_FLAP_MS + DELAY_MS + 8000);
    // Anti-flap: n2 handed over no earlier than the window after its election (polling
    // saw the election up to ~2 polls late, so allow that much).
    expect(ledAt - electedAt).toBeGreaterThanOrEqual(ANTI_FLAP_MS - 150);
    if (process.env.FAILBACK_TIMINGS)
      console.info(`failback: n1 healthy -> n1 leads ${ledAt - healthyAt} ms; n2 elected -> n1 leads ${ledAt - electedAt} ms`);
    const n2 = logOf('n2');
    // Held back by the window, and said so, whenever n1 was ready before the window ended
    // (on a loaded machine its restart may take longer than the window).
    if (healthyAt + DELAY_MS + 300 < electedAt + ANTI_FLAP_MS)
      expect(n2).toMatch(/failback to n1 held back: this leader was elected less than the anti-flap window ago/);
    expect(n2).toMatch(/failback: handing leadership to n1, of higher priority, healthy and caught up/);
    // The priority-0 replica never stood for election, not even while n1 was down.
    expect(n3SincePriorityZero()).not.toMatch(/"msg":"(pre-)?campaign started"/);
  });
});

describe('drain', () => {
  it('drain of the leader hands leadership over, and the drained member refuses a transfer', async () => {
    expect((await c.waitForLeader()).leaderId).toBe('n1');
    const r = await cli('drain', 'n1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/n1 is drained and leads: waiting for it to hand leadership over/);
    expect((await c.waitForLeader()).leaderId).toBe('n2');
    expect(logOf('n1')).toMatch(/this leader may not lead \(drained\): handing leadership to n2/);
    const t = await cli('transfer', '--to', 'n1');
    expect(t.code).not.toBe(0);
    expect(t.stderr).toMatch(/n1 may not lead \(drained: leaderd undrain n1\)/);
  });

  it('the drain survives a restart; with only drained and priority-0 members left, the drained one leads (availability) and hands over when it can', async () => {
    expect((await c.terminate('n1')).code).toBe(0);
    c.start('n1');
    const members = await waitFor('n1 to answer ListMembers', () => c.client('n1').listMembers(), 10_000);
    expect(members.find((m) => m.id === 'n1')).toMatchObject({ drained: true, priority: 3 });
    await waitFor('n1 to follow n2', async () => ((await c.status('n1').catch(() => null))?.leaderId === 'n2' ? true : undefined), 10_000);
    // n2 dies: n1 (drained) and n3 (priority 0) are a quorum, and neither may lead. n1
    // stands only after several election timeouts without a leader.
    await c.kill('n2');
    const killedAt = Date.now();
    const ledAt = await leaderUntil((id) => id === 'n1', 15_000);
    // Counted from the last heartbeat n1 heard, up to a heartbeat interval (50 ms) before the kill.
    expect(ledAt - killedAt).toBeGreaterThanOrEqual(3 * ELECTION_TIMEOUT_MS - 2 * 50);
    expect(logOf('n1')).toMatch(/drained, but no leader for several election timeouts: standing for election/);
    expect(n3SincePriorityZero()).not.toMatch(/"msg":"(pre-)?campaign started"/);
    // n2 back: the drained leader hands over as soon as n2 is healthy, without any window.
    c.start('n2');
    await leaderUntil((id) => id === 'n2', 10_000);
  });

  it('undrain: the preferred member leads again through failback', async () => {
    const undrained = await cli('undrain', 'n1');
    expect(undrained.code, undrained.stderr).toBe(0);
    await leaderUntil((id) => id === 'n1', ANTI_FLAP_MS + DELAY_MS + 8000);
    // Writes work on the cluster as it ends up.
    const put = await cli('put', 'after-failback', 'v');
    expect(put.code, put.stderr).toBe(0);
  });
});

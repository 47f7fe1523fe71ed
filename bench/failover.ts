// Failover time (RTO) of a real 3-node leaderd cluster, against etcd 3.4 run in the same
// process tree with the same timing settings as the baseline.
//
//   npm run bench:failover -- --trials 20 [--no-etcd] [--etcd-bin /usr/bin/etcd] [--keep]
//
// --keep leaves the members' data dirs and logs in place (their paths are printed).
//
// One trial: wait until every member agrees on one leader and is caught up; SIGKILL that
// leader; poll the two survivors every ~5 ms until both name the same new leader (for
// leaderd also in the same term) and that leader itself says it leads. RTO is the time from the kill to the
// poll answer that showed it. The killed member is then restarted on its data dir and
// must rejoin before the next trial. Both systems are measured with the same method
// (two loopback requests per poll), so both carry the same poll lag (up to ~5 ms).
//
// Why the numbers are what they are: with heartbeat 50 ms and election timeout 300 ms,
// a follower campaigns after a randomized timeout in [300, 600) ms without hearing from
// the leader (Raft §5.2; thesis §9.6 adds the PreVote round before the real vote), so
// the expected RTO is the earlier of two such draws, minus the time since the last
// heartbeat, plus two loopback round trips and two fsyncs.
//
// Exit code 1 if any trial took more than 10 s or never agreed on a new leader. Every
// process started here is killed by PID and every temp dir removed, also on error and on
// SIGINT/SIGTERM.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { freePort, LocalCluster, sleep } from '../test/e2e/cluster.js';
import { tickSettings } from '../src/server/node.js';
import { DEFAULTS } from '../src/server/config.js';

const HEARTBEAT_MS = DEFAULTS['heartbeat-ms'];
const ELECTION_MS = DEFAULTS['election-timeout-ms'];
/** The sanity bound: a failover slower than this is a failure, not a data point. */
const TRIAL_LIMIT_MS = 10_000;
const POLL_EVERY_MS = 5;
/** How long a trial may wait for the cluster to be whole again (start-up, rejoin). */
const STEADY_LIMIT_MS = 30_000;
/**
 * Pause between rejoin and the next kill. A member that just restarted refuses votes for
 * one election timeout (it may have acknowledged the old leader's lease just before it
 * went down: thesis §6.4), and etcd does the same with CheckQuorum; a second or so of
 * steady state makes every trial start from the same situation.
 */
const SETTLE_MS = 1000;

// ---------------------------------------------------------------------------------------
// What a trial needs from a system

interface Agreement {
  readonly leader: string;
  readonly term: number;
  /** leaderd only: the new leader already holds a valid lease (thesis §6.4.1). */
  readonly leaseValid?: boolean;
}

interface System {
  readonly name: string;
  readonly members: readonly string[];
  start(): Promise<void>;
  running(): string[];
  /** One poll: the agreed leader among `among` if all of them agree and it says it leads, excluding `not`. */
  agreed(among: readonly string[], not?: string): Promise<Agreement | undefined>;
  /** One poll: every member runs, agrees on one leader, and has the leader's commit index. */
  whole(): Promise<Agreement | undefined>;
  kill(member: string): Promise<void>;
  restart(member: string): void;
  /** Kill every member still running; remove the temp dir unless `keep` (for reading the logs). */
  stop(keep?: boolean): Promise<void>;
}

interface Trial {
  readonly killed: string;
  readonly newLeader: string;
  readonly term: number;
  readonly rtoMs: number;
  readonly leaseMs?: number;
  readonly rejoinMs: number;
  /**
   * Terms that began between the steady state before the kill and the steady state after
   * the rejoin, beyond the one election the kill forces: split votes, and leaders that
   * lost their quorum while the victim restarted. 0 is the ideal.
   */
  readonly extraTerms: number;
}

interface Outcome {
  readonly system: string;
  readonly trials: Trial[];
  readonly failure?: string;
}

// ---------------------------------------------------------------------------------------
// leaderd, through the e2e harness

class Leaderd implements System {
  readonly name = 'leaderd';
  private constructor(private readonly cluster: LocalCluster) {}

  static async create(): Promise<Leaderd> {
    // No heartbeat/election flags: the defaults are what is being measured.
    return new Leaderd(await LocalCluster.create({ nodes: 3, clusterId: 'bench-failover' }));
  }

  get members(): string[] {
    return this.cluster.specs.map((s) => s.id);
  }

  async start(): Promise<void> {
    for (const id of this.members) this.restart(id);
  }

  running(): string[] {
    return this.cluster.running();
  }

  async agreed(among: readonly string[], not?: string): Promise<Agreement | undefined> {
    const st = await Promise.all(among.map((id) => this.cluster.status(id)));
    const first = st[0]!;
    if (first.leaderId === '' || first.leaderId === not || !among.includes(first.leaderId)) return undefined;
    if (!st.every((s) => s.leaderId === first.leaderId && s.term === first.term)) return undefined;
    const leader = st.find((s) => s.nodeId === first.leaderId)!;
    if (leader.role !== 'leader') return undefined;
    return { leader: leader.nodeId, term: leader.term, leaseValid: leader.leaseValid };
  }

  async whole(): Promise<Agreement | undefined> {
    if (this.running().length !== this.members.length) return undefined;
    const a = await this.agreed(this.members);
    if (!a) return undefined;
    const st = await Promise.all(this.members.map((id) => this.cluster.status(id)));
    const commit = st.find((s) => s.nodeId === a.leader)!.commitIndex;
    return st.every((s) => s.commitIndex === commit && s.term === a.term) ? a : undefined;
  }

  kill(member: string): Promise<void> {
    return this.cluster.kill(member, 'SIGKILL');
  }

  restart(member: string): void {
    this.cluster.start(member, { '--log-level': 'info' });
  }

  async stop(keep = false): Promise<void> {
    await this.cluster.stop({ keepData: keep });
    if (keep) console.log(`leaderd data and logs kept in ${this.cluster.root}`);
  }
}

// ---------------------------------------------------------------------------------------
// etcd 3.4, the baseline: same loopback, same temp file system, same timing flags

interface EtcdStatus {
  readonly header: { readonly member_id: string };
  readonly leader: string;
  /** The term of the last applied entry (etcdserver's s.Term()), not raft's current term. */
  readonly raftTerm: string;
  readonly raftIndex: string;
}

class Etcd implements System {
  readonly name: string;
  readonly members = ['e1', 'e2', 'e3'];
  private readonly procs = new Map<string, ChildProcess>();
  private readonly ids = new Map<string, string>(); // member name -> raft member id
  private readonly ports = new Map<string, { client: number; peer: number }>();
  private readonly flags: string[];

  private constructor(
    private readonly bin: string,
    readonly version: string,
    private readonly root: string,
    preVote: boolean,
  ) {
    this.name = `etcd ${version}`;
    this.flags = [
      `--heartbeat-interval=${HEARTBEAT_MS}`,
      `--election-timeout=${ELECTION_MS}`,
      ...(preVote ? ['--pre-vote=true'] : []),
      '--logger=zap',
    ];
  }

  /** The etcd binary's version and whether it has --pre-vote, or why it cannot be used. */
  static probe(bin: string): { version: string; preVote: boolean } | string {
    if (!existsSync(bin)) return `${bin} not found (Debian: apt-get install -y etcd-server etcd-client)`;
    const v = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const m = /etcd Version:\s*(\S+)/.exec(v.stdout ?? '');
    if (v.status !== 0 || !m) return `${bin} --version failed: ${(v.stderr || v.error?.message || '').trim()}`;
    const help = spawnSync(bin, ['--help'], { encoding: 'utf8', timeout: 10_000 });
    return { version: m[1]!, preVote: `${help.stdout}${help.stderr}`.includes('--pre-vote') };
  }

  static async create(bin: string, version: string, preVote: boolean): Promise<Etcd> {
    const e = new Etcd(bin, version, mkdtempSync(join(tmpdir(), 'leaderd-bench-etcd-')), preVote);
    for (const name of e.members) e.ports.set(name, { client: await freePort(), peer: await freePort() });
    return e;
  }

  private url(name: string, kind: 'client' | 'peer'): string {
    return `http://127.0.0.1:${this.ports.get(name)![kind]}`;
  }

  async start(): Promise<void> {
    for (const name of this.members) this.restart(name);
  }

  restart(name: string): void {
    if (this.procs.has(name)) throw new Error(`${name} is already running`);
    const args = [
      `--name=${name}`,
      `--data-dir=${join(this.root, name)}`,
      `--listen-client-urls=${this.url(name, 'client')}`,
      `--advertise-client-urls=${this.url(name, 'client')}`,
      `--listen-peer-urls=${this.url(name, 'peer')}`,
      `--initial-advertise-peer-urls=${this.url(name, 'peer')}`,
      `--initial-cluster=${this.members.map((n) => `${n}=${this.url(n, 'peer')}`).join(',')}`,
      // Ignored once the data dir exists, which is how a restart rejoins.
      '--initial-cluster-state=new',
      `--initial-cluster-token=bench-${process.pid}`,
      ...this.flags,
    ];
    // ETCD_* variables from the caller's environment would override these flags.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
    const fd = openSync(join(this.root, `${name}.log`), 'a');
    const proc = spawn(this.bin, args, { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    this.procs.set(name, proc);
    proc.once('exit', () => {
      if (this.procs.get(name) === proc) this.procs.delete(name);
    });
  }

  running(): string[] {
    return [...this.procs.keys()];
  }

  /** etcd's gRPC gateway on the member's client URL (loopback), one keep-alive connection per member. */
  private async status(name: string): Promise<EtcdStatus> {
    const res = await fetch(`${this.url(name, 'client')}/v3/maintenance/status`, {
      method: 'POST',
      body: '{}',
      signal: AbortSignal.timeout(1000),
    });
    if (!res.ok) throw new Error(`${name}: HTTP ${res.status}`);
    const s = (await res.json()) as EtcdStatus;
    this.ids.set(name, s.header.member_id);
    return s;
  }

  private nameOf(memberId: string): string | undefined {
    for (const [n, id] of this.ids) if (id === memberId) return n;
    return undefined;
  }

  async agreed(among: readonly string[], not?: string): Promise<Agreement | undefined> {
    const st = await Promise.all(among.map((n) => this.status(n)));
    const first = st[0]!;
    if (first.leader === '0' || first.leader === undefined) return undefined;
    // Agreement on the leader only: etcd 3.4 reports as raftTerm the term of the last
    // *applied* entry, which lags a new leader's term until its first entry is applied.
    if (!st.every((s) => s.leader === first.leader)) return undefined;
    // The leader's own status names itself as leader only once it has become leader.
    const leader = this.nameOf(first.leader);
    if (leader === undefined || leader === not || !among.includes(leader)) return undefined;
    return { leader, term: Math.max(...st.map((s) => Number(s.raftTerm))) };
  }

  async whole(): Promise<Agreement | undefined> {
    if (this.running().length !== this.members.length) return undefined;
    const a = await this.agreed(this.members);
    if (!a) return undefined;
    const st = await Promise.all(this.members.map((n) => this.status(n)));
    return st.every((s) => s.raftIndex === st[0]!.raftIndex && s.raftTerm === st[0]!.raftTerm) ? a : undefined;
  }

  kill(name: string): Promise<void> {
    const p = this.procs.get(name);
    if (!p) throw new Error(`${name} is not running`);
    return new Promise((res) => {
      if (p.exitCode !== null || p.signalCode !== null) return res();
      p.once('exit', () => res());
      p.kill('SIGKILL');
    });
  }

  async stop(keep = false): Promise<void> {
    await Promise.all([...this.procs.keys()].map((n) => this.kill(n).catch(() => {})));
    if (keep) console.log(`etcd data and logs kept in ${this.root}`);
    else rmSync(this.root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// The trial loop, the same for both systems

/** Poll `f` every `everyMs` until it returns a value or `limitMs` passed; errors count as "not yet". */
async function pollUntil<T>(
  f: () => Promise<T | undefined>,
  limitMs: number,
  everyMs: number,
): Promise<{ value: T; at: number } | undefined> {
  const deadline = performance.now() + limitMs;
  while (performance.now() < deadline) {
    const started = performance.now();
    try {
      const v = await f();
      if (v !== undefined) return { value: v, at: performance.now() };
    } catch {
      // a member that is starting or just died: try again
    }
    await sleep(Math.max(0, everyMs - (performance.now() - started)));
  }
  return undefined;
}

/**
 * The trials of one system. Trials of the systems are interleaved (both clusters are up
 * throughout), so that the background load of a shared machine, which changes from
 * minute to minute, falls on both alike.
 */
class TrialRunner {
  readonly trials: Trial[] = [];
  failure: string | undefined;

  constructor(readonly sys: System) {}

  async start(): Promise<void> {
    await this.sys.start();
    if (!(await pollUntil(() => this.sys.whole(), STEADY_LIMIT_MS, 25)))
      this.failure = `no leader agreed by all members within ${STEADY_LIMIT_MS} ms of start`;
  }

  /** One trial; on failure, records why and returns false (the cluster's state is then unknown). */
  async trial(i: number, of: number): Promise<boolean> {
    const { sys } = this;
    const fail = (why: string): false => {
      this.failure = `trial ${i}: ${why}`;
      return false;
    };
    // A random phase, so kills land anywhere within a heartbeat interval.
    await sleep(SETTLE_MS + Math.random() * HEARTBEAT_MS);
    const before = await pollUntil(() => sys.whole(), STEADY_LIMIT_MS, 5);
    if (!before) return fail('the cluster fell apart before the kill');
    const old = before.value.leader;
    const survivors = sys.members.filter((m) => m !== old);

    const killedAt = performance.now();
    const exited = sys.kill(old);
    const elected = await pollUntil(() => sys.agreed(survivors, old), TRIAL_LIMIT_MS, POLL_EVERY_MS);
    await exited;
    if (!elected) return fail(`no new leader agreed by ${survivors.join(',')} within ${TRIAL_LIMIT_MS} ms after killing ${old}`);
    let leaseMs: number | undefined;
    if (elected.value.leaseValid !== undefined) {
      const lease = elected.value.leaseValid
        ? elected
        : await pollUntil(async () => ((await sys.agreed(survivors, old))?.leaseValid ? true : undefined), TRIAL_LIMIT_MS, POLL_EVERY_MS);
      if (!lease) return fail(`new leader ${elected.value.leader} held no valid lease within ${TRIAL_LIMIT_MS} ms`);
      leaseMs = lease.at - killedAt;
    }

    const restartedAt = performance.now();
    sys.restart(old);
    const rejoined = await pollUntil(() => sys.whole(), STEADY_LIMIT_MS, 25);
    if (!rejoined) return fail(`${old} did not rejoin (all members agreeing and caught up) within ${STEADY_LIMIT_MS} ms of its restart`);
    const t: Trial = {
      killed: old,
      newLeader: elected.value.leader,
      term: elected.value.term,
      rtoMs: elected.at - killedAt,
      ...(leaseMs !== undefined ? { leaseMs } : {}),
      rejoinMs: rejoined.at - restartedAt,
      extraTerms: rejoined.value.term - before.value.term - 1,
    };
    this.trials.push(t);
    console.log(
      `  ${sys.name.padEnd(12)} trial ${String(i).padStart(2)}/${of}: killed ${t.killed} -> ${t.newLeader} leads term ${String(t.term).padEnd(3)} after ${fmt(t.rtoMs).padStart(4)} ms` +
        (t.leaseMs !== undefined ? `, lease valid after ${fmt(t.leaseMs).padStart(4)} ms` : '') +
        `; ${t.killed} rejoined ${fmt(t.rejoinMs)} ms after its restart` +
        (t.extraTerms > 0 ? `; ${t.extraTerms} extra term(s)` : ''),
    );
    return true;
  }

  outcome(): Outcome {
    return { system: this.sys.name, trials: this.trials, ...(this.failure !== undefined ? { failure: this.failure } : {}) };
  }
}

async function runTrials(systems: readonly System[], trials: number): Promise<Outcome[]> {
  const runners = systems.map((s) => new TrialRunner(s));
  for (const r of runners) await r.start();
  for (let i = 1; i <= trials; i++) {
    for (const r of runners) if (r.failure === undefined) await r.trial(i, trials);
  }
  return runners.map((r) => r.outcome());
}

// ---------------------------------------------------------------------------------------
// Reporting

interface Stats {
  readonly min: number;
  readonly median: number;
  readonly p90: number;
  readonly max: number;
}

function stats(xs: readonly number[]): Stats | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length / 2;
  const median = s.length % 2 === 1 ? s[Math.floor(mid)]! : (s[mid - 1]! + s[mid]!) / 2;
  // Nearest-rank percentile: a value that was actually observed.
  const p90 = s[Math.ceil(0.9 * s.length) - 1]!;
  return { min: s[0]!, median, p90, max: s[s.length - 1]! };
}

function fmt(ms: number): string {
  return ms.toFixed(0);
}

function row(label: string, n: number, st: Stats | undefined): string {
  const cells = st ? [st.min, st.median, st.p90, st.max].map((v) => fmt(v).padStart(7)) : ['      -', '      -', '      -', '      -'];
  return `${label.padEnd(44)}${String(n).padStart(7)}${cells.join('')}`;
}

// ---------------------------------------------------------------------------------------

const cleanups: (() => Promise<void>)[] = [];
async function cleanUp(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: Error) => console.error(`cleanup: ${err.message}`));
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping every process started by the bench`);
    void cleanUp().finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string', default: '20' },
      'etcd-bin': { type: 'string', default: '/usr/bin/etcd' },
      'no-etcd': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
  });
  const trials = Number(values.trials);
  if (!Number.isInteger(trials) || trials < 1) throw new Error(`--trials must be a whole number >= 1, got '${values.trials}'`);
  const ticks = tickSettings(HEARTBEAT_MS, ELECTION_MS);
  console.log(
    `Failover benchmark: 3 members on 127.0.0.1, SIGKILL the leader, ${trials} trials per system, poll every ${POLL_EVERY_MS} ms`,
  );
  console.log(
    `settings: heartbeat ${HEARTBEAT_MS} ms, election timeout ${ELECTION_MS} ms (randomized in [${ELECTION_MS}, ${2 * ELECTION_MS}) ms); trials of the systems interleaved\n`,
  );

  const systems: System[] = [];
  const leaderd = await Leaderd.create();
  cleanups.push(() => leaderd.stop(values.keep));
  systems.push(leaderd);
  let etcdNote: string | undefined;
  if (values['no-etcd']) etcdNote = 'etcd baseline NOT RUN: --no-etcd given';
  else {
    const probe = Etcd.probe(values['etcd-bin']!);
    if (typeof probe === 'string') etcdNote = `etcd baseline NOT RUN: ${probe}`;
    else {
      if (!probe.preVote) console.log(`note: ${values['etcd-bin']} has no --pre-vote flag; etcd runs without PreVote`);
      const etcd = await Etcd.create(values['etcd-bin']!, probe.version, probe.preVote);
      cleanups.push(() => etcd.stop(values.keep));
      systems.push(etcd);
    }
  }
  if (etcdNote) console.log(`${etcdNote}\n`);
  const outcomes = await runTrials(systems, trials);
  await cleanUp();

  console.log(`\nRTO = SIGKILL of the leader -> survivors agree on a new leader that says it leads (ms)`);
  console.log(`${''.padEnd(44)}${'trials'.padStart(7)}${'min'.padStart(7)}${'median'.padStart(7)}${'p90'.padStart(7)}${'max'.padStart(7)}`);
  for (const o of outcomes) console.log(row(`${o.system}: RTO`, o.trials.length, stats(o.trials.map((t) => t.rtoMs))));
  const ld = outcomes[0]!;
  console.log(
    row(
      'leaderd: kill -> new leader lease valid',
      ld.trials.length,
      stats(ld.trials.flatMap((t) => (t.leaseMs === undefined ? [] : [t.leaseMs]))),
    ),
  );
  for (const o of outcomes) {
    const rejoins = o.trials.map((t) => t.rejoinMs);
    console.log(row(`${o.system}: restart -> rejoined, caught up`, rejoins.length, stats(rejoins)));
  }
  for (const o of outcomes) {
    const extra = o.trials.reduce((a, t) => a + t.extraTerms, 0);
    console.log(
      `${o.system}: ${extra} extra terms in ${o.trials.length} trials (elections beyond the one each kill forces: split votes, leaders losing quorum during the rejoin)`,
    );
  }
  const leaseBound = (ticks.electionTick - ticks.leaseDriftTicks) * ticks.tickMs;
  console.log(
    `leaderd: old leader's lease (computed, not measured): ends ${leaseBound} ms after the send of the last heartbeat round a quorum acknowledged,\n` +
      `  i.e. at most ${leaseBound} ms after the kill ((election ${ticks.electionTick} - drift ${ticks.leaseDriftTicks} ticks) x ${ticks.tickMs} ms); no vote is granted before followers' ${ELECTION_MS} ms timeout.`,
  );
  const ed = outcomes[1];
  if (ed) {
    const a = stats(ld.trials.map((t) => t.rtoMs));
    const b = stats(ed.trials.map((t) => t.rtoMs));
    if (a && b) console.log(`ratio leaderd/${ed.system}: median ${(a.median / b.median).toFixed(2)}, max ${(a.max / b.max).toFixed(2)}`);
  }
  if (etcdNote) console.log(`\n${etcdNote}`);

  const failures = outcomes.filter(
    (o) => o.failure !== undefined || o.trials.length < trials || o.trials.some((t) => t.rtoMs > TRIAL_LIMIT_MS),
  );
  for (const o of failures) console.error(`FAILED ${o.system}: ${o.failure ?? 'a trial exceeded the limit'}`);
  return failures.length > 0 ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
} finally {
  await cleanUp();
}
process.exit(code);

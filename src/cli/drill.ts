// `leaderd drill`: rehearse failover. Starts its own local cluster (or attaches to one with
// --endpoints), injects one fault per trial under a steady write load, and reports per
// trial detection time, time to a new leader, write unavailability (RTO), acknowledged
// writes lost (RPO) and whether two nodes ever led at once.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { DEFAULTS } from '../server/config.js';
import { DrillLocalCluster } from '../drill/local-cluster.js';
import { renderDrillReport } from '../dashboard/drill-report.js';
import { runDrill, type DrillTarget } from '../drill/drill.js';
import { DRILL_FAULTS, type DrillFault, type DrillResult, type DrillStats, type DrillTrial } from '../drill/result.js';
import { clientSecurity, out, parseEndpoints, table, untilInterrupted, type ClientFlags } from './client-context.js';
import { CliError, EXIT_RUNTIME, UsageError } from './usage.js';
import { LOCAL_MAX_NODES } from './local-ports.js';

export interface DrillFlags extends ClientFlags {
  fault?: string;
  trials?: string;
  html?: string;
  nodes?: string;
  dataDir?: string;
  reportDir?: string;
  basePort?: string;
  heartbeatMs?: string;
  electionTimeoutMs?: string;
  writeIntervalMs?: string;
}

/** Exit code of an interrupted drill (128 + SIGINT), after it cleaned up. */
const EXIT_INTERRUPTED = 130;

function wholeNumber(v: string | undefined, flag: string, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got '${v}'`);
  return n;
}

export async function runDrillCommand(flags: DrillFlags): Promise<void> {
  const fault = flags.fault as DrillFault | undefined;
  if (fault === undefined || !DRILL_FAULTS.includes(fault))
    throw new UsageError(`--fault must be one of ${DRILL_FAULTS.join(', ')}, got '${flags.fault ?? ''}'`);
  const trials = wholeNumber(flags.trials, '--trials', 1, 10_000, 5);
  const nodes = wholeNumber(flags.nodes, '--nodes', 3, LOCAL_MAX_NODES, 3);
  const writeIntervalMs = wholeNumber(flags.writeIntervalMs, '--write-interval-ms', 1, 10_000, 10);
  const attach = flags.endpoints !== undefined;
  if (fault === 'isolate' && !attach) {
    const problem = namespaceProblem();
    if (problem !== null)
      throw new UsageError(
        `--fault isolate runs each node in its own network namespace, which needs ${problem}; use --fault pause or kill`,
      );
  }
  if (attach && fault !== 'transfer')
    throw new UsageError(
      `--fault ${fault} needs the drill's own cluster (omit --endpoints): it signals the node processes, which it cannot do to a cluster it attached to; with --endpoints only --fault transfer works`,
    );
  const heartbeatMs = wholeNumber(flags.heartbeatMs, '--heartbeat-ms', 1, 60_000, DEFAULTS['heartbeat-ms']);
  const electionTimeoutMs = wholeNumber(flags.electionTimeoutMs, '--election-timeout-ms', 1, 600_000, DEFAULTS['election-timeout-ms']);
  const basePort = flags.basePort === undefined ? undefined : wholeNumber(flags.basePort, '--base-port', 1, 65535 - 200 - nodes, 0);
  if (flags.html !== undefined && flags.html === '') throw new UsageError('--html needs a file name');

  const interrupt = untilInterrupted();
  const tempDir = !attach && flags.dataDir === undefined ? mkdtempSync(join(tmpdir(), 'leaderd-drill-')) : null;
  const dataDir = attach ? null : resolve(flags.dataDir ?? tempDir!);
  let cluster: DrillLocalCluster | null = null;
  // Whatever ends this process, no node it started outlives it.
  const lastResort = () => cluster?.killAllNow();
  process.once('exit', lastResort);
  const progress = progressReporter(trials, flags.json === true);
  let result: DrillResult & { interrupted?: boolean };
  try {
    let target: DrillTarget;
    if (dataDir !== null) {
      cluster = await DrillLocalCluster.start({
        nodes,
        dataDir,
        ...(basePort !== undefined ? { basePort } : {}),
        ...(flags.heartbeatMs ? { heartbeatMs: String(heartbeatMs) } : {}),
        ...(flags.electionTimeoutMs ? { electionTimeoutMs: String(electionTimeoutMs) } : {}),
        isolation: fault === 'isolate',
      });
      target = cluster;
      progress.line(`drill: ${nodes}-node local cluster on ${cluster.endpoints.join(',')}, data in ${dataDir}`);
    } else target = attachedTarget(parseEndpoints(flags.endpoints));
    const security = clientSecurity(flags);
    result = await runDrill({
      fault,
      trials,
      target,
      security,
      writeIntervalMs,
      signal: interrupt.signal,
      settings: { heartbeatMs, electionTimeoutMs, nodes: target.endpoints.length },
      onPhase: (what) => progress.phase(what),
      onTrial: (t) => progress.trial(t),
    });
  } finally {
    progress.stop();
    interrupt.dispose();
    await cluster?.stop();
    process.off('exit', lastResort);
    if (tempDir !== null) rmSync(tempDir, { recursive: true, force: true });
  }

  const reportDir = resolve(flags.reportDir ?? flags.dataDir ?? 'data');
  const saved = join(reportDir, 'drills', `${result.startedAt.replace(/[:.]/g, '-')}.json`);
  mkdirSync(join(reportDir, 'drills'), { recursive: true });
  writeFileSync(saved, JSON.stringify(result, null, 2) + '\n');
  if (flags.html !== undefined) writeFileSync(flags.html, renderDrillReport(result));
  if (flags.json) out(JSON.stringify(result, null, 2));
  else {
    out(drillTable(result));
    out(`\nresult saved to ${saved}${flags.html !== undefined ? `; report: ${flags.html}` : ''}`);
  }
  if (result.interrupted) throw new CliError([`drill interrupted after ${result.trials.length} of ${trials} trials`], EXIT_INTERRUPTED);
  const failed = result.trials.filter((t) => t.error !== undefined).length;
  const problems = [
    ...(result.summary.writesLost > 0 ? [`${result.summary.writesLost} acknowledged writes lost`] : []),
    ...(result.summary.leaseOverlaps > 0 ? [`two leaders at once in ${result.summary.leaseOverlaps} trials`] : []),
    ...(failed > 0 ? [`${failed} trials failed`] : []),
  ];
  if (problems.length > 0) throw new CliError([`drill found: ${problems.join(', ')}`], EXIT_RUNTIME);
}

/** Why this process cannot make network namespaces, or null when it can (root and iproute2). */
function namespaceProblem(): string | null {
  if (process.getuid?.() !== 0) return 'root';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return "iproute2's ip command (apt-get install iproute2)";
  }
  return null;
}

/** A cluster the drill did not start: it can ask for a switchover, nothing more. */
function attachedTarget(endpoints: string[]): DrillTarget {
  const cannot = (what: string) => () => Promise.reject(new Error(`cannot ${what} a node of a cluster the drill attached to`));
  return {
    endpoints,
    can: { kill: false, pause: false, restart: false, isolate: false },
    kill: cannot('kill'),
    restart: cannot('restart'),
    pause: cannot('pause'),
    resume: cannot('resume'),
    isolate: cannot('isolate'),
    heal: cannot('heal'),
  };
}

const ms = (x: number | null | undefined) => (x === null || x === undefined ? '-' : String(Math.round(x)));

/** The closing table: one row per measure, min to max over the trials that measured it. */
export function drillTable(r: DrillResult): string {
  const row = (name: string, s: DrillStats | null) => [name, ms(s?.min), ms(s?.median), ms(s?.p90), ms(s?.p99), ms(s?.max)];
  const failed = r.trials.filter((t) => t.error !== undefined);
  return [
    `leaderd drill --fault ${r.fault}: ${r.summary.trials} trials, ${r.nodes} nodes, ` +
      `heartbeat ${r.settings.heartbeatMs ?? '?'} ms, election timeout ${r.settings.electionTimeoutMs ?? '?'} ms`,
    '',
    table([
      ['MEASURE (ms)', 'MIN', 'MEDIAN', 'P90', 'P99', 'MAX'],
      row('detection', r.summary.detectionMs),
      row('new leader', r.summary.newLeaderMs),
      row('write unavailability (RTO)', r.summary.rtoMs),
    ]),
    '',
    `acknowledged writes lost (RPO): ${r.summary.writesLost}`,
    `trials with two leaders at once: ${r.summary.leaseOverlaps}`,
    ...failed.map((t) => `trial ${t.index + 1} failed: ${t.error}`),
  ].join('\n');
}

interface Progress {
  line(s: string): void;
  phase(s: string): void;
  trial(t: DrillTrial): void;
  stop(): void;
}

/** A bar on a terminal (stderr), plain lines otherwise; with --json, stdout is left to the result. */
function progressReporter(total: number, json: boolean): Progress {
  const tty = process.stderr.isTTY === true;
  const say = (s: string) => (json ? process.stderr : process.stdout).write(s + '\n');
  if (!tty) {
    return {
      line: say,
      phase: () => {},
      trial: (t) =>
        say(
          `trial ${t.index + 1}/${total}: ${t.oldLeader ?? '?'} -> ${t.newLeader ?? '?'}  detection ${ms(t.detectionMs)} ms  ` +
            `new leader ${ms(t.newLeaderMs)} ms  RTO ${ms(t.rtoMs)} ms  lost ${t.writesLost}${t.leaseOverlap ? '  TWO LEADERS' : ''}` +
            (t.error ? `  error: ${t.error}` : ''),
        ),
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: 'drill [{bar}] {value}/{total} trials  {phase}', hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  // Started at the first phase, so that lines printed before it stay above the bar.
  let started = false;
  const ensure = () => {
    if (!started) bar.start(total, 0, { phase: '' });
    started = true;
  };
  return {
    line: (s) => process.stderr.write(s + '\n'),
    phase: (s) => {
      ensure();
      bar.update({ phase: s });
    },
    trial: (t) => {
      ensure();
      bar.update(t.index + 1, { phase: `last RTO ${ms(t.rtoMs)} ms, lost ${t.writesLost}` });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

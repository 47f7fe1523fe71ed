// `leaderd recover --data-dir DIR`: the last resort after losing a majority of the members
// (see server/recover.ts for what it does to the log and why).
import { resolve } from 'node:path';
import { RecoverError, recoverDataDir, type RecoverReport } from '../server/recover.js';
import { StorageRefusedError } from '../storage/errors.js';
import { out } from './client-context.js';
import { CliError, EXIT_REFUSED, EXIT_RUNTIME, UsageError } from './usage.js';

function describe(r: RecoverReport): string {
  return (
    `${r.nodeId} of cluster ${r.clusterId}: last entry ${r.lastIndex} (term ${r.lastTerm}), committed ${r.commitIndex}, ` +
    `voters ${r.voters.join(',') || '-'}${r.learners.length > 0 ? `, learners ${r.learners.join(',')}` : ''}`
  );
}

export async function runRecover(flags: { dataDir?: string; dryRun?: boolean; json?: boolean }): Promise<void> {
  if (flags.dataDir === undefined)
    throw new UsageError('recover needs --data-dir DIR (the stopped survivor to turn into a one-member cluster)');
  const dataDir = resolve(flags.dataDir);
  let report: RecoverReport;
  try {
    report = await recoverDataDir(dataDir, { dryRun: flags.dryRun === true });
  } catch (err) {
    if (err instanceof RecoverError) throw new CliError([err.message], EXIT_REFUSED);
    if (err instanceof StorageRefusedError)
      throw new CliError(
        [
          err.kind === 'locked'
            ? `${dataDir} is in use: stop the node running on it first (recover works on a stopped member)`
            : err.message,
        ],
        err.kind === 'locked' ? EXIT_RUNTIME : EXIT_REFUSED,
      );
    throw err;
  }
  if (flags.json) return out(JSON.stringify(report));
  if (report.applied === false) {
    out(describe(report));
    out('dry run: nothing written. Recover the survivor with the highest term, then the highest last entry.');
    return;
  }
  process.stderr.write(
    [
      '',
      '  WARNING: FORCED RECOVERY. This member is now a cluster of one.',
      `  ${report.nodeId} kept its own log up to entry ${report.lastIndex} (term ${report.lastTerm}) and declared all of it committed,`,
      `  including ${report.uncommittedKept} entries past its commit index ${report.commitIndex} that the old majority may never have committed.`,
      `  Whatever the lost members (${report.removed.join(', ') || 'none'}) committed and this log lacks is GONE:`,
      '  writes acknowledged to clients shortly before the failure may be missing. Check the data before clients use it.',
      `  Do NOT restart ${report.removed.join(', ') || 'the other members'} on their old data dirs: wipe them, start them with --join,`,
      '  and add them back one at a time (leaderd members add ID --peer-address HOST:PORT --client-address HOST:PORT).',
      '',
    ].join('\n') + '\n',
  );
  out(`recovered ${describe({ ...report, voters: [report.nodeId], learners: [] })}; start it as before (leaderd start ...)`);
}

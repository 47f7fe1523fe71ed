// Exit codes and error printing shared by every subcommand: each failure is one line on
// stderr (one per endpoint when the cluster could not be reached), prefixed "leaderd: ".
import { CommanderError } from 'commander';
import { ConfigError } from '../server/config.js';

/** Success. */
export const EXIT_OK = 0;
/** The operation failed: refused by the server, a key not found, a comparison false, an endpoint unhealthy. */
export const EXIT_RUNTIME = 1;
/** Bad usage or input: a flag, a config file, or a request the server calls INVALID_ARGUMENT. */
export const EXIT_USAGE = 2;
/**
 * A refusal that only an operator can resolve (a data dir of another cluster or node, a
 * member whose data is gone): the same code as bad configuration, so a supervisor that
 * restarts on failure (cluster/three-hosts/leaderd.service) does not loop on it.
 */
export const EXIT_REFUSED = EXIT_USAGE;
/** The cluster could not be reached, or has no leader (no quorum): worth retrying later. */
export const EXIT_UNAVAILABLE = 3;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A failure already phrased for the operator: its lines and its exit code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly lines: readonly string[],
    readonly exitCode: number,
  ) {
    super(lines.join('; '));
  }
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();

/** Print `err` on stderr and return the exit code it deserves. */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT_OK;
    // Help shown because no command was given (commander exits 1 then): a usage error, like
    // git and consul; `leaderd --help` and `leaderd help` exit 0.
    if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    // commander puts a typo's suggestion on a second line: "(Did you mean status?)".
    const hint =
      err.code === 'commander.unknownOption' && ['lock', 'elect'].includes(process.argv[2] ?? '')
        ? ' (the command to run goes after --: leaderd lock NAME -- CMD ARGS...)'
        : '';
    process.stderr.write(`leaderd: ${oneLine(err.message.replace(/^error: /, ''))}${hint}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof CliError) {
    for (const l of err.lines) process.stderr.write(`leaderd: ${oneLine(l)}\n`);
    return err.exitCode;
  }
  if (err instanceof UsageError || err instanceof ConfigError) {
    process.stderr.write(`leaderd: ${oneLine(err.message)}\n`);
    return EXIT_USAGE;
  }
  process.stderr.write(`leaderd: ${oneLine((err as Error)?.message ?? String(err))}\n`);
  return EXIT_RUNTIME;
}

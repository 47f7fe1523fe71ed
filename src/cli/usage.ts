// Bad usage or configuration: one line naming the problem on stderr, exit code 2.
import { CommanderError } from 'commander';
import { ConfigError } from '../server/config.js';

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;
/**
 * A refusal that only an operator can resolve (a data dir of another cluster or node, a
 * member whose data is gone): the same code as bad configuration, so a supervisor that
 * restarts on failure (cluster/three-hosts/leaderd.service) does not loop on it.
 */
export const EXIT_REFUSED = EXIT_USAGE;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Print `err` as one line and return the exit code it deserves. */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT_OK;
    process.stderr.write(`leaderd: ${err.message.replace(/^error: /, '').split('\n')[0]}\n`);
    return EXIT_USAGE;
  }
  const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();
  if (err instanceof UsageError || err instanceof ConfigError) {
    process.stderr.write(`leaderd: ${oneLine(err.message)}\n`);
    return EXIT_USAGE;
  }
  process.stderr.write(`leaderd: ${oneLine((err as Error)?.message ?? String(err))}\n`);
  return EXIT_RUNTIME;
}

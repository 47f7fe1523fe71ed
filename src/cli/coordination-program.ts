// The command line of the coordination commands (KV, leases, elections and locks). Only
// commander is loaded here; each action imports its module when it runs.
import type { Command } from 'commander';

const kv = () => import('./kv-commands.js');
const lease = () => import('./lease-commands.js');

type Opts = Record<string, string | boolean | undefined>;

function examples(c: Command, lines: string[]): Command {
  return c.addHelpText('after', `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`);
}

/** Adds get, put, del, cas, txn, lease ..., election, lock and elect to `program`. */
export function addCoordinationCommands(program: Command, clientOptions: (c: Command) => Command): void {
  const base64 = (c: Command) => c.option('--base64', 'values in and out as base64 instead of UTF-8 text');

  examples(
    clientOptions(
      base64(
        program
          .command('get')
          .argument('<key>', 'the key, or the prefix with --prefix')
          .description('read a key (prints its value) or, with --prefix, every key under a prefix (a table)')
          .option('--prefix', 'every key that starts with <key>')
          .option('--limit <n>', 'at most n keys (with --prefix)')
          .option('--keys-only', 'print only the keys (with --prefix)')
          .option('--serializable', "answer from the endpoint's own copy (may be stale; works without a quorum)"),
      ),
    ),
    ['leaderd get config/mode', 'leaderd get config/ --prefix', 'leaderd get config/mode --json'],
  ).action(async (key: string, o: Opts) => (await kv()).runGet(key, o));

  examples(
    clientOptions(
      base64(
        program
          .command('put')
          .argument('<key>')
          .argument('<value>', "the value as text; '-' reads it from stdin")
          .description('write a key')
          .option('--lease <id>', 'attach the key to a lease: it is deleted when the lease ends'),
      ),
    ),
    ['leaderd put config/mode active', 'leaderd put config/blob - < blob.json', 'leaderd put session/a here --lease 42'],
  ).action(async (key: string, value: string, o: Opts) => (await kv()).runPut(key, value, o));

  examples(
    clientOptions(
      program
        .command('del')
        .argument('<key>', 'the key, or the prefix with --prefix')
        .description('delete a key, or every key under a prefix')
        .option('--prefix', 'every key that starts with <key>'),
    ),
    ['leaderd del config/mode', 'leaderd del config/ --prefix'],
  ).action(async (key: string, o: Opts) => (await kv()).runDel(key, o));

  examples(
    clientOptions(
      base64(
        program
          .command('cas')
          .argument('<key>')
          .argument('<value>', "the new value; '-' reads it from stdin")
          .description('compare-and-swap: write only if the key is as expected; exit 1 (and its current value) if not')
          .option('--expect <value>', 'the value the key must have')
          .option('--expect-absent', 'the key must not exist (create only)')
          .option('--expect-mod-revision <n>', "the revision of the key's last change must be n")
          .option('--lease <id>', 'attach the key to a lease'),
      ),
    ),
    ['leaderd cas config/mode active --expect passive', 'leaderd cas config/owner me --expect-absent'],
  ).action(async (key: string, value: string, o: Opts) => (await kv()).runCas(key, value, o));

  examples(
    clientOptions(
      base64(
        program
          .command('txn')
          .argument('[file]', "JSON transaction; '-' or none reads stdin")
          .description('a transaction: if every comparison holds run "success", else "failure"; exit 1 when a comparison was false'),
      ),
    ),
    [
      `echo '{"compare":[{"key":"a","target":"value","op":"=","operand":"1"}],` +
        `"success":[{"type":"put","key":"b","value":"2"}],"failure":[{"type":"get","key":"a"}]}' | leaderd txn`,
      'targets: value version createRevision modRevision lease; ops: = != > <; op types: put delete (prefix) get',
    ],
  ).action(async (file: string | undefined, o: Opts) => (await kv()).runTxn(file, o));

  const leaseCmd = program.command('lease').description('grant, inspect, keep alive or revoke a lease');
  examples(clientOptions(leaseCmd.command('grant').argument('<ttl-ms>', 'time to live, ms').description('grant a lease; prints its id')), [
    'leaderd lease grant 10000',
    'leaderd put session/a here --lease $(leaderd lease grant 10000 --json | jq .id)',
  ]).action(async (ttl: string, o: Opts) => (await lease()).runLeaseGrant(ttl, o));
  clientOptions(leaseCmd.command('revoke').argument('<id>').description('end a lease now: its keys are deleted')).action(
    async (id: string, o: Opts) => (await lease()).runLeaseRevoke(id, o),
  );
  clientOptions(
    leaseCmd
      .command('ttl')
      .argument('<id>')
      .description("a lease's remaining time; exit 1 if it no longer exists")
      .option('--keys', 'also list the keys attached to it'),
  ).action(async (id: string, o: Opts) => (await lease()).runLeaseTtl(id, o));
  clientOptions(
    leaseCmd
      .command('keep-alive')
      .argument('<id>')
      .description('renew a lease every third of its TTL until Ctrl-C; exit 1 when it is gone')
      .option('--once', 'renew once and exit'),
  ).action(async (id: string, o: Opts) => (await lease()).runLeaseKeepAlive(id, o));

  examples(
    clientOptions(
      base64(
        program
          .command('election')
          .argument('<name>')
          .description('who leads election <name> (its value and fencing token) and who waits, in order'),
      ),
    ),
    ['leaderd election billing-primary', 'leaderd election billing-primary --json'],
  ).action(async (name: string, o: Opts) => (await lease()).runInspect('election', name, o));

  const holder = () => import('./run-as-holder.js');
  examples(
    clientOptions(
      program
        .command('lock')
        .argument('<name>')
        .argument('[command...]', 'run this while holding the lock (after --)')
        .description('run a command while holding lock <name>; without a command, show who holds it and who waits')
        .option('--ttl-ms <ms>', 'TTL of the lease behind the lock (default 5000)')
        .option('--grace-ms <ms>', 'the command gets SIGTERM this long before the lease could expire, SIGKILL at half (default TTL/4)'),
    ),
    [
      'leaderd lock nightly-report -- ./report.sh --full   # LEADERD_TOKEN holds the fencing token',
      'leaderd lock nightly-report                         # holder and waiters',
    ],
  ).action(async (name: string, command: string[], o: Opts) =>
    command.length === 0 ? (await lease()).runInspect('lock', name, o) : (await holder()).exitWithCommand('lock', name, command, o),
  );
  examples(
    clientOptions(
      program
        .command('elect')
        .argument('<name>')
        .argument('<command...>', 'run this while leading (after --)')
        .description('campaign in election <name> and run a command while leading it')
        .option('--value <v>', "this candidate's value, shown to observers (default: host:pid)")
        .option('--ttl-ms <ms>', 'TTL of the lease behind the leadership (default 5000)')
        .option('--grace-ms <ms>', 'the command gets SIGTERM this long before the lease could expire, SIGKILL at half (default TTL/4)'),
    ),
    ['leaderd elect billing-primary --value host-a -- node primary.js'],
  ).action(async (name: string, command: string[], o: Opts) => (await holder()).exitWithCommand('elect', name, command, o));
}

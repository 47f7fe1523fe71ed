// Two process-wide settings that keep a node's resident memory near the size of its
// state. Both were found with `npm run bench:state` (1 GiB of 1 MiB values + 1,000,000
// small keys), sampling each node's /proc status and its V8 heap and external memory.
//
// - glibc's malloc raises its mmap threshold each time a large block it had mapped is
//   freed (up to 32 MiB). After the first freed gRPC message of a few MiB, 1 MiB values
//   and message buffers all come from the heap instead, and the messages freed between
//   the values the store keeps leave holes that are never given back: 250-300 MiB of a
//   follower's RSS was such holes. A fixed threshold (any MALLOC_MMAP_THRESHOLD_ turns the
//   adjustment off) keeps every block of 128 KiB or more in a mapping of its own, returned
//   to the system when freed. glibc reads it only as the process starts, so the launchers
//   set it for the process they start (bin/leaderd, `leaderd local`, the Docker image).
// - V8 lets its old generation grow to a few times what survived the last full collection
//   before collecting again. With a million keys' records on the heap (~180 MiB), a
//   follower answering Range reads of every key grew to 500 MiB of heap. Growing by half
//   collects sooner, with pauses as short as without it (bench:state's load, one run:
//   52-60 ms, no leader change). Tighter looked worse (one run each, some of them on a
//   machine shared with another bench): at 25% the longest pauses were 62-183 ms with 0-2
//   leader changes, at 10% 182 ms with 31. It goes on Node's command line: Node warns that
//   v8.setFlagsFromString after start-up may behave unpredictably, and in one run the
//   same 50% set that way paused 289 ms with 9 leader changes.

/** Set in the environment of a node's process; glibc's own initial threshold, now fixed. */
export const MALLOC_MMAP_THRESHOLD_BYTES = 128 << 10;
/** V8's old generation may grow by this percentage of what survived before it collects again. */
export const HEAP_GROWING_PERCENT = 50;
/** Node's flags for a node's process (before the script; an operator's flags after them win). */
export const NODE_MEMORY_FLAGS: readonly string[] = [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`];

/** Whether `env` fixes malloc's mmap threshold, by the variable or by a glibc tunable. */
export function mallocTuned(env: NodeJS.ProcessEnv): boolean {
  return env['MALLOC_MMAP_THRESHOLD_'] !== undefined || /(^|:)glibc\.malloc\.mmap_threshold=/.test(env['GLIBC_TUNABLES'] ?? '');
}

/** `env` for a node's process: the mmap threshold fixed, unless the operator set it already. */
export function nodeProcessEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return mallocTuned(env) ? env : { ...env, MALLOC_MMAP_THRESHOLD_: String(MALLOC_MMAP_THRESHOLD_BYTES) };
}

/**
 * Whether this process runs on glibc, whose malloc the threshold concerns (musl's, in
 * Alpine images, does not fragment this way and ignores the variable).
 */
export function onGlibc(): boolean {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime !== undefined;
}

/** The heap growth this process was started with (the last such flag wins, as in V8), or null. */
export function heapGrowingPercent(execArgv: readonly string[] = process.execArgv): number | null {
  let found: number | null = null;
  for (const a of execArgv) {
    const m = /^--heap[-_]growing[-_]percent=(\d+)$/.exec(a);
    if (m) found = Number(m[1]);
  }
  return found;
}

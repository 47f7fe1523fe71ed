// Fencing tokens end to end: every grant, of the cluster's own leadership (term) and of
// Election and Lock (creation revision), carries a token strictly greater than every
// earlier grant's, across holders and across failovers of the Raft leader.
import { afterAll, describe, expect, it } from 'vitest';
import { LeaderdClient } from '../../src/client/leaderd-client.js';
import { LocalCluster, sleep } from './cluster.js';

let cluster: LocalCluster | null = null;
const clients: LeaderdClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
});

describe('fencing tokens', () => {
  it('strictly increase across every election and lock grant, through leader SIGKILLs and restarts', async () => {
    cluster = await LocalCluster.create({ nodes: 3 });
    cluster.startAll();
    await cluster.waitForLeader();
    const c = cluster;
    const holders = Array.from({ length: 3 }, () => new LeaderdClient({ endpoints: c.endpoints(), timeoutMs: 10_000 }));
    clients.push(...holders);
    const electionTokens: number[] = [];
    const lockTokens: number[] = [];
    const terms: number[] = [(await c.waitForLeader()).term];
    for (let round = 0; round < 6; round++) {
      const h = holders[round % holders.length]!;
      const l = await h.campaign('fenced', `holder-${round}`, { ttlMs: 2000 });
      electionTokens.push(l.token);
      const lock = await h.lock('fenced-lock', { ttlMs: 2000 });
      lockTokens.push(lock.token);
      await lock.unlock();
      await l.resign();
      if (round % 2 === 1) {
        // Fail the Raft leader over between grants.
        const leader = await c.waitForLeader();
        await c.kill(leader.leaderId);
        const next = await c.waitForLeader({ not: leader.leaderId });
        terms.push(next.term);
        c.start(leader.leaderId);
        await sleep(200);
      }
    }
    console.log(`election tokens ${electionTokens.join(',')}; lock tokens ${lockTokens.join(',')}; leader terms ${terms.join(',')}`);
    const strictlyIncreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);
    expect(strictlyIncreasing(electionTokens)).toBe(true);
    expect(strictlyIncreasing(lockTokens)).toBe(true);
    expect(strictlyIncreasing(terms)).toBe(true);
    // Tokens are cluster-wide revisions: election and lock grants never share one.
    expect(new Set([...electionTokens, ...lockTokens]).size).toBe(electionTokens.length + lockTokens.length);
  }, 120_000);
});

// A secured cluster as an operator runs it and as an attacker meets it: three real
// `leaderd start` processes with mutual TLS between peers (certificates made by
// `leaderd certs init`), TLS on the client port and bearer tokens with roles. Hostile
// peers are in-process transports holding a wrong, foreign or another member's
// certificate, dialing a real node's peer port.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { LeaderdClient } from '../../src/client/leaderd-client.js';
import { ClusterClient } from '../../src/client/cluster-client.js';
import { ReloadingCertificates } from '../../src/security/tls.js';
import { GrpcTransport } from '../../src/transport/grpc-transport.js';
import type { Message } from '../../src/raft/types.js';
import { LocalCluster, lines, runCli, sleep, waitFor } from './cluster.js';

const TOKENS = {
  admin: 'admin-token-0123456789abcdef',
  writer: 'writer-token-0123456789abcdef',
  reader: 'reader-token-0123456789abcdef',
  jobs: 'jobs-token-0123456789abcdef',
};

let dir: string;
let certs: string;
let foreign: string;
let c: LocalCluster | null = null;
const closers: (() => Promise<void> | void)[] = [];

const cluster = (): LocalCluster => c!;
const ca = () => readFileSync(join(certs, 'ca.crt'));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'leaderd-sec-'));
  certs = join(dir, 'certs');
  foreign = join(dir, 'foreign');
  for (const d of [certs, foreign]) {
    const r = await runCli(['certs', 'init', '--dir', d, '--nodes', 'n1,n2,n3']);
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toContain(join(d, 'n2.key'));
  }
  writeFileSync(
    join(dir, 'tokens.json'),
    JSON.stringify({
      tokens: [
        { name: 'admin', role: 'admin', token: TOKENS.admin },
        { name: 'writer', role: 'write', token: TOKENS.writer },
        { name: 'reader', role: 'read', token: TOKENS.reader },
        { name: 'jobs', role: 'write', token: TOKENS.jobs, prefixes: ['jobs/'] },
      ],
    }),
  );
  c = await LocalCluster.create({ nodes: 3, security: { ca: ca(), token: TOKENS.admin } });
  for (const s of c.specs) {
    c.start(s.id, {
      '--peer-cert': join(certs, `${s.id}.crt`),
      '--peer-key': join(certs, `${s.id}.key`),
      '--peer-ca': join(certs, 'ca.crt'),
      '--client-cert': join(certs, `${s.id}.crt`),
      '--client-key': join(certs, `${s.id}.key`),
      '--auth-token-file': join(dir, 'tokens.json'),
    });
  }
  try {
    await c.waitForLeader({ timeoutMs: 30_000 });
  } catch (err) {
    console.error(c.logTails());
    throw err;
  }
});

afterAll(async () => {
  for (const f of closers.splice(0).reverse()) await f();
  if (c) await c.stop();
  rmSync(dir, { recursive: true, force: true });
});

function client(token: string | undefined, opts: { tls?: boolean } = {}): LeaderdClient {
  const lc = new LeaderdClient({
    endpoints: cluster().endpoints(),
    timeoutMs: 5000,
    retry: { attempts: 3 },
    ...(opts.tls === false ? {} : { security: { ca: ca(), token } }),
  });
  closers.push(() => lc.close());
  return lc;
}

async function codeOf(p: Promise<unknown>): Promise<number | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

describe('a TLS cluster with tokens', () => {
  it("works end to end: writes and reads through every node (followers forward with the caller's token), CLI status and health", async () => {
    const admin = client(TOKENS.admin);
    for (const [i, e] of cluster().endpoints().entries()) {
      const one = new LeaderdClient({ endpoints: [e], timeoutMs: 5000, security: { ca: ca(), token: TOKENS.writer } });
      closers.push(() => one.close());
      await one.put(`k${i}`, `v${i}`);
    }
    for (let i = 0; i < 3; i++) expect(Buffer.from((await admin.get(`k${i}`)).kv!.value).toString()).toBe(`v${i}`);

    const env = { LEADERD_CACERT: join(certs, 'ca.crt'), LEADERD_TOKEN: TOKENS.reader, LEADERD_ENDPOINTS: cluster().endpoints().join(',') };
    const status = await runCliEnv(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as { nodeId: string }[]).map((r) => r.nodeId).sort()).toEqual(['n1', 'n2', 'n3']);
    // The probe needs no token (orchestrators hold none), but still TLS.
    const health = await runCliEnv(['probe', '--endpoints', cluster().endpoint('n1')], { LEADERD_CACERT: env.LEADERD_CACERT });
    expect(health.code, health.stderr).toBe(0);
    expect(health.stdout).toMatch(/ready: SERVING/);
    const plain = await runCliEnv(['probe', '--live', '--endpoints', cluster().endpoint('n1'), '--timeout-ms', '1000'], {});
    expect(plain.code).not.toBe(0);
  });

  it('refuses clients: no token UNAUTHENTICATED, a read-only token a write PERMISSION_DENIED, a scoped token outside its prefix, a writer a transfer', async () => {
    expect(await codeOf(client(undefined).put('x', 'y'))).toBe(grpc.status.UNAUTHENTICATED);
    expect(await codeOf(client('not-a-real-token-at-all').get('x'))).toBe(grpc.status.UNAUTHENTICATED);
    const reader = client(TOKENS.reader);
    expect(await codeOf(reader.get('k0'))).toBe('ok');
    expect(await codeOf(reader.put('k0', 'changed'))).toBe(grpc.status.PERMISSION_DENIED);
    const jobs = client(TOKENS.jobs);
    expect(await codeOf(jobs.put('jobs/a', '1'))).toBe('ok');
    expect(await codeOf(jobs.put('billing/a', '1'))).toBe(grpc.status.PERMISSION_DENIED);
    expect(await codeOf(jobs.get('k0'))).toBe(grpc.status.PERMISSION_DENIED);
    // Both refusals carry their kind from the one error contract, and say nothing was applied.
    const kindOf = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (err: { kind?: string; outcome?: string }) => `${err.kind}/${err.outcome}`,
      );
    expect(await kindOf(reader.put('k0', 'changed'))).toBe('permission-denied/not-applied');
    expect(await kindOf(client(undefined).put('x', 'y'))).toBe('unauthenticated/not-applied');
    // Nothing the refused calls tried took effect.
    const admin = client(TOKENS.admin);
    expect(Buffer.from((await admin.get('k0')).kv!.value).toString()).toBe('v0');
    expect((await admin.get('billing/a')).kv).toBeFalsy();

    const env = { LEADERD_CACERT: join(certs, 'ca.crt'), LEADERD_ENDPOINTS: cluster().endpoints().join(',') };
    const refused = await runCliEnv(['transfer'], { ...env, LEADERD_TOKEN: TOKENS.writer });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/needs admin/);
    const before = await cluster().waitForLeader();
    const moved = await runCliEnv(['transfer', '--json'], { ...env, LEADERD_TOKEN: TOKENS.admin });
    expect(moved.code, moved.stderr).toBe(0);
    expect((JSON.parse(moved.stdout) as { leaderId: string }).leaderId).not.toBe(before.leaderId);
  });

  it('a plaintext client cannot talk to the TLS client port', async () => {
    const cc = new ClusterClient([cluster().endpoint('n1')], { timeoutMs: 1000 });
    closers.push(() => cc.close());
    expect(await codeOf(cc.getLeader())).not.toBe('ok');
  });
});

describe('hostile peers against a real node', () => {
  const silent = pino({ level: 'silent' });

  async function impostor(id: string, files: { cert: string; key: string; ca: string }): Promise<GrpcTransport> {
    const t = new GrpcTransport({
      nodeId: id,
      clusterId: cluster().clusterId,
      listenPeer: '127.0.0.1:0',
      advertisePeer: '127.0.0.1:1',
      advertiseClient: '203.0.113.9:7000',
      logger: silent,
      peerTls: new ReloadingCertificates(files, '--peer', silent),
    });
    closers.push(() => t.close());
    await t.start();
    return t;
  }

  const peerAddress = (id: string) => `127.0.0.1:${cluster().specs.find((s) => s.id === id)!.peerPort}`;
  const logOf = (id: string) =>
    lines(readFileSync(cluster().specs.find((s) => s.id === id)!.logPath, 'utf8')).flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });

  async function sendFor(t: GrpcTransport, msg: Message, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      t.send(msg);
      await sleep(50);
    }
  }

  it("n1's certificate speaking as n3, or a foreign CA's n3, is refused; a forged vote at term +1000 changes no node's term", async () => {
    const target = 'n2';
    const forgedTerm = (await cluster().status(target)).term + 1000;
    const vote = (from: string): Message => ({
      clusterId: cluster().clusterId,
      from,
      to: target,
      term: forgedTerm,
      type: 'vote',
      preVote: false,
      lastLogIndex: 1e9,
      lastLogTerm: forgedTerm,
      transfer: true,
    });
    const wrong = await impostor('n3', { cert: join(certs, 'n1.crt'), key: join(certs, 'n1.key'), ca: join(certs, 'ca.crt') });
    wrong.setPeers(new Map([[target, peerAddress(target)]]));
    const outsider = await impostor('n3', { cert: join(foreign, 'n3.crt'), key: join(foreign, 'n3.key'), ca: join(foreign, 'ca.crt') });
    outsider.setPeers(new Map([[target, peerAddress(target)]]));
    await Promise.all([sendFor(wrong, vote('n3'), 2000), sendFor(outsider, vote('n3'), 2000)]);

    await waitFor(`${target} logs the refusal`, () =>
      logOf(target).some((l) => l.msg === 'refusing peer stream: certificate of another member' && l.from === 'n3') ? true : undefined,
    );
    expect(wrong.stats().sent).toBe(0);
    expect(outsider.stats().sent).toBe(0);
    for (const s of cluster().specs) expect((await cluster().status(s.id)).term, s.id).toBeLessThan(forgedTerm);
    // The client address the impostor announced is handed out by nobody.
    for (const s of cluster().specs) {
      const members = await cluster().client(s.id).listMembers();
      expect(members.map((m) => m.clientAddress)).not.toContain('203.0.113.9:7000');
    }
  });

  it('a member speaking for another (timeoutNow "from the leader" on its own stream) is dropped and starts no election', async () => {
    const l = await cluster().waitForLeader();
    const follower = cluster()
      .specs.map((s) => s.id)
      .find((id) => id !== l.leaderId && id !== 'n3')!;
    // Holds n3's real certificate (a compromised member): its stream is accepted, but every
    // message must then be from n3.
    const m3 = await impostor('n3', { cert: join(certs, 'n3.crt'), key: join(certs, 'n3.key'), ca: join(certs, 'ca.crt') });
    m3.setPeers(new Map([[follower, peerAddress(follower)]]));
    const mark = logOf(follower).length;
    const forged: Message = { clusterId: cluster().clusterId, from: l.leaderId, to: follower, term: l.term, type: 'timeoutNow' };
    await sendFor(m3, forged, 1500);
    await waitFor(`${follower} drops the forged sender`, () =>
      logOf(follower).some(
        (l2) => l2.msg === 'dropping malformed peer frame' && String(l2.problem).includes(`claims to be from ${l.leaderId}`),
      )
        ? true
        : undefined,
    );
    expect(m3.stats().sent).toBeGreaterThan(0);
    // No transfer election followed: the follower never campaigned as if told to by the leader.
    expect(
      logOf(follower)
        .slice(mark)
        .some((x) => x.msg === 'campaign started' && x.transfer === true),
    ).toBe(false);
  });
});

/** Run the CLI with these LEADERD_* variables and no others from this process. */
function runCliEnv(args: string[], env: Record<string, string>): ReturnType<typeof runCli> {
  return runCli(args, { env: { LEADERD_CACERT: '', LEADERD_CERT: '', LEADERD_CERT_KEY: '', LEADERD_TOKEN: '', ...env } });
}

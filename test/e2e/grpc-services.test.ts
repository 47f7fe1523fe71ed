// The standard gRPC services on the client address, used through their own published
// protos as a load balancer's health checker or grpcurl would use them.
import { afterEach, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { LocalCluster, sleep, waitFor } from './cluster.js';

let cluster: LocalCluster | null = null;
const clients: grpc.Client[] = [];
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && cluster) console.error(cluster.logTails());
  for (const c of clients.splice(0)) c.close();
  await cluster?.stop();
  cluster = null;
});

const LOADER: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };
type Ctor = new (address: string, creds: grpc.ChannelCredentials) => grpc.Client;

function serviceCtor(protoFile: string, path: string[]): Ctor {
  let obj: unknown = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, LOADER));
  for (const p of path) obj = (obj as Record<string, unknown>)[p];
  return obj as Ctor;
}

// ---------------------------------------------------------------------------
// Health checking (grpc.health.v1)

interface HealthClient extends grpc.Client {
  Check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
}

function healthClient(address: string): HealthClient {
  const c = new (serviceCtor(healthProtoPath, ['grpc', 'health', 'v1', 'Health']))(
    address,
    grpc.credentials.createInsecure(),
  ) as HealthClient;
  clients.push(c);
  return c;
}

function check(c: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) => {
    c.Check({ service }, { deadline: Date.now() + 1000 }, (err, res) => (err ? reject(err) : resolve(res!.status)));
  });
}

describe('gRPC health checking', () => {
  it('a lone node of a 3-node cluster is NOT_SERVING; once a quorum is up and a leader known, every node is SERVING', async () => {
    const c = (cluster = await LocalCluster.create({ nodes: 3 }));
    c.start('n1');
    const lone = healthClient(c.endpoint('n1'));
    await waitFor('n1 to answer health checks', () => check(lone, ''), 10_000);
    // Several election timeouts: it campaigns, but never gets a quorum.
    const seen = new Set<string>();
    const t0 = performance.now();
    while (performance.now() - t0 < 1500) {
      seen.add(`'' ${await check(lone, '')}`);
      seen.add(`leaderd.v1.Cluster ${await check(lone, 'leaderd.v1.Cluster')}`);
      await sleep(50);
    }
    expect([...seen].sort()).toEqual(["'' NOT_SERVING", 'leaderd.v1.Cluster NOT_SERVING']);
    expect((await c.leaderSeenBy('n1')).leaderId).toBe('');
    await expect(check(lone, 'no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });

    c.start('n2');
    c.start('n3');
    const leader = await c.waitForLeader();
    for (const s of c.specs) {
      const h = s.id === 'n1' ? lone : healthClient(c.endpoint(s.id));
      await expect.poll(() => check(h, ''), { timeout: 5000, interval: 25 }).toBe('SERVING');
      expect(await check(h, 'leaderd.v1.Cluster')).toBe('SERVING');
    }
    console.log(`[e2e] health: n1 alone NOT_SERVING for 1.5 s; with ${leader.leaderId} leading (term ${leader.term}) all SERVING`);
  });
});

// ---------------------------------------------------------------------------
// Server reflection (grpc.reflection.v1 and v1alpha)

const reflectionProtoDir = join(dirname(createRequire(import.meta.url).resolve('@grpc/reflection')), '..', 'proto', 'grpc', 'reflection');

interface ReflectionResponse {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/** One request on a ServerReflectionInfo stream; resolves with the first response. */
function reflect(address: string, version: 'v1' | 'v1alpha', request: Record<string, string>): Promise<ReflectionResponse> {
  const Client = serviceCtor(join(reflectionProtoDir, version, 'reflection.proto'), ['grpc', 'reflection', version, 'ServerReflection']);
  const c = new Client(address, grpc.credentials.createInsecure()) as grpc.Client & {
    ServerReflectionInfo(opts: grpc.CallOptions): grpc.ClientDuplexStream<unknown, ReflectionResponse>;
  };
  clients.push(c);
  return new Promise((resolve, reject) => {
    const call = c.ServerReflectionInfo({ deadline: Date.now() + 5000 });
    call.once('data', (res: ReflectionResponse) => {
      resolve(res);
      call.end();
    });
    call.once('error', reject);
    call.write({ host: '', ...request });
  });
}

describe('gRPC server reflection', () => {
  for (const version of ['v1', 'v1alpha'] as const) {
    it(`a reflection client (${version}) lists leaderd.v1.Cluster and gets its file descriptor`, async () => {
      const c = (cluster = await LocalCluster.create({ nodes: 1 }));
      c.startAll();
      await c.waitForLeader();
      const listed = await reflect(c.endpoint('n1'), version, { listServices: '' });
      const names = listed.listServicesResponse?.service.map((s) => s.name) ?? [];
      expect(names).toContain('leaderd.v1.Cluster');
      const file = await reflect(c.endpoint('n1'), version, { fileContainingSymbol: 'leaderd.v1.Cluster' });
      expect(file.errorResponse).toBeUndefined();
      const descriptors = file.fileDescriptorResponse?.fileDescriptorProto ?? [];
      expect(descriptors.length).toBeGreaterThan(0);
      // A serialized FileDescriptorProto carries its names as plain UTF-8.
      const all = Buffer.concat(descriptors);
      for (const s of ['leaderd.v1', 'Cluster', 'WatchLeader', 'TransferLeader', 'LeaderInfo']) expect(all.includes(s), s).toBe(true);
      console.log(`[e2e] reflection ${version}: services ${names.join(', ')}`);
    });
  }
});

// A real gRPC server on 127.0.0.1 speaking leaderd.v1, with handlers supplied by each
// test: it plays a leaderd node that fails in exactly the way a test needs. Methods a
// test does not supply answer UNIMPLEMENTED.
import * as grpc from '@grpc/grpc-js';
import { loadPublicApi } from '../../src/transport/protos.js';

export type Handlers = Partial<Record<'Cluster' | 'KV' | 'Lease' | 'Election' | 'Lock', grpc.UntypedServiceImplementation>>;

export interface FakeNode {
  readonly endpoint: string;
  stop(): Promise<void>;
}

export async function startFakeNode(handlers: Handlers): Promise<FakeNode> {
  const api = loadPublicApi().leaderd.v1;
  const server = new grpc.Server();
  let sessions = 0;
  // Every LeaderdClient write first opens a session; a test that does not care gets one.
  const withSessions: Handlers = {
    ...handlers,
    KV: {
      OpenSession: (_c: unknown, cb: grpc.sendUnaryData<object>) => cb(null, { session: ++sessions, ttlMs: 60_000 }),
      KeepAliveSession: (c: grpc.ServerUnaryCall<{ session: number }, object>, cb: grpc.sendUnaryData<object>) =>
        cb(null, { session: c.request.session, ttlMs: 60_000 }),
      ...handlers.KV,
    },
  };
  for (const name of ['Cluster', 'KV', 'Lease', 'Election', 'Lock'] as const) {
    const impl = withSessions[name];
    if (impl) server.addService(api[name].service, impl);
  }
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  return {
    endpoint: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((r) => {
        server.forceShutdown();
        r();
      }),
  };
}

/** A ServiceError-shaped status with trailing metadata. */
export function failure(code: grpc.status, details: string, trailers: Record<string, string> = {}): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(trailers)) metadata.set(k, v);
  return { code, details, metadata };
}

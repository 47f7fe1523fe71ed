// A real grpc-js server on 127.0.0.1 guarded by fencingInterceptor.
import { afterEach, describe, expect, it } from 'vitest';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { FencingVerifier } from '../../src/fencing/verifier.js';
import {
  FENCING_HIGHEST_METADATA_KEY,
  fencingClientInterceptor,
  fencingInterceptor,
  fencingMetadata,
} from '../../src/fencing/interceptor.js';

const here = dirname(fileURLToPath(import.meta.url));
const def = protoLoader.loadSync(join(here, 'fenced.proto'), { keepCase: false, defaults: true });
const pkg = grpc.loadPackageDefinition(def) as unknown as {
  fencingtest: { Store: grpc.ServiceClientConstructor & { service: grpc.ServiceDefinition } };
};
type Reply = { value: string };
type StoreClient = grpc.Client & {
  Write(
    req: { resource: string; value: string },
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, r?: Reply) => void,
  ): void;
  Read(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, r?: Reply) => void): void;
};

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function startStore(verifier: FencingVerifier, opts: { resourceFromMetadata?: boolean } = {}) {
  const writes: string[] = [];
  const server = new grpc.Server({
    interceptors: [
      fencingInterceptor(verifier, {
        ...(opts.resourceFromMetadata ? { resourceOf: (c) => String(c.metadata.get('resource')[0] ?? 'default') } : {}),
        exempt: (m) => m === '/fencingtest.Store/Read',
      }),
    ],
  });
  server.addService(pkg.fencingtest.Store.service, {
    Write: (call: grpc.ServerUnaryCall<{ value: string }, Reply>, cb: grpc.sendUnaryData<Reply>) => {
      writes.push(call.request.value);
      cb(null, { value: call.request.value });
    },
    Read: (_call: grpc.ServerUnaryCall<object, Reply>, cb: grpc.sendUnaryData<Reply>) => cb(null, { value: writes.join(',') }),
  });
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  cleanups.push(() => new Promise<void>((r) => server.tryShutdown(() => r())));
  return { port, writes };
}

function client(port: number, interceptors: grpc.Interceptor[] = []): StoreClient {
  const c = new pkg.fencingtest.Store(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { interceptors }) as unknown as StoreClient;
  cleanups.push(() => c.close());
  return c;
}

function write(
  c: StoreClient,
  value: string,
  md: grpc.Metadata,
): Promise<{ ok: true; value: string } | { ok: false; err: grpc.ServiceError }> {
  return new Promise((resolve) =>
    c.Write({ resource: '', value }, md, { deadline: new Date(Date.now() + 5000) }, (err, r) =>
      resolve(err ? { ok: false, err } : { ok: true, value: r!.value }),
    ),
  );
}

describe('fencingInterceptor', () => {
  it('passes a call with a valid token and refuses a stale one with FAILED_PRECONDITION naming both tokens', async () => {
    const { port, writes } = await startStore(new FencingVerifier());
    const c = client(port);
    expect(await write(c, 'old-holder-1', fencingMetadata(5))).toEqual({ ok: true, value: 'old-holder-1' });
    expect(await write(c, 'new-holder', fencingMetadata(8))).toEqual({ ok: true, value: 'new-holder' });
    const stale = await write(c, 'old-holder-2', fencingMetadata(5));
    expect(stale.ok).toBe(false);
    if (stale.ok) return;
    expect(stale.err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(stale.err.details).toContain('5');
    expect(stale.err.details).toContain('highest seen 8');
    expect(stale.err.metadata.get(FENCING_HIGHEST_METADATA_KEY)[0]).toBe('8');
    // The refused write never reached the handler.
    expect(writes).toEqual(['old-holder-1', 'new-holder']);
  });

  it('accepts the current holder repeating its token', async () => {
    const { port, writes } = await startStore(new FencingVerifier());
    const c = client(port);
    for (const v of ['a', 'b', 'c']) expect((await write(c, v, fencingMetadata(3))).ok).toBe(true);
    expect(writes).toEqual(['a', 'b', 'c']);
  });

  it('refuses a call without a token, or with a malformed one, with FAILED_PRECONDITION', async () => {
    const { port, writes } = await startStore(new FencingVerifier());
    const c = client(port);
    const missing = await write(c, 'x', new grpc.Metadata());
    expect(!missing.ok && missing.err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(!missing.ok && missing.err.details).toContain('missing');
    const md = new grpc.Metadata();
    md.set('leaderd-fencing-token', 'twelve');
    const malformed = await write(c, 'y', md);
    expect(!malformed.ok && malformed.err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(writes).toEqual([]);
  });

  it('lets exempt methods through without a token', async () => {
    const { port } = await startStore(new FencingVerifier());
    const c = client(port);
    const r = await new Promise<Reply>((res, rej) => c.Read({}, new grpc.Metadata(), {}, (e, v) => (e ? rej(e) : res(v!))));
    expect(r.value).toBe('');
  });

  it('checks each resource independently when resourceOf distinguishes them', async () => {
    const { port } = await startStore(new FencingVerifier(), { resourceFromMetadata: true });
    const c = client(port);
    const on = (resource: string, token: number) => {
      const md = fencingMetadata(token);
      md.set('resource', resource);
      return md;
    };
    expect((await write(c, 'a1', on('a', 10))).ok).toBe(true);
    expect((await write(c, 'b1', on('b', 2))).ok).toBe(true);
    const staleA = await write(c, 'a2', on('a', 9));
    expect(!staleA.ok && staleA.err.code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('fencingClientInterceptor attaches the current token to every call', async () => {
    const { port, writes } = await startStore(new FencingVerifier());
    let token: number | undefined = 4;
    const c = client(port, [fencingClientInterceptor(() => token)]);
    expect((await write(c, 'first', new grpc.Metadata())).ok).toBe(true);
    token = undefined;
    const none = await write(c, 'second', new grpc.Metadata());
    expect(!none.ok && none.err.code).toBe(grpc.status.FAILED_PRECONDITION);
    token = 6;
    expect((await write(c, 'third', new grpc.Metadata())).ok).toBe(true);
    expect(writes).toEqual(['first', 'third']);
  });
});

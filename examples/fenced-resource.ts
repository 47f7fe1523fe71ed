// Example: a resource that only the current primary may write, guarded end to end by
// fencing tokens.
//
//   resource mode: a small gRPC service whose writes pass through fencingInterceptor: a
//                  write carrying a token older than the newest one seen is refused.
//   primary mode:  a process that campaigns for "resource-owner" through a leaderd
//                  cluster (LeaderdClient.campaign), then writes to the resource with its
//                  fencing token for as long as its leadership is provably valid.
//
// A primary that is paused (GC, SIGSTOP, VM freeze) wakes up with its leadership signal
// already aborted; and if it raced past that check, the resource still refuses its stale
// token. Both halves of fencing, in one place.
//
//   node dist/examples/fenced-resource.js resource --listen 127.0.0.1:7300 --log /tmp/accepted.log
//   node dist/examples/fenced-resource.js primary --id a --endpoints 127.0.0.1:7001,... --resource 127.0.0.1:7300
import * as grpc from '@grpc/grpc-js';
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FencingVerifier, fencingInterceptor, fencingMetadata, LeaderdClient } from '../src/index.js';

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
};

/** A one-method service defined in code (no .proto needed): Write({holder, data}). */
const ResourceService: grpc.ServiceDefinition = {
  Write: {
    path: '/example.Resource/Write',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};

const wall = (monotonicMs: number) => Math.round(Date.now() - performance.now() + monotonicMs);
const say = (line: string) => process.stdout.write(line + '\n');

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    listen: { type: 'string' },
    log: { type: 'string' },
    id: { type: 'string' },
    endpoints: { type: 'string' },
    resource: { type: 'string' },
    'ttl-ms': { type: 'string', default: '1000' },
    'every-ms': { type: 'string', default: '50' },
    // Demonstration: after losing leadership, try one write with the old token anyway, as
    // a primary whose check raced with a pause would; the resource must refuse it.
    'stale-write-after-loss': { type: 'boolean', default: false },
  },
});

if (positionals[0] === 'resource') {
  const verifier = new FencingVerifier();
  const server = new grpc.Server({ interceptors: [fencingInterceptor(verifier)] });
  server.addService(ResourceService, {
    Write: (call: grpc.ServerUnaryCall<{ holder: string; data: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const token = call.metadata.get('leaderd-fencing-token')[0]?.toString();
      appendFileSync(values.log!, `${token} ${call.request.holder} ${Date.now()}\n`);
      cb(null, { ok: true });
    },
  });
  server.bindAsync(values.listen!, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      process.stderr.write(`fenced-resource: cannot listen on ${values.listen}: ${err.message}\n`);
      process.exit(1);
    }
    say(`resource listening on ${values.listen}`);
  });
  process.on('SIGTERM', () => server.forceShutdown());
} else if (positionals[0] === 'primary') {
  const id = values.id!;
  const client = new LeaderdClient({ endpoints: values.endpoints!.split(',') });
  const Resource = grpc.makeGenericClientConstructor(ResourceService, 'Resource');
  const resource = new Resource(values.resource!, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Write(req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void;
  };
  const stop = new AbortController();
  process.on('SIGTERM', () => stop.abort());
  const everyMs = Number(values['every-ms']);
  while (!stop.signal.aborted) {
    const leadership = await client
      .campaign('resource-owner', id, { ttlMs: Number(values['ttl-ms']), signal: stop.signal })
      .catch(() => null);
    if (!leadership) continue;
    say(`GRANTED ${leadership.token} ${Date.now()}`);
    leadership.signal.addEventListener('abort', () => {
      say(`LOST ${leadership.token} validUntil=${wall(leadership.lease.validUntil)} detected=${Date.now()}`);
    });
    while (leadership.valid()) {
      await new Promise<void>((resolve) => {
        resource.Write({ holder: id, data: 'x' }, fencingMetadata(leadership.token), { deadline: Date.now() + 1000 }, (err) => {
          say(err ? `REFUSED ${leadership.token} ${err.details}` : `WROTE ${leadership.token} ${Date.now()}`);
          resolve();
        });
      });
      await new Promise((r) => setTimeout(r, everyMs));
    }
    if (values['stale-write-after-loss']) {
      await new Promise<void>((resolve) => {
        resource.Write({ holder: id, data: 'stale' }, fencingMetadata(leadership.token), { deadline: Date.now() + 1000 }, (err) => {
          say(err ? `STALE-REFUSED ${leadership.token} ${err.details}` : `STALE-ACCEPTED ${leadership.token}`);
          resolve();
        });
      });
    }
    await leadership.resign().catch(() => {});
  }
  client.close();
  resource.close();
} else {
  process.stderr.write(
    'usage: fenced-resource.js resource --listen host:port --log FILE | primary --id ID --endpoints LIST --resource host:port\n',
  );
  process.exit(2);
}

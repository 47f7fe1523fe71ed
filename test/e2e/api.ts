// Raw gRPC clients for the public API (what a generic gRPC client sees), for e2e tests.
import * as grpc from '@grpc/grpc-js';
import { loadPublicApi } from '../../src/transport/protos.js';
import type { KVClient } from '../../src/gen/leaderd/v1/KV.js';
import type { LeaseClient } from '../../src/gen/leaderd/v1/Lease.js';
import type { ElectionClient } from '../../src/gen/leaderd/v1/Election.js';
import type { LockClient } from '../../src/gen/leaderd/v1/Lock.js';
import type { LocalCluster } from './cluster.js';

export interface Api {
  kv: KVClient;
  lease: LeaseClient;
  election: ElectionClient;
  lock: LockClient;
  close(): void;
}

export function api(endpoint: string): Api {
  const v1 = loadPublicApi().leaderd.v1;
  const creds = grpc.credentials.createInsecure();
  const kv = new v1.KV(endpoint, creds);
  const lease = new v1.Lease(endpoint, creds);
  const election = new v1.Election(endpoint, creds);
  const lock = new v1.Lock(endpoint, creds);
  return {
    kv,
    lease,
    election,
    lock,
    close() {
      for (const c of [kv, lease, election, lock]) c.close();
    },
  };
}

export type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;

/** Promisify one unary call; the deadline defaults to 5 s. */
export function call<T>(f: (opts: grpc.CallOptions, cb: Callback<T>) => unknown, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    f({ deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

export function outcomeOf(err: unknown): string | undefined {
  return (err as grpc.ServiceError).metadata?.get('leaderd-outcome')[0]?.toString();
}

/** Put `key` = "v" through `endpoint` (any node: a follower forwards); resolves with the revision. */
export async function putKey(endpoint: string, key: string, timeoutMs = 5000): Promise<number> {
  const a = api(endpoint);
  try {
    const r = await call<{ revision: number }>((o, cb) => a.kv.Put({ key, value: Buffer.from('v') }, o, cb), timeoutMs);
    return Number(r.revision);
  } finally {
    a.close();
  }
}

/** Clients to the leader and to one follower of a started cluster, once it has a leader. */
export async function leaderAndFollower(cluster: LocalCluster): Promise<{ leaderApi: Api; followerApi: Api }> {
  const l = await cluster.waitForLeader();
  const follower = cluster.specs.find((s) => s.id !== l.leaderId)!.id;
  return { leaderApi: api(cluster.endpoint(l.leaderId)), followerApi: api(cluster.endpoint(follower)) };
}

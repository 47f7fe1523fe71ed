// One client shape for every system the bench drives, all through @grpc/grpc-js with
// proto-loader, so that differences in the figures are the servers', not the clients':
//   leaderd  leaderd.v1 KV.Put / KV.Get (linearizable) / Cluster.GetLeader
//   etcd     etcdserverpb KV.Put / KV.Range (linearizable) / Maintenance.Status
//   echo     the leaderd.v1 API answered at once by a bare grpc-js server (bench/echo-server.ts)
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPublicApi } from '../src/transport/protos.js';

export interface KvTarget {
  /** Put `value` at `key`; resolves once the server acknowledged it. */
  put(key: string, value: Uint8Array, timeoutMs?: number): Promise<void>;
  /** Linearizable read of `key`: its value, or null when absent. */
  get(key: string, timeoutMs?: number): Promise<Uint8Array | null>;
  /** The question a client asks to find the leader (leaderd GetLeader, etcd Status). */
  leaderQuery(timeoutMs?: number): Promise<void>;
  close(): void;
}

/**
 * Both systems' clients reconnect within 20-100 ms of a member coming back. grpc-js's
 * default (1 s, growing to 120 s) would add up to seconds to "restart -> caught up" and
 * to rejoin times, and that would be the client's delay, not the server's.
 */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 20,
  'grpc.max_reconnect_backoff_ms': 100,
};

/** What a leaderd node says of itself (Cluster.GetStatus). */
export interface LeaderdStatus {
  readonly nodeId: string;
  readonly role: string;
  readonly term: number;
  readonly leaderId: string;
  readonly commitIndex: number;
  readonly appliedIndex: number;
}

type Unary = (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void;

function call<T>(client: grpc.Client, method: string, req: unknown, timeoutMs: number): Promise<T> {
  const f = (client as unknown as Record<string, Unary>)[method]!.bind(client);
  return new Promise((resolve, reject) =>
    f(req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

/** A leaderd node, or the echo server that speaks the same API. */
export interface LeaderdTarget extends KvTarget {
  status(timeoutMs?: number): Promise<LeaderdStatus>;
}

export function leaderdTarget(endpoint: string): LeaderdTarget {
  const v1 = loadPublicApi().leaderd.v1;
  const creds = grpc.credentials.createInsecure();
  const kv = new v1.KV(endpoint, creds, CHANNEL_OPTIONS);
  // Same channel for both services: one connection per target, as for etcd.
  const cluster = new v1.Cluster(endpoint, creds, { channelOverride: kv.getChannel() });
  return {
    async put(key, value, timeoutMs = 10_000) {
      await call(kv, 'Put', { key, value }, timeoutMs);
    },
    async get(key, timeoutMs = 10_000) {
      const r = await call<{ found: boolean; value: Buffer }>(kv, 'Get', { key, serializable: false }, timeoutMs);
      return r.found ? r.value : null;
    },
    async leaderQuery(timeoutMs = 10_000) {
      await call(cluster, 'GetLeader', {}, timeoutMs);
    },
    status(timeoutMs = 1000) {
      return call<LeaderdStatus>(cluster, 'GetStatus', {}, timeoutMs);
    },
    close() {
      cluster.close();
      kv.close();
    },
  };
}

// ---------------------------------------------------------------------------------------
// etcd v3

export interface EtcdStatus {
  readonly header: { readonly memberId: string };
  readonly leader: string;
  readonly raftIndex: string;
  readonly raftTerm: string;
  readonly raftAppliedIndex: string;
}

interface EtcdApi {
  etcdserverpb: { KV: grpc.ServiceClientConstructor; Maintenance: grpc.ServiceClientConstructor };
}

let etcdApi: EtcdApi | undefined;

function loadEtcdApi(): EtcdApi {
  if (etcdApi) return etcdApi;
  // Found from here whether this runs from bench/ (tsx) or dist/bench/ (compiled).
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'bench', 'etcd', 'rpc.proto'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('bench/etcd/rpc.proto not found');
    dir = up;
  }
  // Member ids are 64-bit: strings, not numbers, or they lose their low bits.
  const def = protoLoader.loadSync(join(dir, 'bench', 'etcd', 'rpc.proto'), { keepCase: false, longs: String, defaults: true });
  etcdApi = grpc.loadPackageDefinition(def) as unknown as EtcdApi;
  return etcdApi;
}

export interface EtcdTarget extends KvTarget {
  status(timeoutMs?: number): Promise<EtcdStatus>;
}

export function etcdTarget(endpoint: string): EtcdTarget {
  const api = loadEtcdApi().etcdserverpb;
  const creds = grpc.credentials.createInsecure();
  const kv = new api.KV(endpoint, creds, CHANNEL_OPTIONS);
  const maint = new api.Maintenance(endpoint, creds, { channelOverride: kv.getChannel() });
  return {
    async put(key, value, timeoutMs = 10_000) {
      await call(kv, 'Put', { key: Buffer.from(key), value }, timeoutMs);
    },
    async get(key, timeoutMs = 10_000) {
      const r = await call<{ kvs: { value: Buffer }[] }>(kv, 'Range', { key: Buffer.from(key), serializable: false }, timeoutMs);
      return r.kvs[0]?.value ?? null;
    },
    async leaderQuery(timeoutMs = 10_000) {
      await call(maint, 'Status', {}, timeoutMs);
    },
    status(timeoutMs = 1000) {
      return call<EtcdStatus>(maint, 'Status', {}, timeoutMs);
    },
    close() {
      maint.close();
      kv.close();
    },
  };
}

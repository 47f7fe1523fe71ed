// Loads the .proto files that ship with the package. They are found relative to this
// module's own location, never the working directory: leaderd runs from `src/` under
// vitest, from `dist/src/` after tsc, and from node_modules/leaderd/ when embedded, and
// in each case the process may have been started from anywhere.

import { existsSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { responseBuffers } from './send-buffers.js';
import type { ProtoGrpcType as ClusterGrpcType } from '../gen/cluster.js';
import type { ProtoGrpcType as KvGrpcType } from '../gen/kv.js';
import type { ProtoGrpcType as LeaseGrpcType } from '../gen/lease.js';
import type { ProtoGrpcType as ElectionGrpcType } from '../gen/election.js';
import type { ProtoGrpcType as RaftGrpcType } from '../gen/raft.js';

/**
 * The one set of proto-loader options used everywhere. scripts/gen-proto-types.sh passes
 * the same ones to proto-loader-gen-types, so the types in src/gen/ describe exactly
 * the objects these loaders produce: camelCase fields, 64-bit integers as JS numbers,
 * enums as their names, omitted scalars filled with defaults, and a virtual field
 * naming which member of each oneof is set.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});

let cachedRoot: string | undefined;

/** The directory holding `leaderd/...` .proto files (the package's `proto/`). */
export function protoRoot(): string {
  if (cachedRoot !== undefined) return cachedRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'leaderd'))) {
      cachedRoot = candidate;
      return candidate;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(
        `leaderd: cannot find proto/leaderd in any parent of ${dirname(fileURLToPath(import.meta.url))}; ` +
          'the installation is incomplete (package.json "files" must include proto)',
      );
    }
    dir = parent;
  }
}

function protoFilesIn(relDir: string): string[] {
  const root = protoRoot();
  const files = readdirSync(join(root, relDir))
    .filter((f) => f.endsWith('.proto'))
    .sort()
    .map((f) => `${relDir}/${f}`);
  if (files.length === 0) throw new Error(`leaderd: no .proto files in ${join(root, relDir)}`);
  return files;
}

const definitions = new Map<string, protoLoader.PackageDefinition>();

/** The proto-loader package definition of every .proto under proto/<relDir> (e.g. for server reflection). */
export function loadDefinition(relDir: string): protoLoader.PackageDefinition {
  let definition = definitions.get(relDir);
  if (!definition) {
    definition = protoLoader.loadSync(protoFilesIn(relDir), { ...PROTO_LOADER_OPTIONS, includeDirs: [protoRoot()] });
    definitions.set(relDir, definition);
  }
  return definition;
}

function load(relDir: string): grpc.GrpcObject {
  return grpc.loadPackageDefinition(loadDefinition(relDir));
}

const roots = new Map<string, protobuf.Root>();

/**
 * The protobufjs root of every .proto under proto/<relDir>, parsed with the field names
 * proto-loader gives (keepCase false), so its types encode the objects leaderd builds
 * byte for byte as proto-loader's serializers do (send-buffers.ts encodes with them).
 */
function protobufRoot(relDir: string): protobuf.Root {
  let root = roots.get(relDir);
  if (root === undefined) {
    root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(protoRoot(), target));
    root.loadSync(protoFilesIn(relDir), { keepCase: PROTO_LOADER_OPTIONS.keepCase ?? false });
    root.resolveAll();
    roots.set(relDir, root);
  }
  return root;
}

/**
 * Every method's response serializer in `definition` replaced by one whose large
 * messages are encoded into reused buffers and sent without grpc-js's framing copy
 * (send-buffers.ts): a node answering Range reads of 1 MiB values made two 1 MiB
 * buffers per value otherwise, dead once written but freed only at V8's next full GC.
 */
function withFramedResponses(definition: protoLoader.PackageDefinition, root: protobuf.Root): protoLoader.PackageDefinition {
  for (const [name, def] of Object.entries(definition)) {
    if ('format' in def) continue;
    const service = root.lookupService(name);
    for (const [methodName, method] of Object.entries(def)) {
      const type = service.methods[methodName]?.resolvedResponseType;
      if (type) method.responseSerialize = responseBuffers.responseSerializer(type) as (value: unknown) => Buffer;
    }
  }
  return definition;
}

/**
 * The public API, package leaderd.v1: every .proto in proto/leaderd/v1/ (Cluster, KV,
 * Lease, Election, Lock).
 */
export type PublicApi = {
  leaderd: {
    v1: ClusterGrpcType['leaderd']['v1'] & KvGrpcType['leaderd']['v1'] & LeaseGrpcType['leaderd']['v1'] & ElectionGrpcType['leaderd']['v1'];
  };
};
/** The peer protocol, package leaderd.raft.v1. */
export type PeerApi = RaftGrpcType;

let publicApi: PublicApi | undefined;
let peerApi: PeerApi | undefined;

export function loadPublicApi(): PublicApi {
  publicApi ??= grpc.loadPackageDefinition(
    withFramedResponses(loadDefinition('leaderd/v1'), protobufRoot('leaderd/v1')),
  ) as unknown as PublicApi;
  return publicApi;
}

export function loadPeerApi(): PeerApi {
  peerApi ??= load('leaderd/raft/v1') as unknown as PeerApi;
  return peerApi;
}

/** leaderd.raft.v1.PeerEnvelope as protobufjs parses it (see protobufRoot). */
export function peerEnvelopeType(): protobuf.Type {
  return protobufRoot('leaderd/raft/v1').lookupType('leaderd.raft.v1.PeerEnvelope');
}

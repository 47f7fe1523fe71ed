// Plain result types of LeaderdClient: numbers for revisions and ids (the proto loader
// maps 64-bit integers to JS numbers, exact up to 2^53), Buffers for values.

export interface KeyValue {
  readonly key: string;
  readonly value: Buffer;
  readonly createRevision: number;
  readonly modRevision: number;
  /** Number of changes since creation (1 after the first put). */
  readonly version: number;
  /** Lease the key is attached to, 0 for none. */
  readonly lease: number;
}

export interface GetResult {
  /** The store's revision when the read was served. */
  readonly revision: number;
  /** null when the key does not exist. */
  readonly kv: KeyValue | null;
}

export interface RangeResult {
  readonly revision: number;
  readonly kvs: KeyValue[];
  /** More keys matched than `limit`: continue with startAfter = the last key. */
  readonly more: boolean;
}

export interface DeleteResult {
  readonly revision: number;
  readonly deleted: number;
}

export type CasExpectation = { readonly value: string | Uint8Array } | { readonly absent: true } | { readonly modRevision: number };

export interface CasResult {
  readonly succeeded: boolean;
  readonly revision: number;
  /** The key as it was when compared (on failure: why it failed); null when absent. */
  readonly current: { readonly value: Buffer; readonly modRevision: number } | null;
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision' | 'lease';
export type CompareOp = '=' | '!=' | '>' | '<';

export interface TxnCompare {
  readonly key: string;
  readonly target: CompareTarget;
  readonly op: CompareOp;
  /** A string/Uint8Array for target 'value', a number otherwise. */
  readonly operand: string | Uint8Array | number;
}

export type TxnOp =
  | { readonly type: 'put'; readonly key: string; readonly value: string | Uint8Array; readonly lease?: number }
  | { readonly type: 'delete'; readonly key: string; readonly prefix?: boolean }
  | { readonly type: 'get'; readonly key: string };

export type TxnOpResult =
  | { readonly type: 'put'; readonly revision: number }
  | { readonly type: 'delete'; readonly revision: number; readonly deleted: number }
  | { readonly type: 'get'; readonly revision: number; readonly kv: KeyValue | null };

export interface TxnRequestSpec {
  readonly compare: readonly TxnCompare[];
  readonly success: readonly TxnOp[];
  readonly failure?: readonly TxnOp[];
}

export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: number;
  readonly responses: TxnOpResult[];
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KeyValue;
}

/** The changes of one revision. */
export interface WatchBatch {
  readonly revision: number;
  readonly events: WatchEvent[];
}

export interface LeaseInfo {
  readonly id: number;
  /** Remaining, as the leader sees it; -1 when the lease does not exist. */
  readonly ttlMs: number;
  readonly grantedTtlMs: number;
  readonly keys: string[];
}

export interface ElectionLeader {
  /** False when nobody holds the election. */
  readonly found: boolean;
  readonly key: string;
  readonly value: Buffer;
  readonly token: number;
  /** The answering node's store revision. */
  readonly revision: number;
  readonly kv: KeyValue | null;
  /**
   * True when holders may have come and gone unreported before this one: the stream was
   * re-opened (on this or another node), the node installed a snapshot, or the client read
   * too slowly and the server coalesced answers. This value is the current holder.
   */
  readonly resynced?: boolean;
}

export interface LeaderInfo {
  /** Empty when no leader is known. */
  readonly leaderId: string;
  readonly leaderAddress: string;
  readonly term: number;
  /** The endpoint that answered. */
  readonly endpoint: string;
  /** True when leaders may have come and gone unreported before this one (the stream was re-opened). */
  readonly resynced?: boolean;
}

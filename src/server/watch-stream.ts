// Server side of KV.Watch and Election.Observe streams: flow control and gaps.
//
// A watcher never holds a private copy of the changes it has yet to send. It keeps only
// the next revision it owes the client and reads that revision from the store's shared,
// bounded history when the stream can take more (call.write returned true, or 'drain'
// fired). So a new watch replays its backlog at the pace the client reads it, and a
// client that stops reading costs grpc-js's small write buffer, not a growing queue.
// When the revision a watcher owes is no longer in the history it ends, never skipping:
//  - OUT_OF_RANGE when a snapshot from the leader replaced the state (the node never had
//    the revisions in between) or the start revision was compacted;
//  - RESOURCE_EXHAUSTED when the client read so slowly that history moved past it.
// Both name the oldest revision still available in the message and in trailing metadata
// `leaderd-oldest-revision`, so a client can re-read the state and watch again from there.
import type * as grpc from '@grpc/grpc-js';
import { ApiError, toStatus } from '../api/errors.js';
import type { HistoryEntry, KvStore } from '../statemachine/kv-store.js';
import type { KeyValue } from '../statemachine/commands.js';
import type { WatchResponse } from '../gen/leaderd/v1/WatchResponse.js';
import type { KeyValue as PbKeyValue } from '../gen/leaderd/v1/KeyValue.js';
import type { LeaderResponse } from '../gen/leaderd/v1/LeaderResponse.js';

export const OLDEST_REVISION_KEY = 'leaderd-oldest-revision';

function gapStatus(kind: 'compacted' | 'too-slow', details: string, oldest: number): grpc.StatusObject {
  const st = toStatus(new ApiError(kind, details));
  st.metadata.set(OLDEST_REVISION_KEY, String(oldest));
  return st;
}

type Stream<T> = grpc.ServerWritableStream<unknown, T>;

/** A stored key-value as the public API's KeyValue message (also used by coordination.ts). */
export function pbKv(kv: KeyValue): PbKeyValue {
  return {
    key: kv.key,
    value: kv.value,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

/** One KV.Watch stream. `close()` detaches it from the store (the caller does it when the call ends). */
export class KvWatchStream {
  private next = 0;
  private paused = false;
  private ended = false;
  private readonly detach: (() => void)[] = [];

  constructor(
    private readonly call: Stream<WatchResponse>,
    private readonly store: KvStore,
    private readonly req: { readonly key: string; readonly prefix: boolean; readonly startRevision: number },
  ) {}

  /** Starts sending; false if the stream was ended at once (its start revision is compacted). */
  start(): boolean {
    const s = this.store;
    this.next = this.req.startRevision === 0 ? s.revision + 1 : this.req.startRevision;
    if (this.next <= s.revision && this.next < s.oldestRetained) {
      this.fail(
        'compacted',
        `revision ${this.next} is no longer retained; the oldest revision a watch can start from is ${s.oldestRetained}`,
      );
      return false;
    }
    this.detach.push(
      s.watchKeys(this.req.key, this.req.prefix, (h) => this.onRevision(h)),
      s.onRestore(() => this.onRestore()),
    );
    const onDrain = () => {
      this.paused = false;
      if (this.next < s.oldestRetained) return this.tooSlow();
      this.pump();
    };
    this.call.on('drain', onDrain);
    this.detach.push(() => this.call.off('drain', onDrain));
    this.pump();
    return !this.ended;
  }

  close(): void {
    this.ended = true;
    for (const d of this.detach.splice(0)) d();
  }

  private matches(key: string): boolean {
    return this.req.prefix ? key.startsWith(this.req.key) : key === this.req.key;
  }

  /** A revision that changes a key this watch covers (the store calls no other). */
  private onRevision(h: HistoryEntry): void {
    if (!this.paused) {
      // Not paused means the last pump reached the then-current revision and every later
      // revision that concerned us woke us: those in between had nothing for this watch.
      if (!this.ended) this.next = Math.max(this.next, h.revision);
      return this.pump();
    }
    // The client is not reading. Its place in the history is all it holds; once the
    // history drops that place, waiting longer cannot help.
    if (this.next < this.store.oldestRetained) this.tooSlow();
  }

  private tooSlow(): void {
    this.fail(
      'too-slow',
      `watch on '${this.req.key}' cancelled: the client read too slowly and revision ${this.next} left the node's retained history ` +
        `before it could be sent; the oldest revision still available is ${this.store.oldestRetained} (read the current state, then watch from there)`,
    );
  }

  private onRestore(): void {
    const s = this.store;
    // A snapshot at the revision this watcher had already reached skips nothing it owes.
    if (this.next > s.revision) return;
    this.fail(
      'compacted',
      `watch on '${this.req.key}' cannot continue: this node installed a snapshot at revision ${s.revision} from the leader, ` +
        `so revisions ${this.next}..${s.revision} are not available here; the oldest revision still available is ${s.oldestRetained} ` +
        `(read the current state, then watch from there)`,
    );
  }

  private pump(): void {
    const s = this.store;
    while (!this.paused && !this.ended && this.next <= s.revision) {
      const h = s.historyAt(this.next);
      if (!h) {
        this.fail('compacted', `revision ${this.next} is no longer retained; the oldest revision still available is ${s.oldestRetained}`);
        return;
      }
      this.next = h.revision + 1;
      const events = h.events.filter((e) => this.matches(e.kv.key));
      if (events.length === 0) continue;
      if (!this.call.write({ events: events.map((e) => ({ type: e.type, kv: pbKv(e.kv) })), revision: h.revision })) this.paused = true;
    }
  }

  private fail(kind: 'compacted' | 'too-slow', details: string): void {
    if (this.ended) return;
    const oldest = this.store.oldestRetained;
    this.close();
    this.call.emit('error', gapStatus(kind, details, oldest));
  }
}

/**
 * One Election.Observe stream: the holder now, then each change. Only the latest state
 * matters to an observer, so a stream that cannot take more is not queued to: once it
 * drains it gets the holder as of then, marked `resync` (holders in between may have come
 * and gone), and likewise after a snapshot install.
 */
export class ObserveStream {
  /** The holder last sent (`key@modRevision`, '' for none); null before the first send, so the first state is always sent. */
  private last: string | null = null;
  private paused = false;
  private resync = false;
  private readonly detach: (() => void)[] = [];

  constructor(
    private readonly call: Stream<LeaderResponse>,
    private readonly store: KvStore,
    private readonly prefix: string,
    private readonly current: () => LeaderResponse,
  ) {}

  start(): void {
    const s = this.store;
    this.detach.push(
      s.watchKeys(this.prefix, true, () => this.send()),
      s.onRestore(() => {
        this.resync = true;
        this.send();
      }),
    );
    const onDrain = () => {
      this.paused = false;
      this.send();
    };
    this.call.on('drain', onDrain);
    this.detach.push(() => this.call.off('drain', onDrain));
    this.send();
  }

  close(): void {
    for (const d of this.detach.splice(0)) d();
  }

  private send(): void {
    const r = this.current();
    const id = r.found && r.kv ? `${r.kv.key}@${r.kv.modRevision}` : '';
    if (id === this.last) return;
    if (this.paused) {
      this.resync = true;
      return;
    }
    this.last = id;
    const msg = this.resync ? { ...r, resync: true } : r;
    this.resync = false;
    if (!this.call.write(msg)) this.paused = true;
  }
}

// Raft peer transport over gRPC (proto/leaderd/raft/v1/raft.proto).
//
// Shape: every node dials each peer it sends to and keeps one long-lived bidi Stream
// per peer; appends, heartbeats, snapshot chunks and votes all ride that stream in
// order. Traffic on a stream is one-way: the dialer's Raft messages go to the server,
// and the server answers them over its *own* outgoing stream back to the dialer. The
// only frame a server writes is one Hello acknowledging the handshake, which tells
// the dialer that its peer is who the address claims and which client address it has.
//
// Failure policy: Raft tolerates lost, duplicated and reordered-across-reconnect
// messages (every message carries a term; the core ignores stale ones), so this layer
// never blocks and never throws at its caller. It queues a bounded number of messages
// per peer, drops the oldest when full, and reconnects with capped exponential backoff.
// Anything arriving from the network is validated (codec.ts) and dropped if bad; a
// frame can cost at most its own stream, never the process.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Message, NodeId } from '../raft/types.js';
import type { PeerEnvelope, PeerEnvelope__Output } from '../gen/leaderd/raft/v1/PeerEnvelope.js';
import type { PeerClient } from '../gen/leaderd/raft/v1/Peer.js';
import { approxWireSize, helloToWire, parseFrame, toWire, type Hello } from './codec.js';
import {
  REFUSAL_KINDS,
  REFUSAL_METADATA_KEY,
  checkHello,
  type HandshakePolicy,
  type Refusal,
  type RefusalKind,
  type RefusedPeer,
} from './handshake.js';
import { loadPeerApi, peerEnvelopeType } from './protos.js';
import { ExitWatch } from './exit-watch.js';
import { widenConnectionWindow, widenStreamWindow } from './receive-window.js';
import { SendBuffers } from './send-buffers.js';
import { memberIdsOf, peerChannelCredentials, serverCredentials, type ReloadingCertificates } from '../security/tls.js';

export interface TransportOptions {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  /** host:port to bind; port 0 picks a free port, reported by start(). */
  readonly listenPeer: string;
  /** host:port peers should dial to reach this node (sent in Hello). */
  readonly advertisePeer: string;
  /** host:port of this node's public API (sent in Hello). */
  readonly advertiseClient: string;
  /**
   * Mutual TLS with the cluster CA. Each end checks that the other's certificate is
   * issued to the member it claims to be (security/tls.ts); plaintext when absent.
   */
  readonly peerTls?: ReloadingCertificates | undefined;
  readonly logger: Logger;
  /** Largest frame accepted or sent; default 16 MiB. Must exceed RaftConfig.maxMsgBytes and snapshotChunkBytes. */
  readonly maxMessageBytes?: number;
  /**
   * gRPC keepalive ping interval, also the ping timeout; default 300 ms. A dead or
   * partitioned connection is noticed within about twice this, which must stay well
   * under the election timeout so a healed partition is used again before an election.
   */
  readonly keepaliveMs?: number;
  /**
   * How long an unanswered ping may wait before the connection is declared dead;
   * default keepaliveMs. Longer than the ping interval keeps a briefly starved process
   * (GC, CPU contention) from tearing down healthy connections.
   */
  readonly keepaliveTimeoutMs?: number;
  /** Messages queued per peer before the oldest is dropped; default 1024. */
  readonly maxQueueMessages?: number;
  /** Approximate bytes queued per peer before the oldest is dropped; default 64 MiB. */
  readonly maxQueueBytes?: number;
  /**
   * The same bound while the peer has no working stream (dialling, or waiting to redial);
   * default 4 MiB. Raft resends whatever a down peer missed once it answers again, so a
   * leader need not hold up to maxQueueBytes of appends for a follower that is gone.
   */
  readonly maxDownQueueBytes?: number;
  /** HTTP/2 receive window of the peer server, per stream and per connection; default 8 MiB (receive-window.ts). */
  readonly receiveWindowBytes?: number;
  /** Reconnect backoff bounds; default 50 ms .. 1 s. */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

export interface TransportStats {
  /** Messages handed to a gRPC stream. */
  readonly sent: number;
  /** Valid messages delivered to onMessage handlers. */
  readonly received: number;
  /** Outgoing messages given up on: queue overflow, unknown peer, larger than maxMessageBytes, closed. */
  readonly dropped: number;
  /** Incoming streams or frames refused: bad Hello, malformed or undecodable frame, wrong cluster/recipient/sender. */
  readonly refused: number;
  /** HTTP/2 receive window of the latest peer connection accepted (0 before any). */
  readonly receiveWindowBytes: number;
  /** Large outgoing frames (64 KiB and more) encoded into the send buffer pool (send-buffers.ts). */
  readonly largeFramesEncoded: number;
  /** Of those, how many needed a newly allocated buffer rather than one given back by an earlier write. */
  readonly sendBuffersAllocated: number;
}

const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const DEFAULT_KEEPALIVE_MS = 300;
const DEFAULT_MAX_QUEUE_MESSAGES = 1024;
const DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_DOWN_QUEUE_BYTES = 4 * 1024 * 1024;
const DEFAULT_RECEIVE_WINDOW_BYTES = 8 * 1024 * 1024;
/** A persistent misconfiguration (wrong cluster, peer list mismatch) warns at most this often per cause. */
const WARN_INTERVAL_MS = 10_000;

/**
 * Says whether to log a recurring problem at warn (first time, or once per interval)
 * or at debug: a misconfigured peer redials every second and must not flood the log.
 */
class WarnLimiter {
  private readonly last = new Map<string, number>();
  shouldWarn(key: string): boolean {
    const now = Date.now();
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < WARN_INTERVAL_MS) return false;
    if (this.last.size > 1000) this.last.clear();
    this.last.set(key, now);
    return true;
  }
}

/** What a frame that protobuf itself could not decode turns into (see safeDeserialize). */
const UNDECODABLE = Object.freeze({ undecodable: true });

type ServerCall = grpc.ServerDuplexStream<PeerEnvelope__Output, PeerEnvelope>;
type ClientCall = grpc.ClientDuplexStream<PeerEnvelope, PeerEnvelope__Output>;
type PeerClientCtor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => PeerClient;

interface Counters {
  sent: number;
  received: number;
  dropped: number;
  refused: number;
  receiveWindowBytes: number;
}

// protobufjs throws on bytes that are not a valid encoding. grpc-js would then end the
// whole stream with INTERNAL; we would rather drop that one frame, count it and keep
// the stream, like any other malformed frame.
function safeDeserialize(inner: (buf: Buffer) => PeerEnvelope__Output): (buf: Buffer) => PeerEnvelope__Output {
  return (buf) => {
    try {
      return inner(buf);
    } catch {
      return UNDECODABLE as unknown as PeerEnvelope__Output;
    }
  };
}

/** The peer service; `serialize` encodes the requests of a client made from it. */
function peerServiceDefinition(serialize?: (envelope: PeerEnvelope) => Buffer): grpc.ServiceDefinition {
  const service = loadPeerApi().leaderd.raft.v1.Peer.service;
  const stream = service.Stream;
  return {
    Stream: {
      ...stream,
      ...(serialize === undefined ? {} : { requestSerialize: serialize }),
      requestDeserialize: safeDeserialize(stream.requestDeserialize),
      responseDeserialize: safeDeserialize(stream.responseDeserialize),
    },
  };
}

function errorStatus(err: unknown): { code: number | undefined; details: string } {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; details?: unknown; message?: unknown };
    return {
      code: typeof e.code === 'number' ? e.code : undefined,
      details: typeof e.details === 'string' ? e.details : typeof e.message === 'string' ? e.message : String(err),
    };
  }
  return { code: undefined, details: String(err) };
}

/** The handshake refusal a server's status carries in its trailing metadata, if any. */
function refusalOf(err: unknown): RefusalKind | undefined {
  const md = (err as { metadata?: unknown } | null)?.metadata;
  if (!(md instanceof grpc.Metadata)) return undefined;
  const v = md.get(REFUSAL_METADATA_KEY)[0];
  return REFUSAL_KINDS.find((k) => k === v);
}

/** Ends a server stream with a non-OK status (grpc-js: emitting 'error' on a server call). */
function endWithStatus(call: ServerCall, code: grpc.status, details: string, refusal?: RefusalKind): void {
  const metadata = new grpc.Metadata();
  if (refusal !== undefined) metadata.set(REFUSAL_METADATA_KEY, refusal);
  try {
    call.emit('error', { code, details, metadata });
  } catch {
    // Already ended; nothing left to tell the peer.
  }
}

type LinkState = 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed';

/** The outgoing half toward one peer: a queue, one stream, a reconnect loop. */
class PeerLink {
  private state: LinkState = 'idle';
  private client: PeerClient | null = null;
  private call: ClientCall | null = null;
  private readonly queue: Message[] = [];
  private queueBytes = 0;
  private waitingDrain = false;
  private backoffMs: number;
  private timer: NodeJS.Timeout | null = null;
  /** Suppresses repeated warnings while a peer stays unreachable or keeps refusing us. */
  private warnedSinceReady = false;

  constructor(
    readonly id: NodeId,
    readonly address: string,
    private readonly t: GrpcTransport,
    private readonly shared: LinkShared,
  ) {
    this.backoffMs = shared.minBackoffMs;
  }

  enqueue(msg: Message): void {
    if (this.state === 'closed') {
      this.shared.counters.dropped++;
      return;
    }
    this.queue.push(msg);
    this.queueBytes += approxWireSize(msg);
    this.trimQueue();
    if (this.state === 'idle') this.connect();
    else if (this.state === 'ready') this.pump();
  }

  /** Drop the oldest messages past the queue's bound (a smaller one while the peer is down), keeping the newest. */
  private trimQueue(): void {
    const maxBytes = this.state === 'ready' ? this.shared.maxQueueBytes : this.shared.maxDownQueueBytes;
    while (this.queue.length > 1 && (this.queue.length > this.shared.maxQueueMessages || this.queueBytes > maxBytes)) {
      const oldest = this.queue.shift();
      if (oldest !== undefined) this.queueBytes -= approxWireSize(oldest);
      this.shared.counters.dropped++;
    }
  }

  /** Open the stream now rather than on the first message. */
  dial(): void {
    if (this.state === 'idle') this.connect();
  }

  private connect(): void {
    this.state = 'connecting';
    if (this.client === null) {
      const tls = this.shared.peerTls;
      this.client =
        tls === undefined
          ? new this.shared.clientCtor(this.address, grpc.credentials.createInsecure(), this.shared.channelOptions)
          : // The TLS server name is the member id: peers are dialed by IP or by names the
            // certificate need not list; what is checked is the member id in it.
            new this.shared.clientCtor(this.address, peerChannelCredentials(tls, this.id), {
              ...this.shared.channelOptions,
              'grpc.ssl_target_name_override': this.id,
            });
    }
    const call = this.client.Stream();
    this.call = call;
    this.waitingDrain = false;
    const log = this.shared.log;

    // A server that accepts TCP but never answers the handshake (wedged process, wrong
    // service behind the port) must not hold this peer's queue forever.
    this.armTimer(this.shared.handshakeTimeoutMs, () => {
      if (this.call === call && this.state === 'connecting') this.broken(call, 'handshake timed out');
    });

    call.on('data', (env: PeerEnvelope__Output) => {
      if (this.call !== call) return;
      const frame = parseFrame(env);
      if (this.state !== 'connecting') {
        log.debug({ to: this.id }, 'ignoring frame from peer server after handshake');
        return;
      }
      if (frame instanceof Error || frame.kind !== 'hello') {
        this.broken(call, `bad handshake reply: ${frame instanceof Error ? frame.message : 'not a Hello'}`);
        return;
      }
      const h = frame.hello;
      if (h.clusterId !== this.shared.clusterId || h.nodeId !== this.id) {
        log.warn(
          { to: this.id, address: this.address, from: h.nodeId, clusterId: h.clusterId },
          'peer address answered as a different node or cluster; check the peer list',
        );
        this.broken(call, 'peer identity mismatch');
        return;
      }
      const refusal = this.t.check(h);
      if (refusal !== null) {
        this.t.noteRefusal(this.id, refusal, false);
        this.broken(call, `refusing peer: ${refusal.reason}`);
        return;
      }
      this.t.clearRefusals(this.id);
      this.clearTimer();
      this.state = 'ready';
      this.backoffMs = this.shared.minBackoffMs;
      if (this.warnedSinceReady) log.info({ to: this.id }, 'peer stream re-established');
      this.warnedSinceReady = false;
      this.t.learnClientAddress(h.nodeId, h.clientAddress);
      this.pump();
    });
    call.on('drain', () => {
      if (this.call !== call) return;
      this.waitingDrain = false;
      this.pump();
    });
    call.on('error', (err: unknown) => {
      const { code, details } = errorStatus(err);
      const kind = this.call === call ? refusalOf(err) : undefined;
      if (kind !== undefined) this.t.refusedBy(this.id, { kind, reason: details });
      this.broken(call, details, code);
    });
    call.on('end', () => this.broken(call, 'stream ended by peer'));
    call.on('close', () => this.broken(call, 'stream closed'));

    call.write(helloToWire(this.t.ownHello()));
  }

  private pump(): void {
    const call = this.call;
    if (call === null) return;
    while (this.state === 'ready' && !this.waitingDrain && this.queue.length > 0) {
      const msg = this.queue.shift();
      if (msg === undefined) break;
      this.queueBytes -= approxWireSize(msg);
      this.shared.counters.sent++;
      const envelope = toWire(msg);
      try {
        // write() returning false is gRPC's backpressure: keep the rest in our bounded
        // queue (where old messages get dropped) rather than in an unbounded stream buffer.
        // Its callback runs once grpc-js has framed (copied) the encoding and written it.
        if (!call.write(envelope, () => this.shared.sendBuffers.release(envelope))) this.waitingDrain = true;
      } catch (err) {
        // pump runs from stream events, where a throw would take the process down.
        this.broken(call, `write failed: ${errorStatus(err).details}`);
        return;
      }
    }
  }

  private broken(call: ClientCall, reason: string, code?: number): void {
    if (this.call !== call || this.state === 'closed') return;
    this.call = null;
    this.clearTimer();
    try {
      call.cancel();
    } catch {
      // Already finished.
    }
    const fields = { to: this.id, address: this.address, code, reason, retryMs: this.backoffMs };
    const refused =
      code === grpc.status.PERMISSION_DENIED ||
      code === grpc.status.FAILED_PRECONDITION ||
      code === grpc.status.RESOURCE_EXHAUSTED ||
      code === grpc.status.INVALID_ARGUMENT;
    if (
      (refused && this.shared.warnLimiter.shouldWarn(`refused:${this.id}:${code}`)) ||
      (!this.warnedSinceReady && this.state === 'ready')
    ) {
      this.shared.log.warn(fields, 'peer stream lost');
      this.warnedSinceReady = true;
    } else {
      this.shared.log.debug(fields, 'peer stream attempt failed');
    }
    this.state = 'backoff';
    this.trimQueue();
    // Equal jitter: nodes that lost each other at the same moment do not redial in lockstep.
    const delay = this.backoffMs / 2 + Math.random() * (this.backoffMs / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, this.shared.maxBackoffMs);
    this.armTimer(delay, () => {
      if (this.state !== 'backoff') return;
      // Eager: every node keeps a stream to every peer, even with nothing to say, so
      // each learns every other's client address from the Hello (any node can name the
      // leader's address) and a healed partition is in use again within one backoff.
      this.connect();
    });
  }

  private armTimer(ms: number, f: () => void): void {
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = null;
      f();
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearTimer();
    this.shared.counters.dropped += this.queue.length;
    this.queue.length = 0;
    this.queueBytes = 0;
    const call = this.call;
    this.call = null;
    if (call !== null) {
      try {
        call.end();
        call.cancel();
      } catch {
        // Already finished.
      }
    }
    this.client?.close();
    this.client = null;
  }
}

interface LinkShared {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  readonly advertisePeer: string;
  readonly advertiseClient: string;
  readonly log: Logger;
  readonly counters: Counters;
  readonly clientCtor: PeerClientCtor;
  readonly sendBuffers: SendBuffers;
  readonly channelOptions: grpc.ChannelOptions;
  readonly maxQueueMessages: number;
  readonly maxQueueBytes: number;
  readonly maxDownQueueBytes: number;
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly handshakeTimeoutMs: number;
  readonly warnLimiter: WarnLimiter;
  readonly peerTls: ReloadingCertificates | undefined;
}

export class GrpcTransport {
  private readonly opts: TransportOptions;
  private readonly log: Logger;
  private readonly maxMessageBytes: number;
  private readonly counters: Counters = { sent: 0, received: 0, dropped: 0, refused: 0, receiveWindowBytes: 0 };
  private readonly shared: LinkShared;
  private readonly serverOptions: grpc.ServerOptions;
  private server: grpc.Server | null = null;
  private closed = false;
  private peers: ReadonlyMap<NodeId, string> = new Map();
  private readonly links = new Map<NodeId, PeerLink>();
  /** One exit watch per peer once someone listens for proven exits (onPeerGone). */
  private readonly exitWatches = new Map<NodeId, ExitWatch>();
  private readonly goneHandlers: ((id: NodeId) => void)[] = [];
  /** Accepted incoming streams, by the peer that opened them. */
  private readonly incoming = new Map<NodeId, ServerCall>();
  /** Every open incoming stream, accepted or still before its Hello. */
  private readonly serverCalls = new Set<ServerCall>();
  private readonly messageHandlers: ((msg: Message) => void)[] = [];
  private readonly clientAddrHandlers: ((id: NodeId, clientAddr: string) => void)[] = [];
  private readonly clientAddrs = new Map<NodeId, string>();
  private readonly warnLimiter = new WarnLimiter();
  private handshake: HandshakePolicy | null = null;
  /** Refused handshakes by peer and direction ("id:by-peer" / "id:by-us"), for GetStatus. */
  private readonly refusals = new Map<string, RefusedPeer>();

  constructor(opts: TransportOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'transport' });
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const keepaliveMs = opts.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    const keepaliveTimeoutMs = opts.keepaliveTimeoutMs ?? keepaliveMs;
    const minBackoffMs = opts.minBackoffMs ?? 50;
    const maxBackoffMs = Math.max(minBackoffMs, opts.maxBackoffMs ?? 1000);

    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': this.maxMessageBytes,
      'grpc.max_send_message_length': this.maxMessageBytes,
      // Ping every keepaliveMs even on an idle stream and give up after keepaliveMs
      // without an answer: a half-open TCP connection (peer's host died, partition)
      // would otherwise look healthy until the kernel's retransmission timeout, minutes.
      'grpc.keepalive_time_ms': keepaliveMs,
      'grpc.keepalive_timeout_ms': keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      // The channel's own reconnect backoff defaults to 1 s .. 120 s; ours is the one
      // that should govern how fast a healed link is used again.
      'grpc.initial_reconnect_backoff_ms': minBackoffMs,
      'grpc.max_reconnect_backoff_ms': maxBackoffMs,
      // Own subchannels per transport: several transports in one process (tests, the
      // simulator-on-loopback) must not share, and tear down, each other's connections.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.enable_retries': 0,
    };
    this.serverOptions = {
      'grpc.max_receive_message_length': this.maxMessageBytes,
      'grpc.max_send_message_length': this.maxMessageBytes,
      'grpc.keepalive_time_ms': keepaliveMs,
      'grpc.keepalive_timeout_ms': keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      // Accept the clients' frequent pings (other gRPC servers would answer them with
      // GOAWAY too_many_pings under the default 5-minute policy).
      'grpc.http2.min_ping_interval_without_data_ms': Math.max(1, Math.floor(keepaliveMs / 2)),
    };

    const sendBuffers = new SendBuffers();
    const envelopeType = peerEnvelopeType();
    this.shared = {
      nodeId: opts.nodeId,
      clusterId: opts.clusterId,
      advertisePeer: opts.advertisePeer,
      advertiseClient: opts.advertiseClient,
      log: this.log,
      counters: this.counters,
      clientCtor: grpc.makeGenericClientConstructor(
        peerServiceDefinition((envelope) => sendBuffers.encode(envelopeType, envelope)),
        'Peer',
      ) as unknown as PeerClientCtor,
      sendBuffers,
      channelOptions,
      maxQueueMessages: opts.maxQueueMessages ?? DEFAULT_MAX_QUEUE_MESSAGES,
      maxQueueBytes: opts.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES,
      maxDownQueueBytes: Math.min(opts.maxDownQueueBytes ?? DEFAULT_MAX_DOWN_QUEUE_BYTES, opts.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES),
      minBackoffMs,
      maxBackoffMs,
      handshakeTimeoutMs: Math.max(1000, 4 * keepaliveMs, keepaliveTimeoutMs),
      warnLimiter: this.warnLimiter,
      peerTls: opts.peerTls,
    };
  }

  async start(): Promise<{ port: number }> {
    if (this.closed) throw new Error('transport is closed');
    if (this.server !== null) throw new Error('transport already started');
    const server = new grpc.Server(this.serverOptions);
    server.addService(peerServiceDefinition(), {
      Stream: (call: ServerCall) => this.acceptStream(call),
    });
    this.server = server;
    const window = this.opts.receiveWindowBytes ?? DEFAULT_RECEIVE_WINDOW_BYTES;
    const streamWindow = widenStreamWindow(server, window);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.opts.listenPeer, serverCredentials(this.opts.peerTls ?? null), (err, p) => (err ? reject(err) : resolve(p)));
    });
    const connectionWindow = widenConnectionWindow(server, window, (bytes) => (this.counters.receiveWindowBytes = bytes));
    if (!streamWindow || !connectionWindow) {
      this.log.warn({ window }, 'could not raise the peer HTTP/2 receive window (grpc-js internals changed): large appends will be slower');
    }
    this.log.debug({ listen: this.opts.listenPeer, port }, 'peer server listening');
    return { port };
  }

  /** The full peer set (excluding or including this node; it is ignored). Removed peers lose their streams. */
  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    if (this.closed) return;
    const next = new Map([...peers].filter(([id]) => id !== this.opts.nodeId));
    for (const [id, link] of this.links) {
      if (next.get(id) !== link.address) {
        link.close();
        this.links.delete(id);
      }
    }
    for (const [id, call] of this.incoming) {
      if (!next.has(id)) {
        this.incoming.delete(id);
        endWithStatus(call, grpc.status.PERMISSION_DENIED, `node ${id} is no longer a peer of ${this.opts.nodeId}`);
      }
    }
    for (const [id, address] of next) {
      if (!this.links.has(id)) {
        const link = new PeerLink(id, address, this, this.shared);
        this.links.set(id, link);
        link.dial();
      }
    }
    this.peers = next;
    this.updateExitWatches();
  }

  /**
   * Listen for proof that a peer's process exited (exit-watch.ts): its connection closed
   * cleanly, without GOAWAY, and its address refuses connections. The first listener
   * starts one idle watch connection per peer.
   */
  onPeerGone(handler: (id: NodeId) => void): void {
    this.goneHandlers.push(handler);
    this.updateExitWatches();
  }

  private updateExitWatches(): void {
    if (this.goneHandlers.length === 0 || this.closed) return;
    for (const [id, w] of this.exitWatches) {
      if (this.peers.get(id) !== w.address) {
        w.close();
        this.exitWatches.delete(id);
      }
    }
    for (const [id, address] of this.peers) {
      if (this.exitWatches.has(id)) continue;
      this.exitWatches.set(
        id,
        new ExitWatch({
          peerId: id,
          address,
          peerTls: this.opts.peerTls,
          logger: this.log,
          minBackoffMs: this.shared.minBackoffMs,
          maxBackoffMs: this.shared.maxBackoffMs,
          onGone: (gone) => {
            if (this.closed) return;
            for (const h of this.goneHandlers) h(gone);
          },
        }),
      );
    }
  }

  send(msg: Message): void {
    try {
      const link = this.links.get(msg.to);
      if (link === undefined || this.closed) {
        this.counters.dropped++;
        this.log.debug({ to: msg.to, type: msg.type }, 'dropping message to unknown peer');
        return;
      }
      if (approxWireSize(msg) > this.maxMessageBytes) {
        // The receiver would refuse it and take the whole stream down with it.
        this.counters.dropped++;
        this.log.warn(
          { to: msg.to, type: msg.type, bytes: approxWireSize(msg), max: this.maxMessageBytes },
          'dropping message larger than maxMessageBytes; lower the core maxMsgBytes/snapshotChunkBytes',
        );
        return;
      }
      link.enqueue(msg);
    } catch (err) {
      // Contract: send never throws (a gRPC internal failure must not unwind the core's driver).
      this.counters.dropped++;
      this.log.error({ err, to: msg.to }, 'unexpected error sending message');
    }
  }

  onMessage(handler: (msg: Message) => void): void {
    this.messageHandlers.push(handler);
  }

  peerClientAddress(id: NodeId): string | undefined {
    return this.clientAddrs.get(id);
  }

  authenticatesPeers(): boolean {
    return this.opts.peerTls !== undefined;
  }

  onPeerClientAddress(handler: (id: NodeId, clientAddr: string) => void): void {
    this.clientAddrHandlers.push(handler);
  }

  stats(): TransportStats {
    const buffers = this.shared.sendBuffers.stats();
    return { ...this.counters, largeFramesEncoded: buffers.encoded, sendBuffersAllocated: buffers.allocated };
  }

  /**
   * Check incarnation and timing at every handshake, both ways (see handshake.ts). Set
   * before the first setPeers(): until then no peer is known and every Hello is refused.
   */
  setHandshake(policy: HandshakePolicy): void {
    this.handshake = policy;
  }

  /** Peers whose handshake is currently refused, either way, and why. */
  refusedPeers(): RefusedPeer[] {
    return [...this.refusals.values()];
  }

  /** @internal The Hello this node sends, as dialer and as server. */
  ownHello(): Hello {
    return {
      clusterId: this.opts.clusterId,
      nodeId: this.opts.nodeId,
      peerAddress: this.opts.advertisePeer,
      clientAddress: this.opts.advertiseClient,
      incarnation: this.handshake?.incarnation ?? '',
      timing: this.handshake?.timing ?? null,
      knownIncarnations: this.handshake?.knownIncarnations() ?? new Map(),
    };
  }

  /** @internal The refusal owed to a peer's Hello (either direction), or null. */
  check(h: Hello): Refusal | null {
    return this.handshake === null ? null : checkHello(this.opts.nodeId, this.handshake, h);
  }

  /** @internal Record and log a refused handshake (rate-limited: a refused peer redials every backoff). */
  noteRefusal(id: NodeId, refusal: Refusal, byPeer: boolean): void {
    this.refusals.set(`${id}:${byPeer ? 'by-peer' : 'by-us'}`, { peerId: id, byPeer, ...refusal });
    this.logRefusal(
      `handshake:${id}:${refusal.kind}:${byPeer}`,
      { peer: id, kind: refusal.kind, reason: refusal.reason },
      byPeer ? 'peer refused this node at the handshake' : 'refusing peer at the handshake',
    );
  }

  /** @internal A peer's server refused our Hello. */
  refusedBy(id: NodeId, refusal: Refusal): void {
    this.noteRefusal(id, refusal, true);
    try {
      this.handshake?.refusedByPeer(id, refusal);
    } catch (err) {
      this.log.error({ err, peer: id }, 'refusedByPeer handler threw');
    }
  }

  /** @internal A handshake with `id` succeeded: drop what no longer holds. */
  clearRefusals(id: NodeId, outgoing = true): void {
    this.refusals.delete(`${id}:by-us`);
    if (outgoing) this.refusals.delete(`${id}:by-peer`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const w of this.exitWatches.values()) w.close();
    this.exitWatches.clear();
    for (const call of this.serverCalls) endWithStatus(call, grpc.status.UNAVAILABLE, 'node shutting down');
    this.serverCalls.clear();
    this.incoming.clear();
    const server = this.server;
    this.server = null;
    if (server === null) return;
    await new Promise<void>((resolve) => {
      // tryShutdown says goodbye (GOAWAY) and waits for the listener to close, so the
      // port is free when close() resolves; a peer that will not let go is cut off.
      const force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 500);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  /** @internal Called by links when a peer's Hello (or Hello reply) names its client address. */
  learnClientAddress(id: NodeId, clientAddr: string): void {
    if (clientAddr === '' || this.clientAddrs.get(id) === clientAddr) return;
    this.clientAddrs.set(id, clientAddr);
    for (const h of this.clientAddrHandlers) {
      try {
        h(id, clientAddr);
      } catch (err) {
        this.log.error({ err, from: id }, 'onPeerClientAddress handler threw');
      }
    }
  }

  // -------------------------------------------------------------------------
  // Server side.

  private acceptStream(call: ServerCall): void {
    if (this.closed) {
      endWithStatus(call, grpc.status.UNAVAILABLE, 'node shutting down');
      return;
    }
    this.serverCalls.add(call);
    let peer: Hello | null = null;
    let done = false;
    let warnedMalformed = false;

    const finish = (): void => {
      done = true;
      this.serverCalls.delete(call);
      if (peer !== null && this.incoming.get(peer.nodeId) === call) this.incoming.delete(peer.nodeId);
    };
    const refuse = (code: grpc.status, details: string, refusal?: RefusalKind): void => {
      this.counters.refused++;
      finish();
      endWithStatus(call, code, details, refusal);
    };

    call.on('data', (env: PeerEnvelope__Output) => {
      try {
        onFrame(env);
      } catch (err) {
        // Nothing a peer sends may crash the node; give up on this stream instead.
        this.log.error({ err, from: peer?.nodeId }, 'unexpected error handling peer frame');
        refuse(grpc.status.INTERNAL, 'internal error');
      }
    });
    const onFrame = (env: PeerEnvelope__Output): void => {
      if (done) return;
      const frame = parseFrame(env);

      if (peer === null) {
        if (frame instanceof Error || frame.kind !== 'hello') {
          this.logRefusal(
            'handshake',
            { reason: frame instanceof Error ? frame.message : 'first frame is not a Hello' },
            'refusing peer stream: bad handshake',
          );
          refuse(grpc.status.INVALID_ARGUMENT, 'first frame must be a valid Hello');
          return;
        }
        const h = frame.hello;
        const fields = { from: h.nodeId, clusterId: h.clusterId };
        if (h.clusterId !== this.opts.clusterId) {
          this.logRefusal(`cluster:${h.nodeId}:${h.clusterId}`, fields, 'refusing peer stream: wrong cluster id');
          refuse(grpc.status.FAILED_PRECONDITION, `cluster id mismatch: this is ${this.opts.clusterId}, peer says ${h.clusterId}`);
          return;
        }
        if (!this.peers.has(h.nodeId)) {
          this.logRefusal(`unknown:${h.nodeId}`, fields, 'refusing peer stream: unknown node id');
          refuse(grpc.status.PERMISSION_DENIED, `node ${h.nodeId} is not a peer of ${this.opts.nodeId}`);
          return;
        }
        if (this.opts.peerTls !== undefined) {
          // The Hello names a member; the certificate the connection was opened with must
          // be that member's, or a valid certificate of member A could take over B's link.
          const certIds = memberIdsOf(call.getAuthContext()?.sslPeerCertificate);
          if (!certIds.includes(h.nodeId)) {
            this.logRefusal(
              `cert:${h.nodeId}:${certIds.join(',')}`,
              { ...fields, certificate: certIds },
              'refusing peer stream: certificate of another member',
            );
            refuse(grpc.status.PERMISSION_DENIED, `the certificate is not issued to member ${h.nodeId}`);
            return;
          }
        }
        const refusal = this.check(h);
        if (refusal !== null) {
          this.noteRefusal(h.nodeId, refusal, false);
          refuse(grpc.status.FAILED_PRECONDITION, refusal.reason, refusal.kind);
          return;
        }
        this.clearRefusals(h.nodeId, false);
        peer = h;
        // A redial replaces the stream the peer gave up on (it may not have died on our side).
        const old = this.incoming.get(h.nodeId);
        if (old !== undefined && old !== call) {
          this.serverCalls.delete(old);
          endWithStatus(old, grpc.status.ABORTED, 'replaced by a newer stream from the same peer');
        }
        this.incoming.set(h.nodeId, call);
        this.learnClientAddress(h.nodeId, h.clientAddress);
        call.write(helloToWire(this.ownHello()));
        return;
      }

      let problem: string | null = null;
      if (frame instanceof Error) problem = env === UNDECODABLE ? 'undecodable protobuf' : frame.message;
      else if (frame.kind !== 'message') problem = 'second Hello on one stream';
      else if (frame.message.clusterId !== this.opts.clusterId) problem = `wrong cluster id ${frame.message.clusterId}`;
      else if (frame.message.to !== this.opts.nodeId) problem = `addressed to ${frame.message.to}`;
      else if (frame.message.from !== peer.nodeId) problem = `claims to be from ${frame.message.from}`;

      if (problem !== null || frame instanceof Error || frame.kind !== 'message') {
        this.counters.refused++;
        // Once per stream at warn: a misbehaving peer would otherwise flood the log.
        const fields = { from: peer.nodeId, clusterId: peer.clusterId, problem };
        if (warnedMalformed) this.log.debug(fields, 'dropping malformed peer frame');
        else this.log.warn(fields, 'dropping malformed peer frame');
        warnedMalformed = true;
        return;
      }
      this.counters.received++;
      this.deliver(frame.message);
    };
    call.on('end', () => {
      finish();
      try {
        call.end();
      } catch {
        // Already ended.
      }
    });
    call.on('error', (err: unknown) => {
      finish();
      this.log.debug({ from: peer?.nodeId, ...errorStatus(err) }, 'incoming peer stream error');
    });
    call.on('cancelled', finish);
    call.on('close', finish);
  }

  private logRefusal(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warnLimiter.shouldWarn(key)) this.log.warn(fields, msg);
    else this.log.debug(fields, msg);
  }

  private deliver(msg: Message): void {
    for (const h of this.messageHandlers) {
      try {
        h(msg);
      } catch (err) {
        this.log.error({ err, from: msg.from, type: msg.type }, 'onMessage handler threw');
      }
    }
  }
}

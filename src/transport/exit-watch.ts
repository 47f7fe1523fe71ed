// Proof that a peer's process is gone, for kill -9 failover below one election timeout.
//
// When a process dies, its kernel closes its sockets: each peer sees a clean TCP close
// (FIN) and no HTTP/2 GOAWAY, and a new connection to its address is refused, because
// nothing listens there any more. Together these prove that no live process behind that
// address holds anything, a Raft lease included. Nothing weaker is proof: a reset (RST,
// what a firewall's REJECT sends), silence (partition, a paused process), or a GOAWAY (a
// live server closing the connection itself, as grpc-js does at shutdown) all leave the
// process possibly alive, and the election timeout must cover them.
//
// grpc-js does not say how a connection ended, so each node keeps one more HTTP/2
// connection to each peer's gRPC port (the same port, the same TLS identity and checks as
// the peer channel), on which it opens no stream: an idle session whose socket's end it
// watches. An off-path attacker cannot forge the proof: it would need to inject a FIN into
// this connection and answer the redial's SYN with a reset, that is, be on the path, where
// it could cut the link anyway; a node acting on the proof only ends the lease it holds for
// that very peer (RaftNode.leaderGone). Opening nothing new to listen, it adds no attack
// surface to the node itself.
//
// Caveat for operators: the proof is about whatever answers at the peer address. A TCP
// proxy between members (its death closes cleanly and refuses) would prove the proxy
// dead, not the member: run with --fast-failover=false there.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import type { NodeId } from '../raft/types.js';
import { memberIdsOf, type ReloadingCertificates } from '../security/tls.js';

export interface ExitWatchOptions {
  readonly peerId: NodeId;
  /** The peer's host:port, as dialed for the peer channel. */
  readonly address: string;
  /** Mutual TLS as on the peer channel (the peer's certificate must be member peerId's). */
  readonly peerTls?: ReloadingCertificates | undefined;
  readonly logger: Logger;
  /** Called once per proven exit of the process behind the address. */
  readonly onGone: (id: NodeId) => void;
  /** Redial backoff bounds after a failed or lost connection; default 50 ms .. 1 s. */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long the proof's redial may take before it counts as not refused; default 1 s. */
  readonly redialTimeoutMs?: number;
}

/** How the watched connection ended, as far as proof goes. */
export type ConnectionEnd = 'clean-close' | 'goaway' | 'reset' | 'error';

/** What a redial to the peer address found. */
export type RedialOutcome = 'refused' | 'accepted' | 'failed';

/** How long, and how often, an accepted redial is tried again (see ExitWatch.prove). */
const REDIAL_WINDOW_MS = 60;
const REDIAL_PAUSE_MS = 5;

export function splitHostPort(address: string): { host: string; port: number } | null {
  const at = address.lastIndexOf(':');
  if (at <= 0) return null;
  const port = Number(address.slice(at + 1));
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return Number.isInteger(port) && port > 0 && port < 65536 && host !== '' ? { host, port } : null;
}

/** A plain TCP connect to `address`: refused (nothing listens), accepted, or failed otherwise (timeout, unreachable). */
export function redial(host: string, port: number, timeoutMs: number): Promise<RedialOutcome> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (o: RedialOutcome): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done('failed'), timeoutMs);
    s.once('connect', () => done('accepted'));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : 'failed'));
  });
}

/** One peer's watched connection, redialed with backoff for as long as the watch is open. */
export class ExitWatch {
  private closed = false;
  private session: http2.ClientHttp2Session | null = null;
  private socket: net.Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly target: { host: string; port: number } | null;

  constructor(private readonly o: ExitWatchOptions) {
    this.minBackoffMs = o.minBackoffMs ?? 50;
    this.maxBackoffMs = Math.max(this.minBackoffMs, o.maxBackoffMs ?? 1000);
    this.backoffMs = this.minBackoffMs;
    this.target = splitHostPort(o.address);
    if (this.target === null) o.logger.warn({ peer: o.peerId, address: o.address }, 'peer address has no host:port; no exit watch');
    else this.connect();
  }

  get address(): string {
    return this.o.address;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.session?.destroy();
    this.socket?.destroy();
    this.session = null;
    this.socket = null;
  }

  private connect(): void {
    const target = this.target;
    if (this.closed || target === null) return;
    const certs = this.o.peerTls;
    const peerId = this.o.peerId;
    const socket: net.Socket =
      certs === undefined
        ? net.connect({ host: target.host, port: target.port })
        : tls.connect({
            host: target.host,
            port: target.port,
            ALPNProtocols: ['h2'],
            cert: certs.loaded.cert,
            key: certs.loaded.key,
            ...(certs.loaded.ca !== undefined ? { ca: certs.loaded.ca } : {}),
            // As on the peer channel: the certificate must be member peerId's, whatever
            // name or IP the peer was dialed by.
            checkServerIdentity: (_host, cert) =>
              memberIdsOf(cert).includes(peerId) ? undefined : new Error(`the certificate at ${this.o.address} is not member ${peerId}'s`),
          });
    socket.setNoDelay(true);
    const session = http2.connect(`${certs === undefined ? 'http' : 'https'}://${this.o.address}`, { createConnection: () => socket });
    this.socket = socket;
    this.session = session;
    let established = false;
    let end: ConnectionEnd | null = null;
    const mark = (e: ConnectionEnd): void => {
      // The first sign decides: a GOAWAY or a reset before the FIN is no proof.
      if (end === null) end = e;
    };
    session.on('connect', () => {
      established = true;
      this.backoffMs = this.minBackoffMs;
    });
    session.on('goaway', () => mark('goaway'));
    session.on('error', () => {});
    socket.on('end', () => mark('clean-close'));
    socket.on('error', (err: NodeJS.ErrnoException) => mark(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : 'error'));
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.session = null;
      session.destroy();
      if (this.closed) return;
      if (established && end === 'clean-close') void this.prove(target);
      else this.retry(established ? 0 : this.backoffMs, end ?? 'error');
    });
  }

  private async prove(target: { host: string; port: number }): Promise<void> {
    // A dying process's kernel closes its descriptors one by one: the FIN of a connection
    // can come before its listener is gone, and a SYN in between is still accepted (by the
    // kernel, for a backlog nobody will read). So an accepted redial is tried again for a
    // short window; a live listener accepts every one of them.
    const deadline = Date.now() + REDIAL_WINDOW_MS;
    let outcome: RedialOutcome;
    for (;;) {
      outcome = await redial(target.host, target.port, this.o.redialTimeoutMs ?? 1000);
      if (this.closed || outcome !== 'accepted' || Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, REDIAL_PAUSE_MS));
    }
    if (this.closed) return;
    const fields = { peer: this.o.peerId, address: this.o.address, redial: outcome };
    if (outcome === 'refused') {
      this.o.logger.info(fields, 'peer process exited: its connection closed cleanly and its address refuses connections');
      try {
        this.o.onGone(this.o.peerId);
      } catch (err) {
        this.o.logger.error({ err, peer: this.o.peerId }, 'peer-gone handler threw');
      }
    } else {
      this.o.logger.debug(fields, 'peer connection closed cleanly but its address still answers: no proof of exit');
    }
    this.retry(this.backoffMs, 'clean-close');
  }

  private retry(delayMs: number, why: ConnectionEnd): void {
    if (this.closed) return;
    this.o.logger.debug({ peer: this.o.peerId, why, retryMs: delayMs }, 'exit watch connection lost; redialing');
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delayMs);
  }
}

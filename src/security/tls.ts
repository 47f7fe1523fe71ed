// TLS for both listeners, from PEM files that are re-read on SIGHUP or when they change,
// so a certificate is rotated without a restart (the new one serves every connection
// opened after the reload; open connections keep theirs until they reconnect).
//
// A peer's certificate is bound to its member identity: its subjectAltName carries the
// URI urn:leaderd:member:<id>. Both ends check it: the dialer in checkServerIdentity (the
// server it reached must be the member it meant to dial), the server when the Hello names
// a member (the certificate the stream was opened with must name that member). A valid
// certificate of member A therefore cannot speak as member B, even though both are signed
// by the same cluster CA.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext, type PeerCertificate, type SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { TlsFiles } from '../server/config.js';

export const MEMBER_URI_PREFIX = 'urn:leaderd:member:';
/** The URI naming a client certificate's holder (matched by "cert": true token entries). */
export const CLIENT_URI_PREFIX = 'urn:leaderd:client:';

export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
}

/** The PEM files of one listener (`ca` checks the other side's certificate). */
export type { TlsFiles };

interface Loaded {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  readonly x509: X509Certificate;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TlsConfigError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Read and check a certificate/key(/CA) set: parseable, the key belongs to the certificate, not expired. */
export function loadTlsFiles(files: TlsFiles, flag: string): Loaded {
  const cert = readPem(files.cert, `${flag}-cert`);
  const key = readPem(files.key, `${flag}-key`);
  const ca = files.ca === undefined ? undefined : readPem(files.ca, `${flag}-ca`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsConfigError(`${flag}-cert ${files.cert} is not a PEM certificate: ${(err as Error).message}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsConfigError(`${flag}-key ${files.key} is not a PEM private key: ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new TlsConfigError(`${flag}-key ${files.key} does not belong to ${flag}-cert ${files.cert}`);
  if (Date.parse(x509.validTo) < Date.now()) throw new TlsConfigError(`${flag}-cert ${files.cert} expired on ${x509.validTo}`);
  if (ca !== undefined) {
    try {
      createSecureContext({ ca });
      new X509Certificate(ca);
    } catch (err) {
      throw new TlsConfigError(`${flag}-ca ${files.ca} is not a PEM certificate: ${(err as Error).message}`);
    }
  }
  return { cert, key, ca, x509 };
}

/**
 * The subjectAltName entries of a certificate, as Node prints them ("DNS:a, URI:b").
 * Values holding a comma or quote are printed as JSON strings (since Node 17.3/16.13.2),
 * so a crafted name such as DNS:"x, URI:urn:leaderd:member:n2" stays one DNS entry.
 */
export function subjectAltNames(san: string | undefined): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  if (san === undefined) return out;
  const re = /\s*([A-Za-z][A-Za-z ]*):("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < san.length && (m = re.exec(san)) !== null) {
    let value = m[2]!;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        return out;
      }
    }
    out.push({ type: m[1]!, value });
    if (m[0] === '') break;
  }
  return out;
}

/** The member ids a certificate is issued to (its urn:leaderd:member: URIs). */
export function memberIdsOf(cert: { subjectaltname?: string | undefined } | undefined): string[] {
  return subjectAltNames(cert?.subjectaltname)
    .filter((e) => e.type === 'URI' && e.value.startsWith(MEMBER_URI_PREFIX))
    .map((e) => e.value.slice(MEMBER_URI_PREFIX.length));
}

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/**
 * One listener's certificate files, re-read on reload() (SIGHUP) and when a file's
 * modification time changes (polled). A reload that fails (half-written file, key not
 * matching the certificate) keeps the previous certificates and logs why.
 * Also a grpc-js CertificateProvider, so dialing channels pick the new ones up too.
 */
export class ReloadingCertificates {
  private current: Loaded;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly changeListeners = new Set<(l: Loaded) => void>();
  private readonly watched: string[] = [];

  constructor(
    readonly files: TlsFiles,
    private readonly flag: string,
    private readonly log: Logger,
    private readonly check: (x509: X509Certificate) => void = () => {},
  ) {
    this.current = loadTlsFiles(files, flag);
    check(this.current.x509);
  }

  get loaded(): Loaded {
    return this.current;
  }

  /** Re-read the files; true if the new ones are in use. */
  reload(): boolean {
    let next: Loaded;
    try {
      next = loadTlsFiles(this.files, this.flag);
      this.check(next.x509);
    } catch (err) {
      this.log.error({ listener: this.flag, err: (err as Error).message }, 'certificate reload failed; keeping the previous certificates');
      return false;
    }
    if (
      next.cert.equals(this.current.cert) &&
      next.key.equals(this.current.key) &&
      (next.ca?.equals(this.current.ca ?? Buffer.alloc(0)) ?? this.current.ca === undefined)
    )
      return true;
    this.current = next;
    this.log.info(
      { listener: this.flag, subject: next.x509.subject, validTo: next.x509.validTo, fingerprint: next.x509.fingerprint256 },
      'certificates reloaded',
    );
    for (const l of this.caListeners) l(next.ca === undefined ? null : { caCertificate: next.ca });
    for (const l of this.identityListeners) l({ certificate: next.cert, privateKey: next.key });
    for (const l of this.changeListeners) l(next);
    return true;
  }

  /** Poll the files' modification times (cheap stat calls) and reload on change. */
  watch(intervalMs = 2000): void {
    for (const path of [this.files.cert, this.files.key, this.files.ca]) {
      if (path === undefined || this.watched.includes(path)) continue;
      this.watched.push(path);
      watchFile(path, { interval: intervalMs, persistent: false }, (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) this.reload();
      });
    }
  }

  close(): void {
    for (const p of this.watched.splice(0)) unwatchFile(p);
    this.caListeners.clear();
    this.identityListeners.clear();
    this.changeListeners.clear();
  }

  onChange(l: (loaded: Loaded) => void): void {
    this.changeListeners.add(l);
  }

  // grpc-js CertificateProvider
  addCaCertificateListener(l: CaListener): void {
    this.caListeners.add(l);
    l(this.current.ca === undefined ? null : { caCertificate: this.current.ca });
  }
  removeCaCertificateListener(l: CaListener): void {
    this.caListeners.delete(l);
  }
  addIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.add(l);
    l({ certificate: this.current.cert, privateKey: this.current.key });
  }
  removeIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.delete(l);
  }
}

/** Server credentials whose certificates follow a ReloadingCertificates. */
class ReloadingServerCredentials extends grpc.ServerCredentials {
  constructor(certs: ReloadingCertificates, requireClientCert: boolean) {
    super({ requestCert: requireClientCert, rejectUnauthorized: requireClientCert }, contextOf(certs.loaded));
    certs.onChange((l) => this.updateSecureContextOptions(contextOf(l)));
  }
  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

function contextOf(l: Loaded): SecureContextOptions {
  return { cert: l.cert, key: l.key, ...(l.ca !== undefined ? { ca: l.ca } : {}) };
}

/**
 * Credentials for a listener: mutual TLS when the files include a CA (the other side
 * must present a certificate signed by it), server-only TLS otherwise.
 */
export function serverCredentials(certs: ReloadingCertificates | null): grpc.ServerCredentials {
  if (certs === null) return grpc.ServerCredentials.createInsecure();
  return new ReloadingServerCredentials(certs, certs.files.ca !== undefined);
}

/**
 * Credentials for dialing member `peerId`: our certificate, the cluster CA, and instead
 * of a host name check (peers are dialed by IP or by names the certificate need not
 * list) a check that the certificate is member `peerId`'s.
 */
export function peerChannelCredentials(certs: ReloadingCertificates, peerId: string): grpc.ChannelCredentials {
  return grpc.experimental.createCertificateProviderChannelCredentials(certs, certs, {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const ids = memberIdsOf(cert);
      return ids.includes(peerId)
        ? undefined
        : new Error(`peer certificate is issued to ${ids.length === 0 ? 'no member' : `member ${ids.join(', ')}`}, not to ${peerId}`);
    },
  });
}

/** The check a peer listener's own certificate must pass: it names this member. */
export function requireMemberCertificate(id: string, flag: string): (x509: X509Certificate) => void {
  return (x509) => {
    if (!memberIdsOf({ subjectaltname: x509.subjectAltName }).includes(id))
      throw new TlsConfigError(`${flag}-cert is not issued to member ${id}: its subjectAltName must include URI:${MEMBER_URI_PREFIX}${id}`);
  };
}

/**
 * Credentials for a member forwarding a client call to the leader's client listener: the
 * member's own certificate (so a listener that requires client certificates lets it in)
 * and the cluster CA; the leader's certificate must be some member's.
 */
export function forwardingChannelCredentials(certs: ReloadingCertificates): grpc.ChannelCredentials {
  return grpc.experimental.createCertificateProviderChannelCredentials(certs, certs, {
    checkServerIdentity: (_host: string, cert: PeerCertificate) =>
      memberIdsOf(cert).length > 0 ? undefined : new Error("the certificate of the leader's client listener names no member"),
  });
}

// Peer TLS in-process (real gRPC, real TLS on loopback): a member certificate is bound
// to its member id on both ends of a stream, a foreign CA is refused, certificate files
// are re-read without a restart, and the subjectAltName parser cannot be fooled by a
// crafted name.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { certsInit } from '../../src/security/certs.js';
import { ReloadingCertificates, memberIdsOf, requireMemberCertificate, subjectAltNames, TlsConfigError } from '../../src/security/tls.js';
import { heartbeat, Nodes, sleep, waitFor, type TestNode } from '../transport/helpers.js';

const silent = pino({ level: 'silent' });
let dir: string;
let foreign: string;
const nodes = new Nodes();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'leaderd-tls-'));
  foreign = join(dir, 'foreign');
  await certsInit({ dir: join(dir, 'ca'), nodes: ['n1', 'n2', 'n3'] });
  await certsInit({ dir: foreign, nodes: ['n1', 'n2', 'n3'] });
});
afterEach(() => nodes.closeAll());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const certs = (id: string, as = id, caDir = join(dir, 'ca')) =>
  new ReloadingCertificates(
    { cert: join(caDir, `${as}.crt`), key: join(caDir, `${as}.key`), ca: join(dir, 'ca', 'ca.crt') },
    '--peer',
    silent,
  );

/** `from` sends heartbeats to `to` (at `address`) for `ms`; returns how many `to` received. */
async function sendFor(from: TestNode, to: TestNode, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (let r = 1; Date.now() < until; r++) {
    from.transport.send(heartbeat(from.id, to.id, r));
    await sleep(25);
  }
}

describe('peer TLS', () => {
  it('members with their own certificates exchange messages over mutual TLS', async () => {
    const a = await nodes.start('n1', { peerTls: certs('n1') });
    const b = await nodes.start('n2', { peerTls: certs('n2') });
    a.transport.setPeers(new Map([['n2', b.address]]));
    b.transport.setPeers(new Map([['n1', a.address]]));
    a.transport.send(heartbeat('n1', 'n2', 1));
    await waitFor('heartbeat over TLS', () => b.received.length === 1);
    expect(b.transport.stats().refused).toBe(0);
  });

  it('a valid certificate of member n1 cannot speak as n3: the server refuses the Hello, nothing is delivered', async () => {
    const b = await nodes.start('n2', { peerTls: certs('n2') });
    const impostor = await nodes.start('n3', { peerTls: certs('n3', 'n1') });
    impostor.transport.setPeers(new Map([['n2', b.address]]));
    b.transport.setPeers(new Map([['n3', impostor.address]]));
    await sendFor(impostor, b, 1500);
    expect(b.received).toEqual([]);
    expect(b.lines.some((l) => l.msg === 'refusing peer stream: certificate of another member' && l['from'] === 'n3')).toBe(true);
  });

  it('the dialer refuses a server whose certificate is another member\'s: n1 dialing "n2" reaches n3\'s certificate', async () => {
    const a = await nodes.start('n1', { peerTls: certs('n1') });
    // A server answering at n2's address with n3's (valid) certificate, claiming to be n2.
    const fake = await nodes.start('n2', { peerTls: certs('n2', 'n3') });
    fake.transport.setPeers(new Map([['n1', a.address]]));
    a.transport.setPeers(new Map([['n2', fake.address]]));
    await sendFor(a, fake, 1500);
    expect(fake.received).toEqual([]);
    expect(a.transport.stats().sent).toBe(0);
  });

  it('a certificate from a foreign CA is refused during the TLS handshake', async () => {
    const b = await nodes.start('n2', { peerTls: certs('n2') });
    const outsider = await nodes.start('n3', {
      peerTls: new ReloadingCertificates(
        { cert: join(foreign, 'n3.crt'), key: join(foreign, 'n3.key'), ca: join(foreign, 'ca.crt') },
        '--peer',
        silent,
      ),
    });
    outsider.transport.setPeers(new Map([['n2', b.address]]));
    b.transport.setPeers(new Map([['n3', outsider.address]]));
    await sendFor(outsider, b, 1500);
    expect(b.received).toEqual([]);
    expect(outsider.transport.stats().sent).toBe(0);
  });
});

describe('certificate files', () => {
  it('certs init: each member certificate names its member, chains to the CA, and the key matches', () => {
    const ca = new X509Certificate(readFileSync(join(dir, 'ca', 'ca.crt')));
    for (const id of ['n1', 'n2', 'n3']) {
      const cert = new X509Certificate(readFileSync(join(dir, 'ca', `${id}.crt`)));
      expect(memberIdsOf({ subjectaltname: cert.subjectAltName })).toEqual([id]);
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    }
    const other = new X509Certificate(readFileSync(join(foreign, 'n1.crt')));
    expect(other.verify(ca.publicKey)).toBe(false);
  });

  it('a peer certificate of another member is refused at start with a clear message', () => {
    expect(
      () =>
        new ReloadingCertificates(
          { cert: join(dir, 'ca', 'n1.crt'), key: join(dir, 'ca', 'n1.key') },
          '--peer',
          silent,
          requireMemberCertificate('n2', '--peer'),
        ),
    ).toThrow(/--peer-cert is not issued to member n2/);
    expect(() => new ReloadingCertificates({ cert: join(dir, 'ca', 'n1.crt'), key: join(dir, 'ca', 'n2.key') }, '--peer', silent)).toThrow(
      TlsConfigError,
    );
  });

  it('reload: a broken file keeps the current certificates; a new valid pair is picked up and announced', () => {
    const d = mkdtempSync(join(tmpdir(), 'leaderd-rot-'));
    try {
      copyFileSync(join(dir, 'ca', 'n1.crt'), join(d, 'n1.crt'));
      copyFileSync(join(dir, 'ca', 'n1.key'), join(d, 'n1.key'));
      const r = new ReloadingCertificates(
        { cert: join(d, 'n1.crt'), key: join(d, 'n1.key'), ca: join(dir, 'ca', 'ca.crt') },
        '--peer',
        silent,
      );
      const seen: Buffer[] = [];
      r.addIdentityCertificateListener((u) => seen.push(u!.certificate));
      const before = r.loaded.x509.fingerprint256;
      writeFileSync(join(d, 'n1.key'), 'half-written');
      expect(r.reload()).toBe(false);
      expect(r.loaded.x509.fingerprint256).toBe(before);
      // Rotation: a fresh pair for n1 from the foreign run (a real rotation would keep the CA).
      copyFileSync(join(foreign, 'n1.crt'), join(d, 'n1.crt'));
      copyFileSync(join(foreign, 'n1.key'), join(d, 'n1.key'));
      expect(r.reload()).toBe(true);
      expect(r.loaded.x509.fingerprint256).not.toBe(before);
      expect(seen).toHaveLength(2);
      expect(seen[1]!.equals(readFileSync(join(foreign, 'n1.crt')))).toBe(true);
      r.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('subjectAltName parsing: a quoted name holding a comma stays one entry, so it cannot smuggle in a member URI', () => {
    const san = 'DNS:"x, URI:urn:leaderd:member:n2", URI:urn:leaderd:member:n1, IP Address:127.0.0.1';
    expect(subjectAltNames(san)).toEqual([
      { type: 'DNS', value: 'x, URI:urn:leaderd:member:n2' },
      { type: 'URI', value: 'urn:leaderd:member:n1' },
      { type: 'IP Address', value: '127.0.0.1' },
    ]);
    expect(memberIdsOf({ subjectaltname: san })).toEqual(['n1']);
    expect(memberIdsOf(undefined)).toEqual([]);
  });
});

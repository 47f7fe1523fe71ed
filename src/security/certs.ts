// `leaderd certs init`: a test certificate authority and one certificate per member, made
// with WebCrypto (ECDSA P-256) and @peculiar/x509, no openssl needed. Each member's
// certificate names the member in its subjectAltName (URI urn:leaderd:member:<id>), which
// is what binds a peer stream to a member, and also serves the client listener
// (localhost, 127.0.0.1, ::1 and any --hosts). A client certificate is made for the CLI
// and client library when client certificates are turned on (--client-ca).
// @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs the Reflect
// metadata API; this module is loaded only by `certs init` and `local --tls`.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { CLIENT_URI_PREFIX, MEMBER_URI_PREFIX } from './tls.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export class CertsError extends Error {
  override readonly name = 'CertsError';
}

export interface CertsInitOptions {
  readonly dir: string;
  readonly nodes: readonly string[];
  /** Extra DNS names or IP addresses every member certificate is valid for. */
  readonly hosts?: readonly string[];
  /** Name of the client certificate (its CN and urn:leaderd:client: URI); default "admin". */
  readonly clientName?: string;
  readonly days?: number;
}

export interface CertsInitResult {
  readonly files: string[];
}

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;
// Node's WebCrypto implements the standard Crypto interface the library asks for; the
// DOM type it names is not in this project's lib, hence the cast.
x509.cryptoProvider.set(crypto as never);

async function keyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function randomSerial(): string {
  // Positive (top bit clear) 16-byte serial, as RFC 5280 §4.1.2.2 asks.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

export async function certsInit(opts: CertsInitOptions): Promise<CertsInitResult> {
  if (opts.nodes.length === 0) throw new CertsError('--nodes is empty');
  const caPath = join(opts.dir, 'ca.crt');
  if (existsSync(caPath)) throw new CertsError(`${caPath} already exists; refusing to overwrite a CA (use another --dir)`);
  mkdirSync(opts.dir, { recursive: true });
  const days = opts.days ?? 365;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + days * 86_400_000);
  const files: string[] = [];
  const write = (name: string, text: string, secret: boolean) => {
    const p = join(opts.dir, name);
    writeFileSync(p, text, { mode: secret ? 0o600 : 0o644 });
    if (secret) chmodSync(p, 0o600);
    files.push(p);
  };

  const caKeys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: 'CN=leaderd test CA',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  write('ca.crt', ca.toString('pem') + '\n', false);
  write('ca.key', await keyPem(caKeys.privateKey), true);

  const issue = async (name: string, cn: string, san: x509.JsonGeneralNames, server: boolean) => {
    const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=${cn}`,
      issuer: ca.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(
          server ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth],
        ),
        new x509.SubjectAlternativeNameExtension(san),
        await x509.AuthorityKeyIdentifierExtension.create(ca),
      ],
    });
    write(`${name}.crt`, cert.toString('pem') + '\n', false);
    write(`${name}.key`, await keyPem(keys.privateKey), true);
  };

  const hosts: x509.JsonGeneralNames = ['localhost', '127.0.0.1', '::1', ...(opts.hosts ?? [])].map((h) =>
    isIP(h) ? { type: 'ip', value: h } : { type: 'dns', value: h },
  );
  for (const id of opts.nodes) {
    await issue(id, id, [{ type: 'url', value: `${MEMBER_URI_PREFIX}${id}` }, { type: 'dns', value: id }, ...hosts], true);
  }
  const client = opts.clientName ?? 'admin';
  await issue('client', client, [{ type: 'url', value: `${CLIENT_URI_PREFIX}${client}` }], false);
  return { files };
}

// The auth table and checks, without a server: every method of the client API has a rule,
// roles are ordered, scopes hold for every key a request touches, and bad token files are
// refused with a message naming the entry.
import { afterAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  AuthConfigError,
  Authenticator,
  METHOD_RULES,
  authorizeMessage,
  authorizeMethod,
  readTokenFile,
  type Principal,
} from '../../src/security/auth.js';
import { loadPublicApi } from '../../src/transport/protos.js';
import { resolveStartConfig, ConfigError } from '../../src/server/config.js';

const dir = mkdtempSync(join(tmpdir(), 'leaderd-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function tokenFile(content: unknown): string {
  const p = join(dir, `t${n++}.json`);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

const reader: Principal = { name: 'r', role: 'read', prefixes: undefined };
const writer: Principal = { name: 'w', role: 'write', prefixes: undefined };
const admin: Principal = { name: 'a', role: 'admin', prefixes: undefined };
const scoped: Principal = { name: 's', role: 'write', prefixes: ['jobs/'] };

describe('auth rules', () => {
  it('every method the client API serves has a rule (a new RPC must be classified here)', () => {
    const api = loadPublicApi().leaderd.v1;
    const paths = [api.Cluster, api.KV, api.Lease, api.Election, api.Lock].flatMap((c) => Object.values(c.service).map((m) => m.path));
    expect(paths.length).toBeGreaterThan(20);
    expect(paths.filter((p) => METHOD_RULES[p] === undefined)).toEqual([]);
  });

  it('roles are ordered read < write < admin; admin operations need admin; an unknown method needs admin', () => {
    expect(authorizeMethod(reader, '/leaderd.v1.KV/Get').ok).toBe(true);
    expect(authorizeMethod(reader, '/leaderd.v1.KV/Put')).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(authorizeMethod(writer, '/leaderd.v1.KV/Put').ok).toBe(true);
    expect(authorizeMethod(writer, '/leaderd.v1.Cluster/TransferLeader')).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(authorizeMethod(admin, '/leaderd.v1.Cluster/TransferLeader').ok).toBe(true);
    expect(authorizeMethod(writer, '/leaderd.v1.Cluster/SomethingNew')).toMatchObject({ ok: false });
    expect(authorizeMethod(admin, '/leaderd.v1.Cluster/SomethingNew').ok).toBe(true);
    // A backup holds every key: a writer (or a scoped admin) may not take one.
    expect(authorizeMethod(writer, '/leaderd.v1.Cluster/Snapshot')).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(authorizeMethod({ ...admin, prefixes: ['jobs/'] }, '/leaderd.v1.Cluster/Snapshot')).toMatchObject({ ok: false });
    expect(authorizeMethod(admin, '/leaderd.v1.Cluster/Snapshot').ok).toBe(true);
  });

  it('a scoped token touches only keys under its prefixes, in every field a request names', () => {
    const put = '/leaderd.v1.KV/Put';
    expect(authorizeMessage(scoped, put, { key: 'jobs/a' }).ok).toBe(true);
    expect(authorizeMessage(scoped, put, { key: 'billing/a' })).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    // A range or watch over a wider prefix than the scope is refused.
    expect(authorizeMessage(scoped, '/leaderd.v1.KV/Range', { prefix: 'jobs/' }).ok).toBe(true);
    expect(authorizeMessage(scoped, '/leaderd.v1.KV/Range', { prefix: '' }).ok).toBe(false);
    expect(authorizeMessage(scoped, '/leaderd.v1.KV/Watch', { key: 'job', prefix: true }).ok).toBe(false);
    // One op outside the scope in either branch, or one compare, refuses the whole Txn.
    const txn = (outside: 'compare' | 'success' | 'failure') => ({
      compare: [{ key: outside === 'compare' ? 'x' : 'jobs/c' }],
      success: [{ put: { key: outside === 'success' ? 'x' : 'jobs/p' }, request: 'put' }],
      failure: [{ delete: { key: outside === 'failure' ? 'x' : 'jobs/', prefix: true }, request: 'delete' }],
    });
    for (const o of ['compare', 'success', 'failure'] as const)
      expect(authorizeMessage(scoped, '/leaderd.v1.KV/Txn', txn(o)).ok, o).toBe(false);
    expect(authorizeMessage(scoped, '/leaderd.v1.KV/Txn', { compare: [], success: [{ get: { key: 'jobs/g' } }], failure: [] }).ok).toBe(
      true,
    );
    // Election and lock names are scoped like keys; Unlock by the lock key's name part.
    expect(authorizeMessage(scoped, '/leaderd.v1.Election/Campaign', { name: 'jobs/primary' }).ok).toBe(true);
    expect(authorizeMessage(scoped, '/leaderd.v1.Election/Resign', { leader: { name: 'other' } }).ok).toBe(false);
    expect(authorizeMessage(scoped, '/leaderd.v1.Lock/Unlock', { key: '_leaderd/lock/jobs/x/00000000000000a1' }).ok).toBe(true);
    expect(authorizeMessage(scoped, '/leaderd.v1.Lock/Unlock', { key: '_leaderd/lock/other/00000000000000a1' }).ok).toBe(false);
    expect(authorizeMessage(scoped, '/leaderd.v1.Lock/Unlock', { key: 'jobs/not-a-lock-key' }).ok).toBe(false);
    // Revoke deletes keys wherever they are: closed to scoped tokens.
    expect(authorizeMethod(scoped, '/leaderd.v1.Lease/Revoke').ok).toBe(false);
    // Unscoped principals pass every message.
    expect(authorizeMessage(writer, put, { key: 'anything' }).ok).toBe(true);
  });

  it('tokens are found by digest; a wrong or near-miss token matches nobody; sha256 entries work without the secret in the file', () => {
    const secret = 'correct-horse-battery-staple';
    const auth = new Authenticator(
      readTokenFile(
        tokenFile({
          tokens: [
            { name: 'ops', role: 'admin', token: secret },
            { name: 'ci', role: 'write', sha256: createHash('sha256').update('ci-token-0123456789').digest('hex'), prefixes: ['ci/'] },
            { name: 'svc', role: 'read', cert: true },
          ],
        }),
      ),
    );
    expect(auth.byToken(secret)?.name).toBe('ops');
    expect(auth.byToken(secret + 'x')).toBeUndefined();
    expect(auth.byToken(secret.slice(0, -1))).toBeUndefined();
    expect(auth.byToken('ci-token-0123456789')).toMatchObject({ name: 'ci', role: 'write', prefixes: ['ci/'] });
    expect(auth.byCertificateName('svc')?.role).toBe('read');
    expect(auth.byCertificateName('ops')).toBeUndefined();
  });

  it('bad token files are refused with the entry named', () => {
    const bad: [unknown, RegExp][] = [
      ['not json', /t\d+\.json/],
      [{ tokens: [] }, /at least one entry/],
      [{ tokens: [{ name: 'a', role: 'root', token: 'x'.repeat(20) }] }, /entry 1 \(a\): "role"/],
      [{ tokens: [{ name: 'a', role: 'read', token: 'short' }] }, /at least 16 characters/],
      [{ tokens: [{ name: 'a', role: 'read', token: 'x'.repeat(20), extra: 1 }] }, /unknown field 'extra'/],
      [
        {
          tokens: [
            { name: 'a', role: 'read', token: 'x'.repeat(20) },
            { name: 'a', role: 'read', token: 'y'.repeat(20) },
          ],
        },
        /entry 2: name a appears twice/,
      ],
      [{ tokens: [{ name: 'a', role: 'read' }] }, /needs "token", "sha256" or "cert": true/],
      [{ tokens: [{ name: 'a', role: 'read', token: 'x'.repeat(20), prefixes: [] }] }, /"prefixes" must be a non-empty list/],
    ];
    for (const [content, re] of bad) expect(() => readTokenFile(tokenFile(content))).toThrow(re);
    expect(() => readTokenFile(join(dir, 'missing.json'))).toThrow(AuthConfigError);
  });
});

describe('secure by default', () => {
  const base = { id: 'a', peers: 'a=10.0.0.1:7100', 'advertise-peer': '10.0.0.1:7100', 'advertise-client': '10.0.0.1:7000' };
  it('a non-loopback listener without TLS is refused unless --insecure; loopback stays open', () => {
    expect(() => resolveStartConfig({ ...base, 'listen-peer': '0.0.0.0:7100', 'listen-client': '127.0.0.1:7000' })).toThrow(
      /refusing to listen for peers on 0\.0\.0\.0:7100 without TLS/,
    );
    expect(() => resolveStartConfig({ ...base, 'listen-peer': '127.0.0.1:7100', 'listen-client': '10.0.0.1:7000' })).toThrow(
      /refusing to listen for clients on 10\.0\.0\.1:7000 without TLS/,
    );
    expect(resolveStartConfig({ ...base, 'listen-peer': '0.0.0.0:7100', 'listen-client': '0.0.0.0:7000', insecure: 'true' }).insecure).toBe(
      true,
    );
    expect(resolveStartConfig({ id: 'a', 'listen-peer': '127.0.0.1:7100', 'listen-client': 'localhost:7000' }).peerTls).toBeNull();
  });

  it('TLS flags go together; client TLS needs peer TLS; --reflection takes true or false', () => {
    const lo = { id: 'a', 'listen-peer': '127.0.0.1:7100', 'listen-client': '127.0.0.1:7000' };
    expect(() => resolveStartConfig({ ...lo, 'peer-cert': 'a.crt', 'peer-key': 'a.key' })).toThrow(/go together/);
    expect(() => resolveStartConfig({ ...lo, 'client-cert': 'a.crt', 'client-key': 'a.key' })).toThrow(/needs peer TLS/);
    expect(() => resolveStartConfig({ ...lo, 'client-ca': 'ca.crt' })).toThrow(ConfigError);
    const ok = resolveStartConfig({
      ...base,
      'listen-peer': '0.0.0.0:7100',
      'listen-client': '0.0.0.0:7000',
      'peer-cert': 'a.crt',
      'peer-key': 'a.key',
      'peer-ca': 'ca.crt',
      'client-cert': 'a.crt',
      'client-key': 'a.key',
      reflection: 'false',
    });
    expect(ok).toMatchObject({ peerTls: { cert: 'a.crt', key: 'a.key', ca: 'ca.crt' }, clientTls: { cert: 'a.crt' }, reflection: false });
    expect(() => resolveStartConfig({ ...lo, reflection: 'off' })).toThrow(/--reflection must be true or false/);
  });
});

// Authentication and roles for the client API, as one grpc-js server interceptor: no
// service handler knows about it. A caller is identified by a bearer token
// (`authorization: Bearer <token>`) or, when client certificates are on, by the name in
// its certificate (URI urn:leaderd:client:<name>); the token file says what each may do.
//
// Roles are ordered read < write < admin. A token may also be limited to key prefixes: the
// interceptor reads every request message and refuses one that touches a key (or a
// prefix) outside them. Which role a method needs and which keys a request touches is
// the table below, one row per method; a method missing from it needs admin and is
// closed to scoped tokens, so a method added later is never open by accident.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CLIENT_URI_PREFIX, MEMBER_URI_PREFIX, subjectAltNames } from './tls.js';
import { ApiError, toStatus } from '../api/errors.js';

export const ROLES = ['read', 'write', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export class AuthConfigError extends Error {
  override readonly name = 'AuthConfigError';
}

export interface Principal {
  readonly name: string;
  readonly role: Role;
  /** Key prefixes this principal may touch; undefined = every key. */
  readonly prefixes: readonly string[] | undefined;
}

interface TokenEntry extends Principal {
  /** SHA-256 of the token; compared in constant time. */
  readonly digest: Buffer | undefined;
  /** Whether a client certificate naming `name` identifies this principal. */
  readonly cert: boolean;
}

/** A key or key prefix a request reads or writes. */
export interface Touch {
  readonly key: string;
  readonly prefix: boolean;
}

interface MethodRule {
  readonly role: Role;
  /** The keys each request message touches; undefined = the method is closed to scoped tokens. */
  readonly touches?: (req: Record<string, unknown>) => Touch[];
}

const LOCK_PREFIX = '_leaderd/lock/';

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const keyOf = (field: string) => (req: Record<string, unknown>) => [{ key: str(req[field]), prefix: false }];
const leaderName = (req: Record<string, unknown>) => [{ key: str((req.leader as { name?: unknown } | undefined)?.name), prefix: false }];
const none = () => [];

function txnTouches(req: Record<string, unknown>): Touch[] {
  const out: Touch[] = [];
  for (const c of (req.compare as { key?: unknown }[] | undefined) ?? []) out.push({ key: str(c.key), prefix: false });
  for (const branch of ['success', 'failure'])
    for (const op of (req[branch] as Record<string, { key?: unknown; prefix?: unknown } | undefined>[] | undefined) ?? []) {
      const inner = op.put ?? op.get ?? op.delete;
      if (inner !== undefined) out.push({ key: str(inner.key), prefix: inner.prefix === true });
    }
  return out;
}

/** What each method of the client API needs. Health checks need nothing (see EXEMPT). */
export const METHOD_RULES: Readonly<Record<string, MethodRule>> = {
  '/leaderd.v1.Cluster/GetLeader': { role: 'read', touches: none },
  '/leaderd.v1.Cluster/WatchLeader': { role: 'read', touches: none },
  '/leaderd.v1.Cluster/GetStatus': { role: 'read', touches: none },
  '/leaderd.v1.Cluster/ListMembers': { role: 'read', touches: none },
  '/leaderd.v1.Cluster/TransferLeader': { role: 'admin' },
  '/leaderd.v1.Cluster/AddMember': { role: 'admin' },
  '/leaderd.v1.Cluster/RemoveMember': { role: 'admin' },
  '/leaderd.v1.Cluster/PromoteMember': { role: 'admin' },
  // Priorities and drains decide who may lead.
  '/leaderd.v1.Cluster/UpdateMember': { role: 'admin' },
  // A backup holds every key: only for admins.
  '/leaderd.v1.Cluster/Snapshot': { role: 'admin' },
  '/leaderd.v1.KV/Put': { role: 'write', touches: keyOf('key') },
  '/leaderd.v1.KV/Get': { role: 'read', touches: keyOf('key') },
  '/leaderd.v1.KV/Delete': { role: 'write', touches: (r) => [{ key: str(r.key), prefix: r.prefix === true }] },
  '/leaderd.v1.KV/Range': { role: 'read', touches: (r) => [{ key: str(r.prefix), prefix: true }] },
  '/leaderd.v1.KV/CompareAndSwap': { role: 'write', touches: keyOf('key') },
  '/leaderd.v1.KV/Txn': { role: 'write', touches: txnTouches },
  '/leaderd.v1.KV/Watch': { role: 'read', touches: (r) => [{ key: str(r.key), prefix: r.prefix === true }] },
  // Every writer holds a session (exactly-once retries); sessions name no keys.
  '/leaderd.v1.KV/OpenSession': { role: 'write', touches: none },
  '/leaderd.v1.KV/KeepAliveSession': { role: 'write', touches: none },
  '/leaderd.v1.KV/CloseSession': { role: 'write', touches: none },
  '/leaderd.v1.Lease/Grant': { role: 'write', touches: none },
  '/leaderd.v1.Lease/KeepAlive': { role: 'write', touches: none },
  '/leaderd.v1.Lease/KeepAliveOnce': { role: 'write', touches: none },
  '/leaderd.v1.Lease/TimeToLive': { role: 'read', touches: none },
  // Revoking deletes every key attached to the lease, wherever it is: unscoped tokens only.
  '/leaderd.v1.Lease/Revoke': { role: 'write' },
  // Election and lock names are scoped like keys.
  '/leaderd.v1.Election/Campaign': { role: 'write', touches: keyOf('name') },
  '/leaderd.v1.Election/Proclaim': { role: 'write', touches: leaderName },
  '/leaderd.v1.Election/Leader': { role: 'read', touches: keyOf('name') },
  '/leaderd.v1.Election/Observe': { role: 'read', touches: keyOf('name') },
  '/leaderd.v1.Election/Resign': { role: 'write', touches: leaderName },
  '/leaderd.v1.Lock/Lock': { role: 'write', touches: keyOf('name') },
  // The lock key is _leaderd/lock/<name>/<lease>: scoped by the name it starts with.
  '/leaderd.v1.Lock/Unlock': {
    role: 'write',
    touches: (r) => [
      { key: str(r.key).startsWith(LOCK_PREFIX) ? str(r.key).slice(LOCK_PREFIX.length) : `\u0000${str(r.key)}`, prefix: false },
    ],
  },
  '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo': { role: 'read', touches: none },
  '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo': { role: 'read', touches: none },
};

/** Open to everyone: a load balancer or orchestrator probing health holds no token. */
const EXEMPT = new Set(['/grpc.health.v1.Health/Check', '/grpc.health.v1.Health/Watch', '/grpc.health.v1.Health/List']);

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/**
 * The token file: JSON, `{"tokens": [{"name", "role", "token" | "sha256" | "cert": true,
 * "prefixes"?}]}`. "token" is the secret itself (at least 16 characters), "sha256" its hex
 * digest (so the file need not hold the secret), "cert": true lets a client certificate
 * issued to `name` in.
 */
export function readTokenFile(path: string): TokenEntry[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new AuthConfigError(`--auth-token-file ${path}: ${e.code ?? e.message}`);
  }
  const list = (raw as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(list) || list.length === 0)
    throw new AuthConfigError(`--auth-token-file ${path} must hold {"tokens": [...]} with at least one entry`);
  const names = new Set<string>();
  return list.map((t: unknown, i): TokenEntry => {
    const where = `--auth-token-file ${path}: entry ${i + 1}`;
    if (typeof t !== 'object' || t === null) throw new AuthConfigError(`${where} must be an object`);
    const e = t as Record<string, unknown>;
    for (const k of Object.keys(e))
      if (!['name', 'role', 'token', 'sha256', 'cert', 'prefixes'].includes(k)) throw new AuthConfigError(`${where}: unknown field '${k}'`);
    if (typeof e.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$/.test(e.name))
      throw new AuthConfigError(`${where}: "name" must be 1-63 letters, digits, '.', '_', '@' or '-'`);
    if (names.has(e.name)) throw new AuthConfigError(`${where}: name ${e.name} appears twice`);
    names.add(e.name);
    if (!(ROLES as readonly unknown[]).includes(e.role))
      throw new AuthConfigError(`${where} (${e.name}): "role" must be one of ${ROLES.join(', ')}`);
    let d: Buffer | undefined;
    if (e.token !== undefined) {
      if (typeof e.token !== 'string' || e.token.length < 16 || /\s/.test(e.token))
        throw new AuthConfigError(`${where} (${e.name}): "token" must be at least 16 characters without spaces`);
      d = digest(e.token);
    }
    if (e.sha256 !== undefined) {
      if (d !== undefined) throw new AuthConfigError(`${where} (${e.name}): give "token" or "sha256", not both`);
      if (typeof e.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(e.sha256))
        throw new AuthConfigError(`${where} (${e.name}): "sha256" must be 64 hex digits`);
      d = Buffer.from(e.sha256, 'hex');
    }
    if (e.cert !== undefined && typeof e.cert !== 'boolean')
      throw new AuthConfigError(`${where} (${e.name}): "cert" must be true or false`);
    if (d === undefined && e.cert !== true) throw new AuthConfigError(`${where} (${e.name}): needs "token", "sha256" or "cert": true`);
    let prefixes: string[] | undefined;
    if (e.prefixes !== undefined) {
      if (!Array.isArray(e.prefixes) || e.prefixes.length === 0 || !e.prefixes.every((p) => typeof p === 'string' && p !== ''))
        throw new AuthConfigError(`${where} (${e.name}): "prefixes" must be a non-empty list of non-empty strings`);
      prefixes = e.prefixes as string[];
    }
    return { name: e.name, role: e.role as Role, prefixes, digest: d, cert: e.cert === true };
  });
}

const rank = (r: Role): number => ROLES.indexOf(r);

export function allowedTouch(p: Principal, t: Touch): boolean {
  if (p.prefixes === undefined) return true;
  // A prefix request (range, watch, delete by prefix) must lie wholly inside a scope.
  return p.prefixes.some((s) => t.key.startsWith(s));
}

export class Authenticator {
  private entries: TokenEntry[];

  constructor(entries: TokenEntry[]) {
    this.entries = entries;
  }

  replace(entries: TokenEntry[]): void {
    this.entries = entries;
  }

  /** The principal a bearer token belongs to. Every entry is compared, in constant time. */
  byToken(token: string): Principal | undefined {
    const d = digest(token);
    let found: TokenEntry | undefined;
    for (const e of this.entries) if (e.digest !== undefined && timingSafeEqual(e.digest, d) && found === undefined) found = e;
    return found;
  }

  byCertificateName(name: string): Principal | undefined {
    return this.entries.find((e) => e.cert && e.name === name);
  }
}

/** The names a verified client certificate is issued to (its urn:leaderd:client: and member URIs). */
function certificateNames(call: grpc.ServerInterceptingCallInterface): { client: string | undefined; member: string | undefined } {
  const sans = subjectAltNames(call.getAuthContext()?.sslPeerCertificate?.subjectaltname).filter((e) => e.type === 'URI');
  const client = sans.find((e) => e.value.startsWith(CLIENT_URI_PREFIX))?.value.slice(CLIENT_URI_PREFIX.length);
  const member = sans.find((e) => e.value.startsWith(MEMBER_URI_PREFIX))?.value.slice(MEMBER_URI_PREFIX.length);
  return { client, member };
}

export type Verdict = { ok: true; principal: Principal } | { ok: false; code: grpc.status; details: string };

/** Who is calling, from its metadata and connection; UNAUTHENTICATED if nobody. */
export function authenticate(auth: Authenticator, metadata: grpc.Metadata, call: grpc.ServerInterceptingCallInterface): Verdict {
  const header = metadata.get('authorization')[0];
  if (header !== undefined) {
    const m = /^Bearer ([^\s]+)$/i.exec(String(header));
    const p = m ? auth.byToken(m[1]!) : undefined;
    if (p === undefined) return { ok: false, code: grpc.status.UNAUTHENTICATED, details: 'invalid bearer token' };
    return { ok: true, principal: p };
  }
  const { client: name, member } = certificateNames(call);
  const p = name === undefined ? undefined : auth.byCertificateName(name);
  if (p !== undefined) return { ok: true, principal: p };
  // Another member forwarding a call whose caller it has already checked (a member
  // certificate is trusted with the whole cluster anyway).
  if (member !== undefined) return { ok: true, principal: { name: `member:${member}`, role: 'admin', prefixes: undefined } };
  return {
    ok: false,
    code: grpc.status.UNAUTHENTICATED,
    details:
      name === undefined
        ? 'authentication required: send authorization: Bearer <token>'
        : `client certificate ${name} is not in the token file`,
  };
}

/** Whether `principal` may call `method` at all (before any message is read). */
export function authorizeMethod(p: Principal, method: string): Verdict {
  const rule = METHOD_RULES[method];
  const need: Role = rule?.role ?? 'admin';
  if (rank(p.role) < rank(need))
    return { ok: false, code: grpc.status.PERMISSION_DENIED, details: `${p.name} has role ${p.role}; ${method} needs ${need}` };
  if (p.prefixes !== undefined && rule?.touches === undefined)
    return { ok: false, code: grpc.status.PERMISSION_DENIED, details: `${p.name} is limited to key prefixes; ${method} is not` };
  return { ok: true, principal: p };
}

/** Whether one request message stays within `principal`'s prefixes. */
export function authorizeMessage(p: Principal, method: string, msg: unknown): Verdict {
  if (p.prefixes === undefined) return { ok: true, principal: p };
  const touches = METHOD_RULES[method]?.touches;
  if (touches === undefined)
    return { ok: false, code: grpc.status.PERMISSION_DENIED, details: `${p.name} is limited to key prefixes; ${method} is not` };
  const req = typeof msg === 'object' && msg !== null ? (msg as Record<string, unknown>) : {};
  for (const t of touches(req))
    if (!allowedTouch(p, t))
      return {
        ok: false,
        code: grpc.status.PERMISSION_DENIED,
        details: `${p.name} may not touch ${t.prefix ? 'prefix' : 'key'} '${t.key.slice(0, 200)}' (allowed: ${p.prefixes.join(', ')})`,
      };
  return { ok: true, principal: p };
}

/**
 * The server interceptor. Refusals are logged at debug with the principal's name and the
 * method, never the token.
 */
export function authInterceptor(auth: Authenticator, log: Logger): grpc.ServerInterceptor {
  return (method, call) => {
    let principal: Principal | undefined;
    const refuse = (v: Extract<Verdict, { ok: false }>) => {
      log.debug({ method: method.path, principal: principal?.name, code: v.code }, 'client call refused');
      // Refused before any handler ran: the call took no effect, and clients may say so
      // (the kind's outcome rule in the one error contract says not-applied).
      const kind = v.code === grpc.status.UNAUTHENTICATED ? 'unauthenticated' : 'permission-denied';
      call.sendStatus(toStatus(new ApiError(kind, v.details)));
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            if (EXEMPT.has(method.path)) return mdNext(metadata);
            const who = authenticate(auth, metadata, call);
            if (!who.ok) return refuse(who);
            const may = authorizeMethod(who.principal, method.path);
            if (!may.ok) return refuse(may);
            principal = who.principal;
            mdNext(metadata);
          },
          onReceiveMessage: (msg, msgNext) => {
            if (EXEMPT.has(method.path)) return msgNext(msg);
            if (principal === undefined) return;
            const v = authorizeMessage(principal, method.path, msg);
            if (!v.ok) return refuse(v);
            msgNext(msg);
          },
        });
      },
    });
  };
}

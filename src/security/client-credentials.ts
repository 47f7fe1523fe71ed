// How a client (LeaderdClient, the CLI's ClusterClient, a node forwarding to the leader)
// reaches nodes that use TLS or tokens: channel credentials from a CA (and optionally a
// client certificate), and the bearer token added to every call by an interceptor, which,
// unlike call credentials, also works over plaintext (loopback with tokens).
import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';

export interface ClientSecurity {
  /** PEM of the CA that signed the nodes' client-listener certificates; TLS when given. */
  readonly ca?: Buffer | string | undefined;
  /** Client certificate and key (PEM), for nodes started with --client-ca. */
  readonly cert?: Buffer | string | undefined;
  readonly key?: Buffer | string | undefined;
  /** Bearer token for nodes started with --auth-token-file. */
  readonly token?: string | undefined;
}

const buf = (v: Buffer | string | undefined): Buffer | null => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));

/** Stands in for an IP address as the TLS server name (SNI); see channelFor. */
export const IP_SERVER_NAME = 'leaderd';

/**
 * Credentials and channel options for one endpoint (host:port). The certificate is
 * checked against the endpoint's host, IP addresses included; for an IP the TLS server
 * name sent is a placeholder, since RFC 6066 forbids IPs there (Node warns on every
 * process that does it).
 */
export function channelFor(
  sec: ClientSecurity | undefined,
  endpoint: string,
): { creds: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (sec?.ca === undefined) {
    if (sec?.cert !== undefined) throw new Error('a client certificate needs the CA too (TLS)');
    return { creds: grpc.credentials.createInsecure(), options: {} };
  }
  if ((sec.cert === undefined) !== (sec.key === undefined)) throw new Error('a client certificate and its key go together');
  const host = endpoint.slice(0, endpoint.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
  const creds = grpc.credentials.createSsl(buf(sec.ca), buf(sec.key), buf(sec.cert), {
    checkServerIdentity: (_servername, cert) => checkServerIdentity(host, cert),
  });
  return { creds, options: isIP(host) ? { 'grpc.ssl_target_name_override': IP_SERVER_NAME } : {} };
}

/** Adds `authorization: Bearer <token>` to every call. */
export function tokenInterceptors(sec: ClientSecurity | undefined): grpc.Interceptor[] {
  const token = sec?.token;
  if (token === undefined || token === '') return [];
  return [
    (options, nextCall) =>
      new grpc.InterceptingCall(nextCall(options), {
        start: (metadata, listener, next) => {
          metadata.set('authorization', `Bearer ${token}`);
          next(metadata, listener);
        },
      }),
  ];
}

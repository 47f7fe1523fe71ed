// The peer server's HTTP/2 receive window. Peer messages flow from a dialling node
// (the gRPC client) to the node it dials (the server), so the server's window paces
// every append and snapshot chunk. grpc-js 1.14 lets a client raise its window
// ('grpc-node.flow_control_window') but not a server (grpc/grpc-node#3058): the server
// keeps HTTP/2's 64 KiB, and each 64 KiB then needs a turn of the receiver's event
// loop to be acknowledged. A follower busy applying 1 MiB values took 100-200 ms to
// take in one such append, heartbeats waited behind it, and leaders lost their quorum
// (lost-quorum step-downs) under loads that the disk and the link sustain easily.
//
// Until grpc-js has the option, this sets the window through two of its internals that
// are stable across 1.x: the settings object it passes to http2.createServer, and the
// http2 servers it binds. Each is checked; if one is missing the window stays at the
// default and widenServerReceiveWindow says so (the transport test fails then).

import type * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';

/** The largest window HTTP/2 allows (RFC 9113 §6.9.1). */
const MAX_WINDOW = 2 ** 31 - 1;

interface ServerInternals {
  commonServerOptions?: { settings?: http2.Settings };
  http2Servers?: Map<http2.Http2Server | http2.Http2SecureServer, unknown>;
}

/** Before bindAsync: every stream of `server` opens with a receive window of `bytes`. False if grpc-js's internals are not where expected. */
export function widenStreamWindow(server: grpc.Server, bytes: number): boolean {
  const internals = server as unknown as ServerInternals;
  const options = internals.commonServerOptions;
  if (options === undefined || typeof options !== 'object') return false;
  options.settings = { ...options.settings, initialWindowSize: Math.min(bytes, MAX_WINDOW) };
  return true;
}

/**
 * After bindAsync: every new connection to `server` gets a connection-level receive
 * window of `bytes` as well (HTTP/2 bounds the whole connection apart from each stream).
 * `applied` is called with each session's window once set. False if grpc-js's internals
 * are not where expected.
 */
export function widenConnectionWindow(server: grpc.Server, bytes: number, applied: (bytes: number) => void): boolean {
  const servers = (server as unknown as ServerInternals).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) return false;
  const size = Math.min(bytes, MAX_WINDOW);
  for (const h of servers.keys()) {
    h.on('session', (session: http2.ServerHttp2Session) => {
      const widen = () => {
        session.setLocalWindowSize(size);
        applied(session.state.localWindowSize ?? size);
      };
      // A session can take a new window once its settings are exchanged.
      session.once('localSettings', () => {
        try {
          widen();
        } catch {
          // Closed meanwhile: nothing to widen.
        }
      });
    });
  }
  return true;
}

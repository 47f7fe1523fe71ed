// Followers forward writes (and leader-only operations) to the leader over the leader's
// public API, passing on the client's deadline. A forwarded call is marked so the
// receiver never forwards it again, and it is sent at most once: if the channel to the
// leader cannot be made ready, nothing was sent (`not-applied`); once sent, a failure
// without the leader's own verdict is `unknown`. Never re-sent: a write that may have
// been proposed must not be proposed twice.
import * as grpc from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import { ApiError, kindOfCode, readStatus } from '../api/errors.js';

export const FORWARDED_KEY = 'leaderd-forwarded';

export interface CallContext {
  readonly signal: AbortSignal;
  /** Absolute deadline (ms since epoch), Infinity for none. */
  readonly deadline: number;
  readonly forwarded: boolean;
  /** The caller's `authorization` header, passed on so the leader checks the same token. */
  readonly authorization?: string | undefined;
}

export class Forwarder {
  private readonly clients = new Map<string, grpc.Client>();

  /** `credentials`: how to reach the leader's client listener (TLS when it has TLS). */
  constructor(
    private readonly credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
    private readonly channelOptions: grpc.ChannelOptions = {},
  ) {}

  private client(address: string): grpc.Client {
    let c = this.clients.get(address);
    if (!c) {
      c = new grpc.Client(address, this.credentials, {
        ...this.channelOptions,
        'grpc.initial_reconnect_backoff_ms': 50,
        'grpc.max_reconnect_backoff_ms': 500,
        'grpc.keepalive_time_ms': 10_000,
      });
      this.clients.set(address, c);
    }
    return c;
  }

  async unary<Req, Res>(def: MethodDefinition<Req, Res>, request: Req, address: string, ctx: CallContext): Promise<Res> {
    const client = this.client(address);
    const readyBy = Math.min(ctx.deadline, Date.now() + 2000);
    await new Promise<void>((resolve, reject) => {
      client.waitForReady(readyBy, (err) => {
        if (err) reject(new ApiError('unavailable', `cannot reach the leader at ${address}: ${err.message}`, 'not-applied'));
        else resolve();
      });
    });
    const md = new grpc.Metadata();
    md.set(FORWARDED_KEY, '1');
    if (ctx.authorization !== undefined) md.set('authorization', ctx.authorization);
    return new Promise<Res>((resolve, reject) => {
      const call = client.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        request,
        md,
        { deadline: Number.isFinite(ctx.deadline) ? ctx.deadline : Infinity },
        (err, res) => {
          ctx.signal.removeEventListener('abort', cancel);
          if (err) {
            // The leader's own verdict passes through unchanged; without one (the call
            // was sent, then the connection failed) the write may have been proposed.
            const { kind, outcome } = readStatus(err);
            reject(new ApiError(kind ?? kindOfCode(err.code), err.details || err.message, outcome ?? 'unknown'));
          } else resolve(res!);
        },
      );
      const cancel = () => call.cancel();
      ctx.signal.addEventListener('abort', cancel, { once: true });
    });
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

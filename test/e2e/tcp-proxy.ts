// A user-space TCP proxy for e2e tests: forwards bytes between clients and one upstream
// address until frozen. Frozen, it stops forwarding in both directions (data is held,
// not dropped, and connections stay open), as a stalled network path or a paused
// middlebox would: the client sees no error, only silence. New connections are accepted
// and held too. thaw() resumes everything; close() ends every socket it made.
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private readonly pairs: [Socket, Socket][] = [];
  private frozen = false;
  private readonly held: [Socket, Buffer][] = [];

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(upstream: string): Promise<TcpProxy> {
    const [host, port] = [upstream.slice(0, upstream.lastIndexOf(':')), Number(upstream.slice(upstream.lastIndexOf(':') + 1))];
    const server = createServer();
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(0, '127.0.0.1', () => res());
    });
    const proxy = new TcpProxy(server, `127.0.0.1:${(server.address() as { port: number }).port}`);
    server.on('connection', (client: Socket) => proxy.accept(client, host, port));
    return proxy;
  }

  private track(s: Socket): Socket {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
    return s;
  }

  private accept(client: Socket, host: string, port: number): void {
    this.track(client);
    const up = this.track(connect(port, host));
    const pair: [Socket, Socket] = [client, up];
    this.pairs.push(pair);
    // By hand rather than pipe(): a pipe resumes its source on the next 'drain', which
    // would undo a freeze. Bytes that arrive while frozen are held, in order.
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (this.frozen) this.held.push([to, chunk]);
        else to.write(chunk);
      });
    forward(client, up);
    forward(up, client);
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
    if (this.frozen) for (const s of pair) s.pause();
  }

  /** Stop forwarding: nothing more is passed on in either direction, and sockets stop reading. */
  freeze(): void {
    this.frozen = true;
    for (const pair of this.pairs) for (const s of pair) s.pause();
  }

  thaw(): void {
    this.frozen = false;
    for (const [to, chunk] of this.held.splice(0)) if (!to.destroyed) to.write(chunk);
    for (const pair of this.pairs) for (const s of pair) s.resume();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

// Server-Sent Events for the dashboard, with a hard cap on subscribers. Anyone who can
// reach the HTTP listener can open streams; ten thousand of them must cost a bounded
// amount: beyond the cap a stream is answered 503 at once, and a subscriber that does not
// read (its socket buffer above a bound) is dropped rather than buffered for — its browser
// reconnects and gets a fresh snapshot, which is all it missed.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface EventStreamOptions {
  /** Streams open at once; default 64. */
  readonly maxSubscribers?: number;
  /** Bytes a subscriber may leave unread before it is dropped; default 256 KiB. */
  readonly maxBufferedBytes?: number;
  /** A comment line this often keeps proxies from closing an idle stream; default 15 s. */
  readonly keepAliveMs?: number;
  /** What the browser waits before reconnecting after the stream broke; default 1000 ms. */
  readonly retryMs?: number;
}

export class EventStreamHub {
  private readonly subscribers = new Set<ServerResponse>();
  private readonly maxSubscribers: number;
  private readonly maxBufferedBytes: number;
  private readonly keepAlive: NodeJS.Timeout;
  private readonly retryMs: number;
  private closed = false;

  constructor(opts: EventStreamOptions = {}) {
    this.maxSubscribers = opts.maxSubscribers ?? 64;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 256 * 1024;
    this.retryMs = opts.retryMs ?? 1000;
    this.keepAlive = setInterval(() => this.writeAll(': keep-alive\n\n'), opts.keepAliveMs ?? 15_000);
    this.keepAlive.unref();
  }

  get size(): number {
    return this.subscribers.size;
  }

  /**
   * Take `req` as a subscriber, or refuse it (503) when the cap is reached. `first` gives
   * the events it gets before any broadcast (the current state); `onClose` runs once when it goes.
   */
  accept(req: IncomingMessage, res: ServerResponse, first: () => readonly [event: string, data: unknown][], onClose?: () => void): boolean {
    if (this.closed || this.subscribers.size >= this.maxSubscribers) {
      const body = `too many event streams open (${this.maxSubscribers}); try again later\n`;
      res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Retry-After': '5', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return false;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    this.subscribers.add(res);
    let gone = false;
    const drop = () => {
      if (gone) return;
      gone = true;
      this.subscribers.delete(res);
      onClose?.();
    };
    res.once('close', drop);
    req.socket.setNoDelay(true);
    this.write(res, `retry: ${this.retryMs}\n\n`);
    for (const [event, data] of first()) this.write(res, frame(event, data));
    return true;
  }

  broadcast(event: string, data: unknown): void {
    if (this.subscribers.size > 0) this.writeAll(frame(event, data));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.keepAlive);
    for (const res of this.subscribers) res.end();
    this.subscribers.clear();
  }

  private writeAll(chunk: string): void {
    for (const res of this.subscribers) this.write(res, chunk);
  }

  private write(res: ServerResponse, chunk: string): void {
    if (res.writableLength > this.maxBufferedBytes) {
      this.subscribers.delete(res);
      res.destroy();
      return;
    }
    res.write(chunk);
  }
}

/** One SSE event; JSON has no raw newlines, so `data` is one line. */
export function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

// The dashboard's event stream on a real HTTP listener: an attacker who opens many streams
// gets 503 beyond the cap, and a slot frees when a stream closes.
import pino from 'pino';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { EventStreamHub } from '../../src/dashboard/event-stream.js';
import { HttpListener } from '../../src/server/http-listener.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(hub: EventStreamHub): Promise<number> {
  const listener = new HttpListener(pino({ level: 'silent' }));
  listener.route('/events', (req, res) => void hub.accept(req, res, () => [['hello', { n: 1 }]]));
  const port = await listener.listen('127.0.0.1:0');
  cleanups.push(() => listener.close());
  cleanups.push(() => hub.close());
  return port;
}

function open(port: number): Promise<{ res: IncomingMessage; req: ClientRequest; body: () => string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      resolve({ res, req, body: () => body });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('event stream', () => {
  it('sends the first events at once, broadcasts to every subscriber, and refuses the stream beyond the cap with 503', async () => {
    const hub = new EventStreamHub({ maxSubscribers: 3 });
    const port = await serve(hub);
    const streams = await Promise.all([open(port), open(port), open(port)]);
    cleanups.push(() => {
      for (const s of streams) s.req.destroy();
    });
    for (const s of streams) expect(s.res.statusCode).toBe(200);
    expect(streams[0]!.res.headers['content-type']).toContain('text/event-stream');
    const extra = await open(port);
    expect(extra.res.statusCode).toBe(503);
    expect(extra.res.headers['retry-after']).toBe('5');
    hub.broadcast('snapshot', { leader: 'n2' });
    await new Promise((r) => setTimeout(r, 100));
    for (const s of streams)
      expect(s.body()).toBe('retry: 1000\n\nevent: hello\ndata: {"n":1}\n\nevent: snapshot\ndata: {"leader":"n2"}\n\n');
    // A closed stream frees its slot.
    streams[0]!.req.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect(hub.size).toBe(2);
    const again = await open(port);
    cleanups.push(() => void again.req.destroy());
    expect(again.res.statusCode).toBe(200);
  });

  it('drops a subscriber that stops reading instead of buffering for it', async () => {
    const hub = new EventStreamHub({ maxSubscribers: 2, maxBufferedBytes: 64 * 1024 });
    const port = await serve(hub);
    const s = await open(port);
    cleanups.push(() => void s.req.destroy());
    s.res.pause(); // reads nothing more
    const big = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 400 && hub.size > 0; i++) {
      hub.broadcast('point', big);
      await new Promise((r) => setImmediate(r));
    }
    expect(hub.size).toBe(0);
  });
});

// The node's small HTTP listener for operators (--listen-metrics): a table of routes,
// GET/HEAD only. Today it serves /metrics, /healthz and /readyz; a dashboard adds its
// page, an event stream and static assets by adding routes, not by changing this file.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** A scraper or a load balancer that opens connections and never finishes them must not pile them up. */
const MAX_CONNECTIONS = 256;

export class HttpListener {
  private readonly routes = new Map<string, RouteHandler>();
  private readonly server: Server;

  constructor(private readonly log: Logger) {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.maxConnections = MAX_CONNECTIONS;
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
  }

  /** Serve `path` (exact match, query string ignored) with `handler`. */
  route(path: string, handler: RouteHandler): this {
    if (!path.startsWith('/')) throw new Error(`route path must start with '/': ${path}`);
    if (this.routes.has(path)) throw new Error(`route ${path} is already taken`);
    this.routes.set(path, handler);
    return this;
  }

  /** Listen on `host:port` (port 0: any free port). Resolves with the port. */
  listen(address: string): Promise<number> {
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = Number(address.slice(i + 1));
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.warn({ err: err.message }, 'metrics listener error'));
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler = this.routes.get(path);
    if (!handler) return text(res, 404, `not found: ${path}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return text(res, 405, `method ${req.method ?? ''} not allowed\n`);
    }
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((err: unknown) => {
        this.log.warn({ path, err: (err as Error).message }, 'metrics listener route failed');
        if (!res.headersSent) text(res, 500, 'internal error\n');
        else res.destroy();
      });
  }
}

/** Send a short plain-text answer. */
export function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Send a JSON answer. */
export function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * A minimal static HTTP server for browser tests and the example: in-memory routes (bundles,
 * pages, JSON) plus directories mounted under URL prefixes (the wasm binaries, checkpoints).
 * Binds 127.0.0.1 on an ephemeral port; `close()` stops it and drops open connections.
 */
import { createServer, type Server } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { AddressInfo } from 'node:net';

/** Content types by file extension. */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** What to serve. */
export interface StaticServerOptions {
  /** Exact URL paths → contents (a string or bytes); the type comes from the path's extension. */
  routes?: Record<string, string | Uint8Array>;
  /** URL prefixes (ending in `/`) → directories on disk, e.g. `{ '/wasm/': '.../dist' }`. */
  mounts?: Record<string, string>;
  /**
   * Send COOP/COEP headers so the page is cross-origin isolated (SharedArrayBuffer: needed by
   * the multi-threaded wasm backend). Default false.
   */
  crossOriginIsolated?: boolean;
  /** Port to bind (default 0: an ephemeral port). */
  port?: number;
}

/** A running server. */
export interface StaticServer {
  /** Base URL, e.g. `http://127.0.0.1:43121/`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Resolves `rest` inside `dir`, or null if it escapes it. */
function inside(dir: string, rest: string): string | null {
  const root = resolve(dir);
  const path = resolve(root, normalize(decodeURIComponent(rest)).replace(/^([/\\])+/, ''));
  return path === root || path.startsWith(root + sep) ? path : null;
}

async function lookup(options: StaticServerOptions, pathname: string): Promise<string | Uint8Array | null> {
  const route = options.routes?.[pathname] ?? (pathname === '/' ? options.routes?.['/index.html'] : undefined);
  if (route !== undefined) return route;
  for (const [prefix, dir] of Object.entries(options.mounts ?? {})) {
    if (!pathname.startsWith(prefix)) continue;
    const path = inside(dir, pathname.slice(prefix.length));
    if (path === null) return null;
    const info = await stat(path).catch(() => null);
    if (info?.isFile()) return readFile(path);
    if (info?.isDirectory()) return readFile(join(path, 'index.html')).catch(() => null);
  }
  return null;
}

/** Starts the server on 127.0.0.1. */
export async function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const server: Server = createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    lookup(options, pathname).then(
      (body) => {
        const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
        if (options.crossOriginIsolated) {
          headers['Cross-Origin-Opener-Policy'] = 'same-origin';
          headers['Cross-Origin-Embedder-Policy'] = 'require-corp';
        }
        if (body === null && pathname === '/favicon.ico') {
          res.writeHead(204, headers).end(); // keep the console free of a 404 nobody cares about
          return;
        }
        if (body === null) {
          res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end(`not found: ${pathname}`);
          return;
        }
        const type = TYPES[extname(pathname === '/' ? '/index.html' : pathname)] ?? 'application/octet-stream';
        res.writeHead(200, { ...headers, 'Content-Type': type }).end(body);
      },
      (error: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(error)),
    );
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, '127.0.0.1', done);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

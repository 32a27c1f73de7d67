#!/usr/bin/env node
// Builds the demo and serves it on localhost: `node scripts/serve-demo.mjs` (PORT, HOST env vars).
// Any static file server works as well; this one only sets the right MIME types (.wasm!).
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDemo } from './build-demo.mjs';

const MIME_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** Serves `dir` read-only over HTTP. Resolves once listening; `port` 0 picks a free port. */
export function serveDirectory(dir, { host = '127.0.0.1', port = 0 } = {}) {
  const base = resolve(dir);
  const server = createServer(async (request, response) => {
    try {
      const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
      let file = normalize(join(base, path));
      if (file !== base && !file.startsWith(base + sep)) {
        response.writeHead(403).end('forbidden\n');
        return;
      }
      if ((await stat(file).catch(() => undefined))?.isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      response.writeHead(200, {
        'content-type': MIME_TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-cache',
      });
      response.end(body);
    } catch {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}/`;
      resolvePromise({ url, close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = await buildDemo();
  const host = process.env.HOST ?? '127.0.0.1';
  const wanted = Number(process.env.PORT ?? 8080);
  let served;
  for (let port = wanted; !served; port++) {
    try {
      served = await serveDirectory(dir, { host, port });
    } catch (error) {
      if (error.code !== 'EADDRINUSE' || port > wanted + 20) throw error;
    }
  }
  console.log(`dqlite-wasm demo: open ${served.url}  (Ctrl+C stops; the page needs a secure context: localhost or https)`);
}

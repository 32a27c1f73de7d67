/**
 * Browser clients of the dqlite protocol over the `/dqlite` WebSocket: a page must present the
 * client token or come from an allowed origin before anything is served; the token grants SQL,
 * not membership changes; the cluster key makes a connection authenticated. The HTTP API
 * (`/db/*`) is judged the same way, so a page cannot write with a form post or a no-cors fetch.
 */
import { execFile } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect, connectCluster, dialOverWebSocket, DqliteError } from '../../runtimes/node/client.ts';
import { dialWebSocket } from '../../runtimes/node/index.ts';
import { TestCluster } from '../helpers/cluster.ts';

const run = promisify(execFile);
const ALLOWED = 'https://app.example.com';

function pageDial(origin: string | undefined, token?: string, headers: Record<string, string> = {}) {
  return dialOverWebSocket(
    (url, options) => dialWebSocket(url, { ...options, headers: { ...headers, ...(origin !== undefined && { origin }) } }),
    (address) => `ws://${address}/dqlite${token === undefined ? '' : `?token=${encodeURIComponent(token)}`}`,
  );
}

/** The whole answer to a hand-written upgrade request, as a browser would send it. */
function rawUpgrade(address: string, origin: string): Promise<string> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(port), host);
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
    socket.write(
      `GET /dqlite HTTP/1.1\r\nHost: ${address}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nOrigin: ${origin}\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
  });
}

async function refusal(dial: ReturnType<typeof pageDial>, address: string): Promise<string> {
  return dial(address).then(
    (stream) => {
      stream.close();
      return 'accepted';
    },
    (error: unknown) => (error as Error).message,
  );
}

describe('/dqlite WebSocket access', () => {
  let cluster: TestCluster;
  let token: string;

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 1, extraArgs: ['--allow-origin', ALLOWED, '--admin-allow', 'none'] });
    const { stdout } = await run(process.execPath, ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts', 'client-token', '--cluster-key', cluster.clusterKey], {
      cwd: new URL('../..', import.meta.url),
    });
    token = stdout.trim();
  }, 60_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('a page from another origin without a token is refused before any request', async () => {
    const address = cluster.addresses[0]!;
    expect(await refusal(pageDial('https://evil.example'), address)).toMatch(/HTTP 403/);
    // Loopback pages are the default, not part of this node's explicit list.
    expect(await refusal(pageDial('http://127.0.0.1:8080'), address)).toMatch(/HTTP 403/);
    expect(await refusal(pageDial('https://evil.example', 'not-the-token'), address)).toMatch(/HTTP 401/);
    const body = await rawUpgrade(address, 'https://evil.example');
    expect(body).toMatch(/^HTTP\/1.1 403 /);
    expect(body).toMatch(/--allow-origin https:\/\/evil.example/);
    expect(body).toMatch(/dqlite-wasm client-token/);
  });

  test('an allowed origin, or the client token from `dqlite-wasm client-token`, is served', async () => {
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const dial of [pageDial(ALLOWED), pageDial('https://evil.example', token), pageDial(undefined)]) {
      const db = await connect({ servers: cluster.addresses, database: 'pages', dial, timeoutMs: 10_000 });
      try {
        await db.exec('CREATE TABLE IF NOT EXISTS seen (x INTEGER)');
        await db.exec('INSERT INTO seen VALUES (1)');
      } finally {
        await db.close();
      }
    }
    const db = await connect({ servers: cluster.addresses, database: 'pages', timeoutMs: 10_000 });
    try {
      expect(Number((await db.query('SELECT count(*) AS n FROM seen')).rows[0]!['n'])).toBe(3);
    } finally {
      await db.close();
    }
  });

  test('the client token grants SQL only; the cluster key in the upgrade may change the cluster', async () => {
    const withToken = await connectCluster({ servers: cluster.addresses, dial: pageDial('https://evil.example', token), timeoutMs: 10_000 });
    try {
      const error = await withToken.weight(cluster.addresses[0]!, 3).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((error as DqliteError).code).toBe(23);
    } finally {
      await withToken.close();
    }
    const withKey = await connectCluster({
      servers: cluster.addresses,
      dial: pageDial(undefined, undefined, { 'x-dqlite-cluster-key': cluster.clusterKey }),
      timeoutMs: 10_000,
    });
    try {
      await withKey.weight(cluster.addresses[0]!, 3);
      expect((await withKey.describe(cluster.addresses[0]!)).weight).toBe(3n);
    } finally {
      await withKey.close();
    }
  });

  test('the HTTP API: a page from another origin is refused before anything runs; allowed pages get CORS headers', async () => {
    const base = `http://${cluster.addresses[0]!}`;
    const execute = (statements: unknown[], headers: Record<string, string>, query = '') =>
      fetch(`${base}/db/execute?db=pages${query}`, { method: 'POST', headers: { 'content-type': 'text/plain', ...headers }, body: JSON.stringify(statements) });
    const created = await execute(['CREATE TABLE IF NOT EXISTS posts (v TEXT)'], {});
    expect(created.status).toBe(200);
    expect(created.headers.get('access-control-allow-origin')).toBeNull();

    // What a hostile page's form post or no-cors fetch would send: refused, and nothing written.
    const hostile = await execute(["INSERT INTO posts VALUES ('hostile')"], { origin: 'https://evil.example' });
    expect(hostile.status).toBe(403);
    const refusalText = ((await hostile.json()) as { error: string }).error;
    expect(refusalText).toMatch(/pages from https:\/\/evil.example may not use this node's HTTP API/);
    expect(refusalText).toMatch(/--allow-origin https:\/\/evil.example/);
    const hostileRead = await fetch(`${base}/db/query?db=pages&q=${encodeURIComponent('SELECT * FROM posts')}`, { headers: { origin: 'https://evil.example' } });
    expect(hostileRead.status).toBe(403);
    expect((await execute(["INSERT INTO posts VALUES ('x')"], { origin: 'https://evil.example' }, '&token=not-the-token')).status).toBe(401);

    // The allowed origin, the token in the URL or as a bearer token: served, with CORS headers.
    const allowed = await execute(["INSERT INTO posts VALUES ('allowed')"], { origin: ALLOWED });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect((await execute(["INSERT INTO posts VALUES ('token')"], { origin: 'https://evil.example' }, `&token=${token}`)).status).toBe(200);
    expect((await execute(["INSERT INTO posts VALUES ('bearer')"], { origin: 'https://other.example', authorization: `Bearer ${token}` })).status).toBe(200);
    const preflight = await fetch(`${base}/db/execute?db=pages`, { method: 'OPTIONS', headers: { origin: 'https://other.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/authorization/);

    const rows = await fetch(`${base}/db/query?db=pages&q=${encodeURIComponent('SELECT v FROM posts ORDER BY rowid')}`);
    expect(((await rows.json()) as { results: { values: string[][] }[] }).results[0]!.values).toEqual([['allowed'], ['token'], ['bearer']]);
    // Status pages stay open to monitoring.
    expect((await fetch(`${base}/health`, { headers: { origin: 'https://evil.example' } })).status).toBe(200);
  });
});

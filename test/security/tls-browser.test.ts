/**
 * A browser node on an https page joins a TLS cluster over wss:// (an https page may not open
 * ws://). The members run with `--tls-client-cert websocket-optional`, since the browser holds
 * no client certificate; Chromium trusts exactly the cluster's certificates by their public keys.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CHROMIUM_PATH, chromiumAvailable } from '../browser/mixed-cluster.ts';
import { freePort, waitFor } from '../helpers/cluster.ts';
import { certCommand, TlsCluster, type NodeSpec, type TlsFiles } from './tls-cluster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

const PAGE = `<!doctype html><meta charset="utf-8"><title>dqlite-wasm TLS page</title>
<script type="module">
import { startWorkerNode } from './page.js';
window.startWorkerNode = startWorkerNode;
window.harnessReady = true;
</script>`;
const MIME: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm', '.map': 'application/json' };

/** base64 SHA-256 of a certificate's SubjectPublicKeyInfo: what --ignore-certificate-errors-spki-list takes. */
function spkiHash(certFile: string): string {
  const der = new X509Certificate(readFileSync(certFile)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

describe.skipIf(!chromiumAvailable())('a browser node on an https page joins a TLS cluster over wss', () => {
  const root = mkdtempSync(join(tmpdir(), 'dqlite-wasm-tls-browser-'));
  const ca = join(root, 'ca');
  const client: TlsFiles = { cert: join(root, 'client.crt'), key: join(root, 'client.key'), ca: join(ca, 'ca.crt') };
  let cluster: TlsCluster;
  let server: Server;
  let browser: Browser;
  let page: Page;
  let origin: string;
  const logs: string[] = [];

  beforeAll(async () => {
    await certCommand('ca', '--out', ca);
    await Promise.all([
      ...[1, 2, 3, 4].map((i) => certCommand('node', '--ca', ca, '--out', join(root, `node${i}`), '--ip', '127.0.0.1')),
      certCommand('client', '--ca', ca, '--out', join(root, 'client')),
    ]);
    const spec = (i: number): NodeSpec => ({
      cert: join(root, `node${i}.crt`),
      key: join(root, `node${i}.key`),
      ca: join(ca, 'ca.crt'),
      args: ['--tls-client-cert', 'websocket-optional'],
    });
    cluster = await TlsCluster.start(root, [spec(1), spec(2), spec(3)], client);

    const bundle = join(root, 'bundle');
    execFileSync(process.execPath, ['scripts/build-browser.mjs', '--outdir', bundle], { cwd: ROOT, stdio: 'pipe' });
    // The page's own server uses node4's certificate (same CA, 127.0.0.1).
    server = createServer({ cert: readFileSync(join(root, 'node4.crt')), key: readFileSync(join(root, 'node4.key')) }, (request, response) => {
      const path = (request.url ?? '/').split('?')[0]!;
      if (path === '/') return void response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
      const file = join(bundle, path.replace(/^\/+/, ''));
      if (!file.startsWith(bundle) || !existsSync(file)) return void response.writeHead(404).end('not found');
      response.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
    });
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    origin = `https://127.0.0.1:${port}`;

    const trusted = [1, 2, 3, 4].map((i) => spkiHash(join(root, `node${i}.crt`))).join(',');
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', `--ignore-certificate-errors-spki-list=${trusted}`],
    });
    page = await (await browser.newContext()).newPage();
    page.on('console', (message) => logs.push(message.text()));
    page.on('pageerror', (error) => logs.push(`page error: ${error.message}`));
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => (window as unknown as { harnessReady?: boolean }).harnessReady === true);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    await cluster?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  test('the browser node becomes a member through wss, writes, and the dqlite shell with a certificate reads it', async () => {
    const options = { name: 'tls-tab', join: cluster.addresses, clusterKey: cluster.clusterKey, secure: true };
    try {
      const started = page.evaluate(async (opts) => {
        const w = window as unknown as { startWorkerNode: (url: string, o: unknown, log: (l: string) => void) => Promise<unknown>; node?: unknown };
        w.node = await w.startWorkerNode('./worker.js', opts, (line) => console.log(line));
      }, options);
      await Promise.race([started, new Promise((_, reject) => setTimeout(() => reject(new Error('the browser node did not start within 45 s')), 45_000))]);
      await cluster.waitForMembers(4);
      await waitFor('the browser node to write', 30_000, () =>
        page
          .evaluate(async () => {
            const w = window as unknown as { node: { api: { exec(db: string, sql: string): Promise<unknown> } } };
            await w.node.api.exec('tlsweb', 'CREATE TABLE IF NOT EXISTS visits (page TEXT)');
            await w.node.api.exec('tlsweb', "INSERT INTO visits VALUES ('https page')");
            return true;
          })
          .catch(() => undefined),
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- page ---\n${logs.join('\n')}\n--- nodes ---\n${cluster.dumpOutput()}`);
    }
    const { stdout } = await run('dqlite', ['-s', cluster.addresses[1]!, '-c', client.cert, '-k', client.key, 'tlsweb', 'SELECT page FROM visits'], { timeout: 30_000 });
    expect(stdout.trim().split('\n')[0]).toBe('https page');
    const status = await cluster.status(0);
    expect(status.members.filter((m) => m.address === '')).toHaveLength(1);
  }, 120_000);
});

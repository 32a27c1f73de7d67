/**
 * The package as a user gets it: `npm pack`, the tarball installed into a fresh project, then
 * from that project a 3-node cluster started with the installed command, and a program that
 * joins it with `startNode`, writes through its handle while a follower and reads its own
 * write, on Node and on Deno. Internals are not importable.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { transform } from 'esbuild';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createServer } from 'node:http';
import { build } from 'esbuild';
import { chromiumAvailable, CHROMIUM_PATH, findDeno } from '../browser/mixed-cluster.ts';
import { connect, connectCluster } from '../../runtimes/node/client.ts';
import { freePort, waitFor } from '../helpers/cluster.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const deno = findDeno();

interface Seen {
  address: string;
  id: number;
  state: string;
  leaderId: number;
  role?: string;
  rows: { body: string }[];
  inTransaction: number;
  fatal: string[];
}

async function status(address: string): Promise<{ leaderId: number; members: { role: string }[] } | undefined> {
  try {
    const response = await fetch(`http://${address}/status`, { signal: AbortSignal.timeout(2000) });
    return response.ok ? ((await response.json()) as { leaderId: number; members: { role: string }[] }) : undefined;
  } catch {
    return undefined;
  }
}

describe('the packed package installed in a fresh project', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'dqlite-wasm-installed-'));
  const project = join(scratch, 'app');
  const children: ChildProcess[] = [];
  const output: string[] = [];
  const addresses: string[] = [];

  beforeAll(async () => {
    // `npm pack` runs `prepare` (the build), so the tarball holds the current sources.
    const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', scratch], { cwd: ROOT, timeout: 240_000 });
    const tarball = join(scratch, stdout.trim().split('\n').at(-1)!);
    await run('mkdir', ['-p', project]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // Kysely too: an example of the embedding guide uses it (an optional peer dependency).
    // The query builders the README's and the guide's examples use, at the versions we test with.
    const { devDependencies } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    const builders = ['kysely', 'drizzle-orm'].map((name) => `${name}@${devDependencies[name]!}`);
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, ...builders], { cwd: project, timeout: 240_000 });
    copyFileSync(join(ROOT, 'test/startup/embedded-follower.mjs'), join(project, 'embedded-follower.mjs'));

    const command = join(project, 'node_modules/.bin/dqlite-wasm');
    for (let i = 0; i < 3; i++) addresses.push(`127.0.0.1:${await freePort()}`);
    const startMember = (i: number, extra: string[]): void => {
      const child = spawn(command, ['start', '--address', addresses[i]!, '--dir', join(scratch, `node${i + 1}`), ...extra], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
      children.push(child);
    };
    startMember(0, []);
    await waitFor('the first member to lead', 30_000, async () => ((await status(addresses[0]!))?.leaderId ? true : undefined)).catch((e: Error) => {
      throw new Error(`${e.message}\n${output.join('')}`);
    });
    const keyFile = join(scratch, 'node1', 'cluster-key');
    startMember(1, ['--join', addresses[0]!, '--cluster-key-file', keyFile]);
    startMember(2, ['--join', addresses[0]!, '--cluster-key-file', keyFile]);
    await waitFor('3 voters', 60_000, async () => {
      const members = (await status(addresses[0]!))?.members ?? [];
      return members.filter((m) => m.role === 'voter').length === 3 ? true : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n${output.join('')}`);
    });
  }, 420_000);

  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
    }
    rmSync(scratch, { recursive: true, force: true });
  });

  const key = (): string => readFileSync(join(scratch, 'node1', 'cluster-key'), 'utf8').trim();

  const expectFollowerWrote = (seen: Seen): void => {
    expect(seen.state).not.toBe('leader');
    // Which role a late joiner gets depends on the members the earlier tests left (offline ones
    // count); a spare hears no heartbeats, so only a voter or standby must know the leader.
    if (seen.role !== 'spare') expect(seen.leaderId, `a ${seen.role ?? 'member without a role'} knows the leader`).not.toBe(0);
    expect(seen.leaderId).not.toBe(seen.id);
    expect(seen.rows).toEqual([{ body: `from ${seen.address}` }]);
    expect(seen.inTransaction).toBeGreaterThanOrEqual(2);
    expect(seen.fatal).toEqual([]);
  };

  test.skipIf(!chromiumAvailable())('browser: a page bundled with esbuild starts a node in a worker, joins, reads and writes, survives a reload', async () => {
    // Make room for a voter (a listening member becomes a standby), and write a row from Node.
    const admin = await connectCluster({ servers: addresses });
    const leader = await admin.leader();
    const demoted = (await admin.members()).find((m) => m.role === 'voter' && m.address !== leader?.address)!;
    await admin.assign(demoted.id, 'stand-by');
    await admin.close();
    const fromNode = await connect({ servers: addresses, database: 'embedded' });
    await fromNode.exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)');
    await fromNode.exec("INSERT INTO notes (body) VALUES ('written from Node')");
    await fromNode.close();

    const site = join(scratch, 'site');
    mkdirSync(site, { recursive: true });
    writeFileSync(join(project, 'page.js'), "import { startNode } from 'dqlite-wasm';\nwindow.startNode = startNode;\nwindow.ready = true;\n");
    await build({ absWorkingDir: project, entryPoints: ['page.js'], bundle: true, format: 'esm', platform: 'browser', outfile: join(site, 'page.js'), logLevel: 'error' });
    // The one step esbuild needs: the worker and the engine next to the page (Vite follows the URL itself).
    for (const file of ['worker.js', 'sqlite3.wasm']) copyFileSync(join(project, 'node_modules/dqlite-wasm/dist/browser', file), join(site, file));
    writeFileSync(join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="./page.js"></script>');
    const types: Record<string, string> = { html: 'text/html', js: 'text/javascript', wasm: 'application/wasm' };
    const server = createServer((request, response) => {
      const name = (request.url ?? '/').split('?')[0] === '/' ? 'index.html' : (request.url ?? '').slice(1).split('?')[0]!;
      try {
        const body = readFileSync(join(site, name));
        response.writeHead(200, { 'content-type': types[name.split('.').at(-1)!] ?? 'application/octet-stream' }).end(body);
      } catch {
        response.writeHead(404).end();
      }
    });
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage();
      const logs: string[] = [];
      page.on('console', (message) => logs.push(message.text()));
      page.on('pageerror', (error) => logs.push(`page error: ${error.message}`));
      const visit = async (body: string): Promise<{ fresh: boolean; storage: string; role: string | undefined; bodies: string[] }> => {
        await page.goto(`http://127.0.0.1:${port}/`);
        await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
        return page.evaluate(
          async ({ join, clusterKey, body }) => {
            type Db = { exec(sql: string, p?: unknown[]): Promise<unknown>; query(sql: string): Promise<{ rows: { body: string }[] }> };
            const w = window as unknown as { startNode(o: unknown): Promise<{ info: { fresh: boolean; storage: string }; database(n: string): Promise<Db>; status(): Promise<{ members: { id: number; role: string }[] }>; close(): Promise<void>; closed: Promise<void>; id: number }> };
            const node = await w.startNode({ name: 'edge', join, clusterKey, workerUrl: '/worker.js', log: (line: string) => console.log(line) });
            const db = await node.database('embedded');
            await db.exec('INSERT INTO notes (body) VALUES (?)', [body]);
            const { rows } = await db.query('SELECT body FROM notes ORDER BY id');
            const role = (await node.status()).members.find((m) => m.id === node.id)?.role;
            await node.close();
            await node.closed;
            return { fresh: node.info.fresh, storage: node.info.storage, role, bodies: rows.map((r) => r.body) };
          },
          { join: addresses, clusterKey: key(), body },
        );
      };
      const first = await visit('from the browser').catch((e: Error) => {
        throw new Error(`${e.message}\n${logs.join('\n')}`);
      });
      expect(first.fresh).toBe(true);
      expect(first.storage).toBe('opfs');
      expect(first.bodies).toContain('from the browser');
      expect(first.role).toBe('voter');
      expect(first.bodies).toContain('written from Node');
      const second = await visit('after a reload').catch((e: Error) => {
        throw new Error(`${e.message}\n${logs.join('\n')}`);
      });
      expect(second.fresh).toBe(false);
      expect(second.role).toBe('voter');
      expect(second.bodies).toEqual(expect.arrayContaining(['from the browser', 'after a reload']));
    } finally {
      await browser.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 180_000);

  test('Node: startNode joins as a follower, writes through its handle, reads its own write', async () => {
    const { stdout } = await run(process.execPath, ['embedded-follower.mjs', join(scratch, 'embedded-node'), addresses.join(','), key()], { cwd: project, timeout: 90_000 });
    expectFollowerWrote(JSON.parse(stdout.trim().split('\n').at(-1)!) as Seen);
  }, 100_000);

  test.skipIf(!deno)('Deno: the same program against the installed package', async () => {
    const { stdout } = await run(deno!, ['run', '-A', '--no-lock', 'embedded-follower.mjs', join(scratch, 'embedded-deno'), addresses.join(','), key()], {
      cwd: project,
      timeout: 120_000,
    });
    expectFollowerWrote(JSON.parse(stdout.trim().split('\n').at(-1)!) as Seen);
  }, 130_000);

  test.skipIf(!deno)('Deno: the installed command has the same strict flags', async () => {
    const dir = join(scratch, 'misspelled');
    const outcome = await run(deno!, ['run', '-A', '--no-lock', 'node_modules/dqlite-wasm/bin/dqlite-wasm', 'start', '--address', '127.0.0.1:1', '--dir', dir, '--jion', addresses[0]!], {
      cwd: project,
      timeout: 60_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(outcome.code, outcome.stderr).toBe(2);
    expect(outcome.stderr).toMatch(/unknown flag --jion: did you mean --join\?/);
    const help = await run(deno!, ['run', '-A', '--no-lock', 'node_modules/dqlite-wasm/bin/dqlite-wasm', 'start', '--help'], { cwd: project, timeout: 60_000 });
    expect(help.stdout).toContain('--cluster-key-file');
  }, 70_000);

  // The examples a user copies: every ```ts block of the README and of docs/embedding.md, with
  // the `npm start` cluster's addresses and key file pointing at this test's cluster.
  const examples = ['README.md', 'docs/embedding.md'].flatMap((file) =>
    [...readFileSync(join(ROOT, file), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((match, i) => ({ name: `${file} example ${i + 1}`, source: match[1]! })),
  );

  test.each(examples)('$name runs as written', async ({ source }) => {
    let code = (await transform(source, { loader: 'ts', format: 'esm' })).code;
    ['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003'].forEach((address, i) => (code = code.replaceAll(address, addresses[i]!)));
    mkdirSync(join(project, '.data/cluster'), { recursive: true });
    writeFileSync(join(project, '.data/cluster/cluster-key'), key() + '\n', { mode: 0o600 });
    const file = join(project, `example-${Math.random().toString(36).slice(2)}.mjs`);
    writeFileSync(file, code);
    const { stderr } = await run(process.execPath, [file], { cwd: project, timeout: 60_000 });
    expect(stderr).not.toMatch(/Error/);
  }, 70_000);

  test('only the public entries resolve; internals are not exported', async () => {
    const probe = `for (const s of ['dqlite-wasm', 'dqlite-wasm/client', 'dqlite-wasm/raft', 'dqlite-wasm/engine', 'dqlite-wasm/protocol', 'dqlite-wasm/node']) {
      try { const m = await import(s); console.log(s, typeof m.connect === 'function' ? 'connect' : 'no-connect', typeof m.startNode); }
      catch (e) { console.log(s, e.code); } }`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: project });
    expect(stdout.trim().split('\n')).toEqual([
      'dqlite-wasm connect function',
      'dqlite-wasm/client connect undefined',
      'dqlite-wasm/raft ERR_PACKAGE_PATH_NOT_EXPORTED',
      'dqlite-wasm/engine ERR_PACKAGE_PATH_NOT_EXPORTED',
      'dqlite-wasm/protocol ERR_PACKAGE_PATH_NOT_EXPORTED',
      'dqlite-wasm/node ERR_PACKAGE_PATH_NOT_EXPORTED',
    ]);
  });
});

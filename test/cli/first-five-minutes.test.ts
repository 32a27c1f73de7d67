/**
 * A new user's first five minutes: `npm start` (the `cluster` command) prints commands, and
 * every one of them works when pasted into bash exactly as printed. Also: a normal start says
 * nothing that reads like a failure, and the README shows the same commands as the banner.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startHints } from '../../bin/banner.ts';
import { waitFor, type NodeStatusView } from '../helpers/cluster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Three consecutive free ports, as the `cluster` command takes a base port. */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await portFree(base)) && (await portFree(base + 1)) && (await portFree(base + 2))) return base;
  }
  throw new Error('no three consecutive free ports found');
}

function runInBash(command: string, input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('the first five minutes with `npm start`', () => {
  let cluster: ChildProcess;
  let dir: string;
  let output = '';
  let printed: Map<string, string>;
  let addresses: string[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-start-'));
    const base = await freeBasePort();
    addresses = [0, 1, 2].map((i) => `127.0.0.1:${base + i}`);
    cluster = spawn(process.execPath, ['bin/dqlite-wasm', 'cluster', '--base-port', String(base), '--dir', dir], { cwd: ROOT });
    cluster.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    cluster.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor('the banner', 30_000, async () => (output.includes('Press Ctrl-C') ? true : undefined));
    printed = new Map();
    for (const line of output.split('\n')) {
      const match = /^ {2}([a-z ]+):\s+(.+)$/.exec(line);
      if (match) printed.set(match[1]!, match[2]!);
    }
    await waitFor('three voters', 60_000, async () => {
      const response = await fetch(`http://${addresses[0]}/status`).catch(() => undefined);
      if (!response?.ok) return undefined;
      const status = (await response.json()) as NodeStatusView;
      return status.members.filter((m) => m.role === 'voter').length === 3 ? true : undefined;
    });
  }, 120_000);

  afterAll(async () => {
    if (cluster && cluster.exitCode === null) {
      const exited = new Promise((r) => cluster.once('exit', r));
      cluster.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('the banner prints every hint, with the addresses the cluster really has', () => {
    expect(printed.get('nodes')).toBe(addresses.join('  '));
    for (const hint of startHints(addresses)) expect(printed.get(hint.label)).toBe(hint.command);
  });

  test('the dqlite shell line works when pasted', async () => {
    const result = await runInBash(printed.get('dqlite shell')!, 'CREATE TABLE IF NOT EXISTS t (x INT);\nINSERT INTO t VALUES (42);\nSELECT x FROM t;\n.cluster\n');
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('42');
    for (const address of addresses) expect(result.stdout).toContain(address);
  });

  test('the client line works when pasted', async () => {
    const result = await runInBash(printed.get('our client')!);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/one: 1/);
  });

  test.each(['health', 'status', 'metrics'])('the %s line works when pasted', async (label) => {
    const result = await runInBash(printed.get(label)! + ' --fail --silent --show-error');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.length).toBeGreaterThan(0);
  });

  test('a normal start prints nothing that reads like a failure', () => {
    expect(output).not.toMatch(/fail|error/i);
  });

  test('the README shows the same commands as the banner', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const hint of startHints(['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003'])) {
      expect(readme).toContain(hint.command);
    }
  });
});

/**
 * The `dqlite-wasm` command (bin/dqlite-wasm run as a program) passes DQLITE_WASM_NODE_FLAGS to
 * the Node.js it becomes, split at spaces, and no flag at all by default
 * (docs/memory.md, "The allocator"): real node processes, their command line and environment as
 * the kernel holds them (/proc/PID/cmdline, /proc/PID/environ).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { freePort, waitFor } from '../helpers/cluster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COMMAND = join(ROOT, 'bin/dqlite-wasm');
const scratch = mkdtempSync(join(tmpdir(), 'dqlite-wasm-launcher-'));
const started: ChildProcess[] = [];

afterAll(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

/** `dqlite-wasm start` run as a command; its pid once it answers, and its arguments before the launcher's path. */
async function startNode(name: string, extra: Record<string, string>): Promise<{ pid: number; nodeFlags: string[]; environ: string[] }> {
  const env = { ...process.env, ...extra };
  if (!('DQLITE_WASM_NODE_FLAGS' in extra)) delete env['DQLITE_WASM_NODE_FLAGS'];
  const address = `127.0.0.1:${await freePort()}`;
  const child = spawn(COMMAND, ['start', '--address', address, '--dir', join(scratch, name)], { cwd: ROOT, env, stdio: 'ignore' });
  started.push(child);
  await waitFor(`the node on ${address}`, 60_000, async () => {
    const response = await fetch(`http://${address}/status`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    return response?.ok ? true : undefined;
  });
  const pid = child.pid!;
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  const launcher = argv.indexOf(COMMAND);
  expect(launcher).toBeGreaterThan(0);
  expect(argv.slice(launcher + 1, launcher + 2)).toEqual(['start']);
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
  return { pid, nodeFlags: argv.slice(1, launcher), environ };
}

describe.runIf(process.platform === 'linux')('the dqlite-wasm command and Node.js flags', () => {
  test('no flag by default; the allocator settings of docs/memory.md', async () => {
    const { nodeFlags, environ } = await startNode('default', {});
    expect(nodeFlags).toEqual([]);
    expect(environ).toContain('MALLOC_MMAP_THRESHOLD_=32768');
    expect(environ).toContain('MALLOC_ARENA_MAX=2');
  }, 90_000);

  test('DQLITE_WASM_NODE_FLAGS reaches the node, split at spaces', async () => {
    const { nodeFlags } = await startNode('flags', { DQLITE_WASM_NODE_FLAGS: '--max-semi-space-size=2  --single-threaded-gc' });
    expect(nodeFlags).toEqual(['--max-semi-space-size=2', '--single-threaded-gc']);
  }, 90_000);

  test('`dqlite-wasm cluster` gives the nodes it spawns the same flags', async () => {
    const port = await freePort();
    const cluster = spawn(process.execPath, [COMMAND, 'cluster', '--nodes', '1', '--base-port', String(port), '--dir', join(scratch, 'cluster')], {
      cwd: ROOT,
      env: { ...process.env, DQLITE_WASM_NODE_FLAGS: '--max-semi-space-size=2 --single-threaded-gc' },
      stdio: 'ignore',
    });
    started.push(cluster);
    const [nodePid] = await waitFor('the node process', 30_000, async () => {
      const pids = readFileSync(`/proc/${cluster.pid}/task/${cluster.pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
      return pids.length > 0 ? pids : undefined;
    });
    const argv = readFileSync(`/proc/${nodePid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    expect(argv.slice(1, 4)).toEqual(['--max-semi-space-size=2', '--single-threaded-gc', COMMAND]);
    const exited = new Promise((resolve) => cluster.once('exit', resolve));
    cluster.kill('SIGTERM');
    await exited;
  }, 90_000);
});

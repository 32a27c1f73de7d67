/**
 * The `dqlite-wasm` command tunes glibc's allocator for the node it runs (docs/memory.md, "The
 * allocator"): real node processes started by the command, their environment read from
 * /proc/PID/environ. The command stays one process (the launcher becomes Node.js), so the pid the
 * caller holds is the node's and SIGTERM stops it cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { ALLOCATOR_ENV_DEFAULTS } from '../../bin/allocator.ts';
import { freePort, waitFor, type NodeStatusView } from '../helpers/cluster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COMMAND = join(ROOT, 'bin/dqlite-wasm');
const ALLOCATOR_NAMES = Object.keys(ALLOCATOR_ENV_DEFAULTS);
const scratch = mkdtempSync(join(tmpdir(), 'dqlite-wasm-allocator-'));
const started: ChildProcess[] = [];

/** This process's environment without the variables under test, plus `extra`. */
function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of [...ALLOCATOR_NAMES, 'DQLITE_WASM_TUNE_MALLOC']) delete env[name];
  return { ...env, ...extra };
}

/** The allocator variables in the environment of process `pid`, as the kernel holds it. */
function allocatorEnvironOf(pid: number): Record<string, string> {
  const found: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const equals = entry.indexOf('=');
    const name = entry.slice(0, equals);
    if (ALLOCATOR_NAMES.includes(name)) found[name] = entry.slice(equals + 1);
  }
  return found;
}

async function nodeUp(address: string): Promise<NodeStatusView> {
  return waitFor(`the node on ${address}`, 60_000, async () => {
    const response = await fetch(`http://${address}/status`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    return response?.ok ? ((await response.json()) as NodeStatusView) : undefined;
  });
}

/** `dqlite-wasm start` run as a command (the file itself executed, as a package's bin is). */
async function startNode(name: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; output: () => string }> {
  const address = `127.0.0.1:${await freePort()}`;
  const child = spawn(COMMAND, ['start', '--address', address, '--dir', join(scratch, name)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  await nodeUp(address);
  return { child, output: () => output };
}

async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig })));
  child.kill(signal);
  return exited;
}

afterAll(async () => {
  await Promise.all(started.map((child) => stop(child, 'SIGKILL')));
  rmSync(scratch, { recursive: true, force: true });
});

describe.runIf(process.platform === 'linux')('the dqlite-wasm command and glibc allocator settings', () => {
  test('a node started by the command has them, is itself the Node.js process, and stops cleanly on SIGTERM', async () => {
    const { child, output } = await startNode('defaults', environment());
    const pid = child.pid!;
    expect(allocatorEnvironOf(pid)).toEqual({ MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '32768' });
    // The launcher replaced itself with Node.js: no shell left as a parent, no second process.
    expect(readlinkSync(`/proc/${pid}/exe`)).toBe(readlinkSync(`/proc/${process.pid}/exe`));
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    expect(children).toBe('');
    expect(await stop(child, 'SIGTERM')).toEqual({ code: 0, signal: null });
    expect(output()).toMatch(/SIGTERM: handing over leadership and stopping/);
  }, 90_000);

  test('a value the user set is kept, the other one still defaults', async () => {
    const { child } = await startNode('explicit', environment({ MALLOC_ARENA_MAX: '4' }));
    expect(allocatorEnvironOf(child.pid!)).toEqual({ MALLOC_ARENA_MAX: '4', MALLOC_MMAP_THRESHOLD_: '32768' });
    expect(await stop(child, 'SIGINT')).toEqual({ code: 0, signal: null });
  }, 90_000);

  test('DQLITE_WASM_TUNE_MALLOC=0 leaves glibc as it is', async () => {
    const { child } = await startNode('opt-out', environment({ DQLITE_WASM_TUNE_MALLOC: '0' }));
    expect(allocatorEnvironOf(child.pid!)).toEqual({});
    await stop(child, 'SIGTERM');
  }, 90_000);

  test('`dqlite-wasm cluster` run with plain node gives its nodes the settings, and keeps a set value', async () => {
    const port = await freePort();
    const cluster = spawn(process.execPath, [COMMAND, 'cluster', '--nodes', '1', '--base-port', String(port), '--dir', join(scratch, 'cluster')], {
      cwd: ROOT,
      env: environment({ MALLOC_MMAP_THRESHOLD_: '262144' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(cluster);
    let output = '';
    cluster.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    await nodeUp(`127.0.0.1:${port}`);
    // The banner: every node it runs was started.
    await waitFor('the banner', 30_000, async () => (output.includes('Press Ctrl-C') ? true : undefined));
    const [nodePid] = readFileSync(`/proc/${cluster.pid}/task/${cluster.pid}/children`, 'utf8').trim().split(' ').map(Number);
    expect(nodePid).toBeGreaterThan(0);
    expect(allocatorEnvironOf(nodePid!)).toEqual({ MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '262144' });
    expect(await stop(cluster, 'SIGTERM')).toEqual({ code: 0, signal: null });
  }, 90_000);

  test('SIGTERM during `dqlite-wasm cluster`\'s head start stops the node it already started', async () => {
    const port = await freePort();
    const cluster = spawn(process.execPath, [COMMAND, 'cluster', '--nodes', '3', '--base-port', String(port), '--dir', join(scratch, 'head-start')], {
      cwd: ROOT,
      env: environment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(cluster);
    const childrenOf = (pid: number): number[] =>
      readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
    // The first node is spawned; the others wait out a head start of 1.5 s.
    const [first] = await waitFor('the first node process', 30_000, async () => {
      const pids = childrenOf(cluster.pid!);
      return pids.length > 0 ? pids : undefined;
    });
    const exited = await stop(cluster, 'SIGTERM');
    const alive = (pid: number): boolean => {
      try {
        return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2]!.startsWith('Z');
      } catch {
        return false;
      }
    };
    try {
      expect(exited).toEqual({ code: 0, signal: null });
      await waitFor('the first node to stop', 20_000, async () => (alive(first!) ? undefined : true));
    } finally {
      if (alive(first!)) process.kill(first!, 'SIGKILL');
    }
  }, 90_000);
});

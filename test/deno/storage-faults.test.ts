/**
 * The Deno storage and lock under faults, as real Deno processes: a failed fsync (of a FIFO)
 * makes the storage refuse every later change, and a lock left by a holder killed with -9 but
 * not yet reaped (a zombie) does not block the next start.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { waitFor } from '../helpers/cluster.ts';
import { findDeno } from '../browser/mixed-cluster.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const deno = findDeno();

function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 1).trimStart()[0];
  } catch {
    return undefined;
  }
}

describe.skipIf(!deno || process.platform !== 'linux')('Deno storage faults', () => {
  const root = mkdtempSync(join(tmpdir(), 'dqlite-wasm-deno-faults-'));
  let parent: ChildProcess | undefined;
  afterAll(() => {
    parent?.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  test('a failed fsync stops every later change; a zombie lock holder does not block', async () => {
    const storageDir = join(root, 'storage');
    const lockedDir = join(root, 'locked');
    execFileSync('mkdir', ['-p', storageDir, lockedDir]);
    execFileSync('mkfifo', [join(storageDir, 'pipe')]);
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(join(storageDir, `.tmp-${gone}-0-snapshot`), new Uint8Array(1000));
    writeFileSync(join(storageDir, '.tmp-1-0-snapshot'), 'init still runs');

    // The Node lock holder (same LOCK file) under a parent that never reaps it.
    const holder = `'${process.execPath}' --import ./scripts/ts-loader.mjs test/runtime-node/fixtures/hold-lock.ts '${lockedDir}'`;
    parent = spawn('sh', ['-c', `${holder} & exec sleep 60`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      parent!.stdout!.on('data', (chunk: Buffer) => (chunk.toString().includes('locked') ? resolve() : reject(new Error(chunk.toString()))));
    });
    const holderPid = Number(readFileSync(join(lockedDir, 'LOCK'), 'utf8').trim());
    process.kill(holderPid, 'SIGKILL');
    await waitFor('the holder to be a zombie', 10_000, async () => (processState(holderPid) === 'Z' ? true : undefined));

    const { stdout } = await run(deno!, ['run', '-A', '--no-lock', 'test/deno/storage-faults-check.js', storageDir, lockedDir], { cwd: ROOT, timeout: 60_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(processState(holderPid)).toBe('Z');
    // Opening the storage removed the temporary file of the writer that is gone.
    expect(readdirSync(storageDir).filter((name) => name.startsWith('.tmp-'))).toEqual(['.tmp-1-0-snapshot']);
    expect(result).toEqual({
      freeBytesIsNumber: true,
      failedSync: 'IO',
      afterwards: { sync: 'FAILED', append: 'FAILED', writeAtomic: 'FAILED', truncate: 'FAILED', remove: 'FAILED' },
      read: 'kept',
      zombieLock: 'ok',
    });
  }, 90_000);
});

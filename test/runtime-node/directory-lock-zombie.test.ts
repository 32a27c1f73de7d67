/**
 * A lock holder killed with -9 but not yet reaped by its parent is a zombie: `kill(pid, 0)`
 * still succeeds for it, yet it can never write again, so it must not block a restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryLockError, lockDirectory } from '../../runtimes/node/index.ts';
import { processStateIsDead } from '../../runtimes/node/directory-lock.ts';
import { waitFor } from '../helpers/cluster.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

let directory: string;
let parent: ChildProcess | undefined;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'dqlite-wasm-zombie-lock-'));
});
afterEach(async () => {
  // The parent that never reaps: killing it lets init reap the zombie.
  if (parent && parent.exitCode === null && parent.signalCode === null) {
    const gone = new Promise((resolve) => parent!.once('exit', resolve));
    parent.kill('SIGKILL');
    await gone;
  }
  parent = undefined;
  await rm(directory, { recursive: true, force: true });
});

function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 1).trimStart()[0];
  } catch {
    return undefined;
  }
}

/**
 * Starts the lock holder under a shell that then becomes `sleep` (exec): the holder's parent is
 * a process that never waits for its children, so a killed holder stays a zombie.
 */
async function startHolderUnderNonReapingParent(): Promise<number> {
  const holder = `'${process.execPath}' --import ./scripts/ts-loader.mjs test/runtime-node/fixtures/hold-lock.ts '${directory}'`;
  parent = spawn('sh', ['-c', `${holder} & exec sleep 60`], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  const stdout = parent.stdout!;
  await new Promise<void>((resolve, reject) => {
    let output = '';
    stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('locked\n')) resolve();
      if (output.includes('refused')) reject(new Error(output));
    });
    parent!.once('exit', () => reject(new Error(`the holder's parent exited early: ${output}`)));
  });
  return Number((await readFile(join(directory, 'LOCK'), 'utf8')).trim());
}

describe('lockDirectory and a zombie holder', () => {
  it('refuses while the holder lives, and takes over once it is killed, before it is reaped', async () => {
    const holderPid = await startHolderUnderNonReapingParent();
    expect(holderPid).toBeGreaterThan(0);
    const refused = await lockDirectory(directory).catch((caught: unknown) => caught);
    expect(refused).toBeInstanceOf(DirectoryLockError);
    expect(refused).toMatchObject({ code: 'DIRECTORY_LOCKED', holderPid });

    process.kill(holderPid, 'SIGKILL');
    await waitFor('the killed holder to be a zombie', 10_000, async () => (processState(holderPid) === 'Z' ? true : undefined));
    // Still a zombie: the parent never reaps it. kill(pid, 0) succeeds for it.
    expect(() => process.kill(holderPid, 0)).not.toThrow();

    const lock = await lockDirectory(directory);
    try {
      expect((await readFile(join(directory, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
      expect(processState(holderPid)).toBe('Z');
    } finally {
      await lock.release();
    }
  });

  it('reads the state after the command name, whatever the name holds', () => {
    expect(processStateIsDead('123 (node) Z 1 2 3')).toBe(true);
    expect(processStateIsDead('123 (a ) Z (b) S 1 2 3')).toBe(false);
    expect(processStateIsDead('123 (a ) S (b) Z 1 2 3')).toBe(true);
    expect(processStateIsDead('123 (node) S 1 2 3')).toBe(false);
    expect(processStateIsDead('123 (node) X 1')).toBe(true);
  });
});

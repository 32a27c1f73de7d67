/**
 * `startNodeProcess` is library code: a node that stops itself to protect its data rejects
 * `closed` with the original error and gives its port and directory back; it never exits the
 * process (this test runs in the test runner's own process).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CommandKind } from '../../src/fsm/commands.ts';
import { ApplyError } from '../../src/fsm/errors.ts';
import { EntryType } from '../../src/raft/index.ts';
import { IDENTITY_FILE } from '../../src/server/host.ts';
import { RaftLog } from '../../src/server/raft-log.ts';
import { openDirectoryStorage } from '../../runtimes/node/index.ts';
import { startNodeProcess, type RunningNode } from '../../runtimes/node/node-process.ts';
import { freePort } from '../helpers/cluster.ts';
import { startTestNode, TEST_ADDRESS, until } from './harness.ts';

async function failureOf(running: RunningNode): Promise<Error> {
  const error = await running.closed.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!error) throw new Error('closed resolved without an error');
  return error;
}

describe('startNodeProcess when its node stops itself', () => {
  test('closed rejects with the ApplyError, onFatal gets it, the port and the directory are free again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-process-'));
    const address = `127.0.0.1:${await freePort()}`;
    const fatal: Error[] = [];
    try {
      const running = await startNodeProcess({ address, dir, join: [], clusterKey: 'k', tickMs: 20, log: () => {}, onFatal: (e) => fatal.push(e) });
      await until('leadership', 10_000, () => running.node.isLeader());
      const { index } = running.node.propose(new Uint8Array([CommandKind.Checkpoint, 1, 0, 0]));
      const error = await failureOf(running);
      expect(error).toBeInstanceOf(ApplyError);
      expect((error as ApplyError).index).toBe(index);
      expect(error.message).toContain('CHECKPOINT without a database name');
      expect(fatal).toEqual([error]);

      // Same address, same directory: nothing is held any more. The entry stops it again.
      const again = await startNodeProcess({ address, dir, join: [], clusterKey: 'k', tickMs: 20, log: () => {} });
      const second = await failureOf(again);
      expect((second as ApplyError).index).toBe(index);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the command line', () => {
  test('exits with status 70 and the reason when its node stops itself', async () => {
    // A data directory whose log holds a committed-to-be entry this version cannot decode.
    const first = await startTestNode();
    await until('leadership', 10_000, () => first.node.isLeader());
    const dir = first.dir;
    await first.close({ keepDir: true });
    const storage = await openDirectoryStorage(dir);
    const log = new RaftLog(storage);
    const loaded = await log.load();
    const last = loaded.entries[loaded.entries.length - 1]!;
    await log.append([{ index: last.index + 1, term: last.term, type: EntryType.Normal, data: new Uint8Array([CommandKind.Frames, 99, 0, 0]) }]);
    await storage.close();
    writeFileSync(join(dir, IDENTITY_FILE), JSON.stringify({ id: 7, address: TEST_ADDRESS }) + '\n');
    try {
      const port = await freePort();
      const child = spawn(process.execPath, ['bin/dqlite-wasm', 'start', '--address', `127.0.0.1:${port}`, '--advertise', TEST_ADDRESS, '--dir', dir, '--cluster-key', 'k', '--tick-ms', '20'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdout.resume();
      const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      expect(status).toBe(70);
      expect(stderr).toContain(`the node stopped: failed to apply entry ${last.index + 1} of term `);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

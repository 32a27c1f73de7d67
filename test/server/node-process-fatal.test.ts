/**
 * `startNodeProcess` is library code: a node that stops itself to protect its data rejects
 * `closed` with the original error and gives its port and directory back; it never exits the
 * process (this test runs in the test runner's own process).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CommandKind } from '../../src/fsm/commands.ts';
import { ApplyError } from '../../src/fsm/errors.ts';
import { startNodeProcess, type RunningNode } from '../../runtimes/node/node-process.ts';
import { freePort } from '../helpers/cluster.ts';
import { until } from './harness.ts';

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

/**
 * `startNode` never exits the process: a node that stops itself to protect its data rejects
 * `closed` with the original error and dispatches a `fatal` event (this test runs in the test
 * runner's own process). A node on "any free port" restarts on the port its identity names.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CommandKind } from '../../src/fsm/commands.ts';
import { ApplyError } from '../../src/fsm/errors.ts';
import { EntryType } from '../../src/raft/index.ts';
import { RaftLog } from '../../src/server/raft-log.ts';
import { openDirectoryStorage } from '../../runtimes/node/storage.ts';
import { NodeFatalEvent, startNode } from '../../runtimes/node/library.ts';
import { waitFor } from '../helpers/cluster.ts';

describe('startNode when its node stops itself', () => {
  test('closed rejects with the ApplyError and a fatal event carries it; the process goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-embedded-fatal-'));
    try {
      const first = await startNode({ dir, tickMs: 20 });
      await waitFor('leadership', 10_000, async () => (first.status().state === 'leader' ? true : undefined));
      const db = await first.database('app');
      await db.exec('CREATE TABLE t (v)');
      const address = first.address;
      await first.close();

      // An entry this version cannot apply, committed on the next start.
      const storage = await openDirectoryStorage(dir);
      const log = new RaftLog(storage);
      const loaded = await log.load();
      const last = loaded.entries[loaded.entries.length - 1]!;
      await log.append([{ index: last.index + 1, term: last.term, type: EntryType.Normal, data: new Uint8Array([CommandKind.Frames, 99, 0, 0]) }]);
      await storage.close();

      const fatalFromOption: Error[] = [];
      const again = await startNode({ dir, tickMs: 20, onFatal: (error) => fatalFromOption.push(error) });
      expect(again.address).toBe(address);
      const events: Error[] = [];
      again.addEventListener('fatal', (event) => events.push((event as NodeFatalEvent).error));
      const error = await again.closed.then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error).toBeInstanceOf(ApplyError);
      expect((error as ApplyError).index).toBe(last.index + 1);
      expect(fatalFromOption).toEqual([error]);
      expect(events).toEqual([error]);
      await expect(again.database('app')).rejects.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

/**
 * A committed entry the state machine cannot apply stops the node with the original error,
 * naming the entry's index; it is never skipped. Real engine, real storage, real Raft.
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { CommandCodecError, CommandKind } from '../../src/fsm/commands.ts';
import { ApplyError } from '../../src/fsm/errors.ts';
import { EntryType } from '../../src/raft/index.ts';
import { RaftLog } from '../../src/server/raft-log.ts';
import { openDirectoryStorage } from '../../runtimes/node/index.ts';
import { startTestNode, until, type TestNode } from './harness.ts';

/** A FRAMES command of a version this node does not know (as a newer node would write it). */
const FROM_ANOTHER_VERSION = new Uint8Array([CommandKind.Frames, 99, 0, 0, 1, 2, 3]);

let open: TestNode | undefined;
afterEach(async () => {
  await open?.close();
  open = undefined;
});

async function fatalOf(test: TestNode): Promise<Error> {
  const error = await test.node.closed.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!error) throw new Error('the node stopped without an error');
  return error;
}

describe('a committed entry that cannot be applied', () => {
  test('stops the leader that proposed it: closed rejects and onFatal gets the ApplyError naming the index', async () => {
    const fatal: Error[] = [];
    open = await startTestNode({ onFatal: (error) => fatal.push(error) });
    const node = open.node;
    await until('leadership', 10_000, () => node.isLeader());
    const db = await open.client('app');
    await db.exec('CREATE TABLE t (x)');
    const { index } = node.propose(FROM_ANOTHER_VERSION);
    const error = await fatalOf(open);
    expect(error).toBeInstanceOf(ApplyError);
    expect((error as ApplyError).index).toBe(index);
    expect(error.message).toContain(`failed to apply entry ${index} of term `);
    expect(error.message).toContain('unknown command version 99');
    expect(error.cause).toBeInstanceOf(CommandCodecError);
    expect(fatal).toEqual([error]);
    // Never skipped: the node applied everything before it and nothing from it on.
    expect(node.status().appliedIndex).toBe(index - 1);
    await expect(db.exec('INSERT INTO t VALUES (1)')).rejects.toThrow();
  });

  test('a node restarting on a log that holds one stops again at the same index, every time', async () => {
    const first = await startTestNode();
    await until('leadership', 10_000, () => first.node.isLeader());
    const db = await first.client('app');
    await db.exec('CREATE TABLE t (x)');
    const dir = first.dir;
    const status = first.node.status();
    await first.close({ keepDir: true });
    // Append the foreign entry to the log as a peer's Append would have put it there.
    const storage = await openDirectoryStorage(dir);
    const log = new RaftLog(storage);
    const loaded = await log.load();
    const last = loaded.entries[loaded.entries.length - 1]!;
    expect(last.index).toBe(status.lastIndex);
    const badIndex = last.index + 1;
    await log.append([{ index: badIndex, term: last.term, type: EntryType.Normal, data: FROM_ANOTHER_VERSION }]);
    await storage.close();

    for (let attempt = 0; attempt < 2; attempt++) {
      open = await startTestNode({ dir, bootstrap: false });
      const error = await fatalOf(open);
      expect(error).toBeInstanceOf(ApplyError);
      expect((error as ApplyError).index).toBe(badIndex);
      expect(open.node.status().appliedIndex).toBe(badIndex - 1);
      await open.close();
      open = undefined;
    }
    rmSync(dir, { recursive: true, force: true });
  });
});

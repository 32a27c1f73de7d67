/** The node's identity file on real files: read back, old files accepted, damage refused. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { openDirectoryStorage, type NodeDirectoryStorage } from '../../runtimes/node/storage.ts';
import { createIdentity, IDENTITY_FILE, readIdentity } from '../../src/server/host.ts';
import { RaftLogCorruptError } from '../../src/server/raft-log.ts';

let directory: string;
let storage: NodeDirectoryStorage;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'dqlite-wasm-identity-'));
  storage = await openDirectoryStorage(directory);
});
afterEach(async () => {
  await storage.close();
  await rm(directory, { recursive: true, force: true });
});

const random = (length: number): Uint8Array => new Uint8Array(length).fill(7);

describe('node identity file', () => {
  test('reads back what was created', async () => {
    const created = await createIdentity(storage, '127.0.0.1:9001', random);
    expect(await readIdentity(storage, '127.0.0.1:9001', directory)).toEqual(created);
  });

  test('a changed digit of the id is refused, naming the file', async () => {
    const created = await createIdentity(storage, '127.0.0.1:9001', random);
    const path = join(directory, IDENTITY_FILE);
    const text = await readFile(path, 'utf8');
    const digit = String(created.id).at(-1)!;
    await writeFile(path, text.replace(String(created.id), String(created.id).slice(0, -1) + (digit === '1' ? '2' : '1')));
    const error = await readIdentity(storage, '127.0.0.1:9001', directory).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RaftLogCorruptError);
    expect((error as RaftLogCorruptError).file).toBe(IDENTITY_FILE);
    expect((error as Error).message).toMatch(/node\.json is damaged at byte 0: the node's id cannot be read: it fails its checksum/);
  });

  test('a file that is not JSON is refused; a file without a checksum (older versions) is read', async () => {
    await writeFile(join(directory, IDENTITY_FILE), '{"id": 12, "addr');
    await expect(readIdentity(storage, 'a:1', directory)).rejects.toThrow(/it is not JSON/);
    await writeFile(join(directory, IDENTITY_FILE), '{"id":12,"address":"a:1"}\n');
    expect(await readIdentity(storage, 'a:1', directory)).toEqual({ id: 12, address: 'a:1' });
  });
});

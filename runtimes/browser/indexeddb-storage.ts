/**
 * `DurableStorage` in IndexedDB, for browsers without OPFS sync access handles. Each file is a
 * run of chunks keyed [name, sequence]; `append` buffers in memory and `sync` writes the buffered
 * chunks in one transaction with strict durability, so a file on disk is always a prefix of what
 * was appended, never a torn chunk. An atomic writer stores its pieces as the chunks of
 * `.tmp-NAME`; its commit moves them under NAME in one transaction (a cursor, one chunk at a time),
 * so NAME is the old file or the new one, never a mix.
 */
import { concatBytes } from '../../src/util/bytes.ts';
import type { DurableFileReader, DurableFileWriter, DurableStorage } from '../../src/runtime.ts';
import { validateName } from './opfs-storage.ts';

const STORE = 'chunks';
const TEMP_PREFIX = '.tmp-';
/** Bound on bytes appended but not yet synced, per storage: a node syncs long before this. */
export const INDEXEDDB_UNSYNCED_BYTES_MAX = 256 * 1024 * 1024;

type ChunkKey = [string, number];

export class IndexedDbStorageError extends Error {
  constructor(
    readonly code: 'IO' | 'CLOSED' | 'UNAVAILABLE' | 'FULL',
    message: string,
  ) {
    super(message);
    this.name = 'IndexedDbStorageError';
  }
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new IndexedDbStorageError('IO', `IndexedDB request failed: ${req.error?.message ?? 'unknown error'}`));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(new IndexedDbStorageError('IO', `IndexedDB transaction failed: ${tx.error?.message ?? 'unknown error'}`));
    tx.onabort = () => reject(new IndexedDbStorageError('IO', `IndexedDB transaction aborted: ${tx.error?.message ?? 'unknown reason'}`));
  });
}

function range(name: string): IDBKeyRange {
  return IDBKeyRange.bound([name, 0], [name, Number.MAX_SAFE_INTEGER]);
}

export class IndexedDbStorage implements DurableStorage {
  /** Per file: the next chunk sequence number and chunks not yet written. */
  private readonly files = new Map<string, { nextSequence: number; unsynced: Uint8Array[] }>();
  private unsyncedBytes = 0;
  /** Names with an atomic writer open. */
  private readonly writing = new Set<string>();
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly db: IDBDatabase) {}

  static async open(databaseName: string): Promise<IndexedDbStorage> {
    if (typeof indexedDB === 'undefined') throw new IndexedDbStorageError('UNAVAILABLE', 'IndexedDB is not available here');
    const open = indexedDB.open(databaseName, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    return new IndexedDbStorage(await request(open));
  }

  read(name: string): Promise<Uint8Array | undefined> {
    return this.serialize(name, async () => {
      await this.flush(name);
      const chunks = (await request(this.db.transaction(STORE, 'readonly').objectStore(STORE).getAll(range(name)))) as Uint8Array[];
      if (chunks.length === 0) return undefined;
      return concat(chunks);
    });
  }

  /**
   * IndexedDB reads a value whole, so the reader holds the file's bytes until it is closed (a
   * ranged read of one stored value would read all of it each time); it reads the file as it was
   * opened, whatever happens to the name later.
   */
  async openReader(name: string): Promise<DurableFileReader | undefined> {
    let bytes = await this.read(name);
    if (!bytes) return undefined;
    const sizeBytes = bytes.byteLength;
    return {
      sizeBytes,
      read: async (offset: number, length: number) => {
        if (!bytes) throw new IndexedDbStorageError('CLOSED', `read ${name}: the reader is closed`);
        return bytes.slice(offset, Math.min(sizeBytes, offset + length));
      },
      close: async () => {
        bytes = undefined;
      },
    };
  }

  writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    if (this.writing.has(name)) return Promise.reject(new IndexedDbStorageError('IO', `replace ${name}: a writer of it is open`));
    return this.serialize(name, async () => {
      this.dropUnsynced(name);
      const tx = this.db.transaction(STORE, 'readwrite', { durability: 'strict' });
      const store = tx.objectStore(STORE);
      store.delete(range(name));
      store.put(bytes.slice(), [name, 0] satisfies ChunkKey);
      await done(tx);
      this.files.set(name, { nextSequence: 1, unsynced: [] });
    });
  }

  async openAtomicWriter(name: string): Promise<DurableFileWriter> {
    if (this.writing.has(name)) throw new IndexedDbStorageError('IO', `replace ${name}: a writer of it is already open`);
    const tempName = TEMP_PREFIX + name;
    await this.serialize(name, async () => {
      // What a crashed writer left.
      const tx = this.db.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).delete(range(tempName));
      await done(tx);
    });
    this.writing.add(name);
    /** Bytes of each chunk written, in order: chunk i is [tempName, i]. */
    const chunkBytes: number[] = [];
    let open = true;
    const finish = (): void => {
      open = false;
      this.writing.delete(name);
    };
    const assertOpen = (what: string): void => {
      if (!open) throw new IndexedDbStorageError('CLOSED', `${what} ${name}: the writer is closed`);
    };
    return {
      write: (bytes) =>
        this.serialize(name, async () => {
          assertOpen('write');
          // Not durable yet, and need not be: the commit rewrites every chunk in a strict transaction.
          const tx = this.db.transaction(STORE, 'readwrite');
          tx.objectStore(STORE).put(bytes.slice(), [tempName, chunkBytes.length] satisfies ChunkKey);
          try {
            await done(tx);
          } catch (error) {
            finish();
            throw error;
          }
          chunkBytes.push(bytes.byteLength);
        }),
      writeAt: (offset, bytes) =>
        this.serialize(name, async () => {
          assertOpen('write');
          const size = chunkBytes.reduce((a, b) => a + b, 0);
          if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes.byteLength > size) {
            throw new IndexedDbStorageError('IO', `write ${name}: bytes ${offset}..${offset + bytes.byteLength} are not all written yet (${size} are)`);
          }
          // Each chunk the range touches is read, patched and put back.
          let start = 0;
          for (let i = 0; i < chunkBytes.length && start < offset + bytes.byteLength; start += chunkBytes[i]!, i++) {
            const end = start + chunkBytes[i]!;
            if (end <= offset) continue;
            const key: ChunkKey = [tempName, i];
            const chunk = (await request(this.db.transaction(STORE, 'readonly').objectStore(STORE).get(key))) as Uint8Array;
            const from = Math.max(offset, start);
            const to = Math.min(offset + bytes.byteLength, end);
            chunk.set(bytes.subarray(from - offset, to - offset), from - start);
            const tx = this.db.transaction(STORE, 'readwrite');
            tx.objectStore(STORE).put(chunk, key);
            try {
              await done(tx);
            } catch (error) {
              finish();
              throw error;
            }
          }
        }),
      commit: () =>
        this.serialize(name, async () => {
          assertOpen('commit');
          finish();
          this.dropUnsynced(name);
          const tx = this.db.transaction(STORE, 'readwrite', { durability: 'strict' });
          const store = tx.objectStore(STORE);
          store.delete(range(name));
          let next = 0;
          const cursor = store.openCursor(range(tempName));
          cursor.onsuccess = () => {
            const at = cursor.result;
            if (!at) return;
            store.put(at.value as Uint8Array, [name, next++] satisfies ChunkKey);
            at.delete();
            at.continue();
          };
          await done(tx);
          this.files.set(name, { nextSequence: next, unsynced: [] });
        }),
      abort: () =>
        this.serialize(name, async () => {
          if (!open) return;
          finish();
          const tx = this.db.transaction(STORE, 'readwrite');
          tx.objectStore(STORE).delete(range(tempName));
          await done(tx);
        }),
    };
  }

  append(name: string, bytes: Uint8Array): Promise<void> {
    return this.serialize(name, async () => {
      if (this.unsyncedBytes + bytes.byteLength > INDEXEDDB_UNSYNCED_BYTES_MAX) {
        throw new IndexedDbStorageError('FULL', `more than ${INDEXEDDB_UNSYNCED_BYTES_MAX} bytes appended without a sync`);
      }
      const file = await this.file(name);
      file.unsynced.push(bytes.slice());
      this.unsyncedBytes += bytes.byteLength;
    });
  }

  sync(name: string): Promise<void> {
    return this.serialize(name, () => this.flush(name));
  }

  truncate(name: string, size: number): Promise<void> {
    return this.serialize(name, async () => {
      await this.flush(name);
      const store = this.db.transaction(STORE, 'readonly').objectStore(STORE);
      const chunks = (await request(store.getAll(range(name)))) as Uint8Array[];
      const whole = concat(chunks);
      if (size > whole.byteLength) throw new IndexedDbStorageError('IO', `truncate ${name}: size ${size} is beyond its ${whole.byteLength} bytes`);
      const tx = this.db.transaction(STORE, 'readwrite', { durability: 'strict' });
      tx.objectStore(STORE).delete(range(name));
      tx.objectStore(STORE).put(whole.slice(0, size), [name, 0] satisfies ChunkKey);
      await done(tx);
      this.files.set(name, { nextSequence: 1, unsynced: [] });
    });
  }

  remove(name: string): Promise<void> {
    return this.serialize(name, async () => {
      this.dropUnsynced(name);
      const tx = this.db.transaction(STORE, 'readwrite', { durability: 'strict' });
      tx.objectStore(STORE).delete(range(name));
      await done(tx);
      this.files.delete(name);
    });
  }

  async list(): Promise<string[]> {
    this.assertOpen();
    await this.tail;
    const keys = (await request(this.db.transaction(STORE, 'readonly').objectStore(STORE).getAllKeys())) as unknown as ChunkKey[];
    // A temporary file (an atomic writer's, or one a crash left) is no file of the storage.
    const names = new Set(keys.map((key) => key[0]).filter((name) => !name.startsWith('.')));
    for (const [name, file] of this.files) if (file.unsynced.length > 0) names.add(name);
    return [...names].sort();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail.catch(() => undefined);
    this.db.close();
  }

  private async file(name: string): Promise<{ nextSequence: number; unsynced: Uint8Array[] }> {
    let file = this.files.get(name);
    if (!file) {
      const keys = (await request(this.db.transaction(STORE, 'readonly').objectStore(STORE).getAllKeys(range(name)))) as unknown as ChunkKey[];
      const last = keys.length > 0 ? keys[keys.length - 1]![1] : -1;
      file = { nextSequence: last + 1, unsynced: [] };
      this.files.set(name, file);
    }
    return file;
  }

  private async flush(name: string): Promise<void> {
    const file = this.files.get(name);
    if (!file || file.unsynced.length === 0) return;
    const chunks = file.unsynced.splice(0);
    const bytes = concat(chunks);
    const tx = this.db.transaction(STORE, 'readwrite', { durability: 'strict' });
    tx.objectStore(STORE).put(bytes, [name, file.nextSequence] satisfies ChunkKey);
    await done(tx);
    file.nextSequence++;
    this.unsyncedBytes -= bytes.byteLength;
  }

  private dropUnsynced(name: string): void {
    const file = this.files.get(name);
    if (!file) return;
    for (const chunk of file.unsynced.splice(0)) this.unsyncedBytes -= chunk.byteLength;
  }

  /** One queue for everything: IndexedDB transactions are cheap to order and files are few. */
  private serialize<T>(name: string, operation: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
      validateName(name);
    } catch (error) {
      return Promise.reject(error);
    }
    const result = this.tail.then(operation, operation);
    this.tail = result.catch(() => undefined);
    return result;
  }

  private assertOpen(): void {
    if (this.closed) throw new IndexedDbStorageError('CLOSED', 'IndexedDB storage is closed');
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  return chunks.length === 1 ? chunks[0]! : concatBytes(chunks);
}

// A replicated database as one standard SQLite file: the main file with the committed WAL frames
// applied, in rollback-journal mode, so the plain `sqlite3` shell (or any SQLite) opens it with
// no -wal file beside it. Works on the bytes of a DatabaseSnapshot, so it is taken at exactly
// the state the snapshot holds (one committed log position) and never touches the live files.

import type { DatabaseSnapshot } from './database.ts';
import { mainFilePageSize } from './database.ts';
import { EngineError } from './errors.ts';
import { WAL_FRAME_HEADER_BYTES, WAL_HEADER_BYTES, readFrameCommitPageCount, readUint32BigEndian, walHeaderPageSize, decodeWalHeader } from './wal-format.ts';

/** Byte offsets in the 100-byte database header (sqlite.org/fileformat.html). */
const HEADER_WRITE_VERSION = 18;
const HEADER_READ_VERSION = 19;
const HEADER_CHANGE_COUNTER = 24;
const HEADER_DATABASE_PAGES = 28;
const HEADER_VERSION_VALID_FOR = 92;
const FORMAT_LEGACY = 1;

/**
 * The database `snapshot` describes as one rollback-journal SQLite file. An empty snapshot (a
 * database never written) gives an empty file, which SQLite opens as an empty database.
 * Throws EngineError('BAD_SNAPSHOT') when the bytes are not a main file plus whole committed frames.
 */
export function standaloneImage(snapshot: DatabaseSnapshot): Uint8Array {
  const { main, wal } = snapshot;
  if (main.length === 0 && wal.length === 0) return new Uint8Array(0);
  const pageSize = mainFilePageSize(main);
  if (pageSize === 0) throw new EngineError('BAD_SNAPSHOT', 'the main file does not start with a valid SQLite header');
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  let databasePages = Math.floor(main.length / pageSize);
  let frames = 0;
  if (wal.length > 0) {
    if (wal.length < WAL_HEADER_BYTES || (wal.length - WAL_HEADER_BYTES) % frameBytes !== 0) {
      throw new EngineError('BAD_SNAPSHOT', `the WAL is ${wal.length} bytes, not a header plus whole ${frameBytes}-byte frames`);
    }
    if (walHeaderPageSize(decodeWalHeader(wal, 0)) !== pageSize) {
      throw new EngineError('BAD_SNAPSHOT', `the WAL's page size differs from the main file's ${pageSize} bytes`);
    }
    frames = (wal.length - WAL_HEADER_BYTES) / frameBytes;
    if (frames > 0) {
      databasePages = readFrameCommitPageCount(wal, WAL_HEADER_BYTES + (frames - 1) * frameBytes);
      if (databasePages === 0) throw new EngineError('BAD_SNAPSHOT', 'the WAL does not end with a commit frame');
    }
  }
  const image = new Uint8Array(databasePages * pageSize);
  image.set(main.subarray(0, Math.min(main.length, image.length)));
  // Newest frame first: each page takes its latest committed image, once.
  const copied = new Uint8Array(databasePages + 1);
  for (let i = frames - 1; i >= 0; i--) {
    const offset = WAL_HEADER_BYTES + i * frameBytes;
    const pageNumber = readUint32BigEndian(wal, offset);
    if (pageNumber === 0 || pageNumber > databasePages || copied[pageNumber] === 1) continue;
    copied[pageNumber] = 1;
    image.set(wal.subarray(offset + WAL_FRAME_HEADER_BYTES, offset + frameBytes), (pageNumber - 1) * pageSize);
  }
  for (let page = Math.floor(main.length / pageSize) + 1; page <= databasePages; page++) {
    if (copied[page] !== 1) throw new EngineError('BAD_SNAPSHOT', `page ${page} is neither in the main file nor in the WAL`);
  }
  image[HEADER_WRITE_VERSION] = FORMAT_LEGACY;
  image[HEADER_READ_VERSION] = FORMAT_LEGACY;
  // The in-header page count is trusted only when the version-valid-for number matches the
  // change counter: set both, so readers never fall back to guessing from the file size.
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  view.setUint32(HEADER_DATABASE_PAGES, databasePages);
  view.setUint32(HEADER_VERSION_VALID_FOR, view.getUint32(HEADER_CHANGE_COUNTER));
  return image;
}

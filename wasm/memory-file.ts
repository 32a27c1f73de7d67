import { EngineError } from './errors.ts';

const CAPACITY_MIN_BYTES = 64 * 1024;

/**
 * A growable in-memory file. Bytes of `bytes` beyond `size` are stale (truncation does not clear
 * them: a checkpoint truncates megabytes of WAL); a write past the end zero-fills the gap, as a
 * real file reads zeros there.
 */
export class MemoryFile {
  bytes: Uint8Array;
  size = 0;
  /** Incremented by every xSync: lets the engine skip work when SQLite committed nothing. */
  syncCount = 0;
  readonly sizeMaxBytes: number;

  constructor(sizeMaxBytes: number, initial?: Uint8Array) {
    this.sizeMaxBytes = sizeMaxBytes;
    this.bytes = new Uint8Array(CAPACITY_MIN_BYTES);
    if (initial !== undefined) this.write(initial, 0);
  }

  /** Makes room for `sizeBytes`; returns false when that exceeds `sizeMaxBytes`. */
  reserve(sizeBytes: number): boolean {
    if (sizeBytes <= this.bytes.length) return true;
    if (sizeBytes > this.sizeMaxBytes) return false;
    let capacity = this.bytes.length * 2;
    while (capacity < sizeBytes) capacity *= 2;
    const grown = new Uint8Array(Math.min(capacity, Math.max(sizeBytes, this.sizeMaxBytes)));
    grown.set(this.bytes.subarray(0, this.size));
    this.bytes = grown;
    return true;
  }

  write(source: Uint8Array, offset: number): void {
    const end = offset + source.length;
    if (!this.reserve(end)) {
      throw new EngineError('LIMIT', `file would grow to ${end} bytes, above its limit of ${this.sizeMaxBytes} bytes`);
    }
    if (offset > this.size) this.bytes.fill(0, this.size, offset);
    this.bytes.set(source, offset);
    if (end > this.size) this.size = end;
  }

  truncate(sizeBytes: number): void {
    if (sizeBytes > this.size) {
      if (!this.reserve(sizeBytes)) {
        throw new EngineError('LIMIT', `file would grow to ${sizeBytes} bytes, above its limit of ${this.sizeMaxBytes} bytes`);
      }
      this.bytes.fill(0, this.size, sizeBytes);
    }
    this.size = sizeBytes;
  }

  /** A copy of the file's current contents. */
  copy(): Uint8Array {
    return this.bytes.slice(0, this.size);
  }
}

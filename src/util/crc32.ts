/**
 * CRC-32 (IEEE), to tell a torn or corrupted record on disk from a whole one. Slicing-by-8:
 * eight table lookups per 8 input bytes, since every log append of every write runs it; a host
 * with a native CRC-32 (Node's zlib) lends it with useNativeCrc32, 4 to 5 times faster on a
 * log record (10 KiB: 4 against 20 µs here), which every node computes for every write.
 */
const TABLES = (() => {
  const tables = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    tables[n] = c >>> 0;
  }
  for (let t = 1; t < 8; t++) {
    for (let n = 0; n < 256; n++) {
      const previous = tables[(t - 1) * 256 + n]!;
      tables[t * 256 + n] = (tables[previous & 0xff]! ^ (previous >>> 8)) >>> 0;
    }
  }
  return tables;
})();

/** A host's CRC-32 (IEEE) of `bytes` continuing `previous` (0 for nothing), as zlib.crc32(data, value). */
export type NativeCrc32 = (bytes: Uint8Array, previous: number) => number;

let native: NativeCrc32 | undefined;
/** Below this a call into the host costs more than the table lookups it saves. */
const NATIVE_BYTES_MIN = 256;

/**
 * Computes CRC-32 with `implementation` from now on, for inputs of NATIVE_BYTES_MIN bytes and
 * more, once it agrees with this module's on check values (false, and unused, otherwise).
 */
export function useNativeCrc32(implementation: NativeCrc32): boolean {
  const check = new Uint8Array(1031).map((_, i) => (i * 131 + 7) & 0xff);
  const agrees =
    implementation(check, 0) >>> 0 === crc32Tables(0, check, 0, check.length) &&
    implementation(check.subarray(300), crc32Tables(0, check, 0, 300)) >>> 0 === crc32Tables(0, check, 0, check.length);
  native = agrees ? implementation : undefined;
  return agrees;
}

export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc32Update(0, bytes, start, end);
}

/** The CRC-32 of what `previous` (0 for nothing) is the CRC of, followed by bytes [start, end): a checksum over pieces read one at a time. */
export function crc32Update(previous: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  if (native !== undefined && end - start >= NATIVE_BYTES_MIN) {
    return native(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end), previous) >>> 0;
  }
  return crc32Tables(previous, bytes, start, end);
}

function crc32Tables(previous: number, bytes: Uint8Array, start: number, end: number): number {
  const t = TABLES;
  let crc = (previous ^ 0xffffffff) >>> 0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo = (crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>> 0;
    const hi = bytes[i + 4]! | (bytes[i + 5]! << 8) | (bytes[i + 6]! << 16) | (bytes[i + 7]! << 24);
    crc =
      t[1792 + (lo & 0xff)]! ^
      t[1536 + ((lo >>> 8) & 0xff)]! ^
      t[1280 + ((lo >>> 16) & 0xff)]! ^
      t[1024 + (lo >>> 24)]! ^
      t[768 + (hi & 0xff)]! ^
      t[512 + ((hi >>> 8) & 0xff)]! ^
      t[256 + ((hi >>> 16) & 0xff)]! ^
      t[(hi >>> 24) & 0xff]!;
  }
  for (; i < end; i++) crc = t[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * Damage in the middle of a crashed node's Raft log: bytes of one record of an append that a
 * later append followed (so it had been fsynced and acknowledged) are overwritten on the node's
 * `SimDisk` while it is down. The loader must take that for corruption, not for a torn tail, and
 * refuse to start (Alagappan et al., "Protocol-Aware Recovery for Consensus-Based Storage").
 */
import { decodeSnapshotFile, parseSegment, SEGMENT_PREFIX, segmentFirstIndex } from '../../src/server/raft-log-format.ts';
import type { Prng } from '../sim/prng.ts';
import type { SimDisk } from './sim-storage.ts';

/** Where the damage is: enough for the report and for the loader's error to be checked. */
export interface LogDamage {
  file: string;
  /** Byte offset of the damaged record in the file. */
  recordOffset: number;
  /** Index of the entry the record holds. */
  index: number;
  bytes: number;
}

/** Record header (length, checksum), then term, index and the first index of its append. */
const BATCH_FIRST_INDEX_OFFSET = 8 + 16;
const DAMAGE_BYTES_MAX = 64;

interface Candidate {
  file: string;
  start: number;
  end: number;
  index: number;
}

/**
 * Overwrites bytes of a record after the snapshot that a later append's record follows (in the
 * same segment or a later one), preferring entries above `preferAboveIndex`; undefined (and
 * nothing written) when the log holds no such record. The disk must have no live handle.
 */
export function damageMiddleOfLog(disk: SimDisk, rng: Prng, preferAboveIndex = 0): LogDamage | undefined {
  const snapshotBytes = disk.read('snapshot');
  const snapshot = snapshotBytes ? decodeSnapshotFile(snapshotBytes) : undefined;
  // Damage in entries the snapshot holds is harmless and rightly ignored by the loader.
  const snapshotIndex = snapshot && typeof snapshot !== 'string' ? snapshot.meta.index : 0;
  const names = disk.list().filter((name) => name.startsWith(SEGMENT_PREFIX));
  const candidates: Candidate[] = [];
  for (const [position, name] of names.entries()) {
    const bytes = disk.read(name)!;
    const parsed = parseSegment(bytes, segmentFirstIndex(name)!);
    if (parsed.layout.version !== 2) continue;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const batchOf = (i: number): number => Number(view.getBigUint64(parsed.offsets[i]! + BATCH_FIRST_INDEX_OFFSET, true));
    const lastSegment = position === names.length - 1;
    const lastBatch = parsed.offsets.length > 0 ? batchOf(parsed.offsets.length - 1) : 0;
    for (let i = 0; i < parsed.entries.length; i++) {
      const index = parsed.entries[i]!.index;
      if (index <= snapshotIndex) continue;
      // In the last segment, only a record that a later append's whole record follows is proof.
      if (lastSegment && batchOf(i) === lastBatch) continue;
      const end = i + 1 < parsed.offsets.length ? parsed.offsets[i + 1]! : parsed.goodBytes;
      candidates.push({ file: name, start: parsed.offsets[i]!, end, index });
    }
  }
  if (candidates.length === 0) return undefined;
  const preferred = candidates.filter((c) => c.index > preferAboveIndex);
  const target = rng.pick(preferred.length > 0 ? preferred : candidates);
  const from = target.start + rng.int(target.end - target.start);
  const count = Math.min(target.end - from, 1 + rng.int(DAMAGE_BYTES_MAX));
  const damage = new Uint8Array(count);
  // Every byte changes: XOR with a non-zero value.
  for (let i = 0; i < count; i++) damage[i] = 1 + rng.int(255);
  disk.damage(target.file, from, damage);
  return { file: target.file, recordOffset: target.start, index: target.index, bytes: count };
}

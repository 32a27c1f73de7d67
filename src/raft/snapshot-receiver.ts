/**
 * Follower side of InstallSnapshot: reassembles chunks in order. A chunk at an unexpected offset
 * is answered with the offset we want, so the leader resumes there; a chunk of a different
 * snapshot restarts reassembly only at offset 0. The total size is bounded.
 */
import type { Snapshot, SnapshotChunk } from './types.ts';

export type ChunkOutcome =
  | { kind: 'complete'; snapshot: Snapshot }
  | { kind: 'partial'; receivedBytes: number }
  | { kind: 'too-large' };

export class SnapshotReceiver {
  private current: { chunkMeta: SnapshotChunk['meta']; totalBytes: number; buffer: Uint8Array; receivedBytes: number } | undefined;

  constructor(private readonly snapshotBytesMax: number) {}

  receive(chunk: SnapshotChunk): ChunkOutcome {
    if (chunk.totalBytes > this.snapshotBytesMax) return { kind: 'too-large' };
    let rx = this.current;
    const meta = chunk.meta;
    const same = rx && rx.chunkMeta.index === meta.index && rx.chunkMeta.term === meta.term && rx.totalBytes === chunk.totalBytes;
    if (!same) {
      rx = undefined;
      this.current = undefined;
      if (chunk.offset === 0) {
        rx = { chunkMeta: meta, totalBytes: chunk.totalBytes, buffer: new Uint8Array(chunk.totalBytes), receivedBytes: 0 };
        this.current = rx;
      }
    }
    if (!rx) return { kind: 'partial', receivedBytes: 0 };
    if (chunk.offset === rx.receivedBytes && chunk.offset + chunk.data.length <= rx.totalBytes) {
      rx.buffer.set(chunk.data, chunk.offset);
      rx.receivedBytes += chunk.data.length;
    }
    if (rx.receivedBytes === rx.totalBytes) {
      this.current = undefined;
      return { kind: 'complete', snapshot: { meta: rx.chunkMeta, data: rx.buffer } };
    }
    return { kind: 'partial', receivedBytes: rx.receivedBytes };
  }
}

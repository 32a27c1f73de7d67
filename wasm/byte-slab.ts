/**
 * Byte arrays cut from shared blocks. A fresh typed array of a few KiB costs its own backing
 * store (about 2 µs here, plus GC pressure from the external memory); a view into a block costs
 * a fraction of that. A captured transaction's payload is such an array: one per commit, usually
 * copied into a Raft entry at once, so the block it shares is soon garbage too.
 *
 * Every array is zero-filled when handed out (blocks are never reused) and starts 8-byte aligned,
 * so 32-bit word views over a payload's frames need no copy.
 */
export class ByteSlab {
  private block = new ArrayBuffer(0);
  private usedBytes = 0;

  /** Arrays of more than `pieceBytesMax` get their own buffer: one would pin a block for little gain. */
  constructor(
    private readonly blockBytes: number,
    private readonly pieceBytesMax: number,
  ) {
    if (!(pieceBytesMax > 0 && pieceBytesMax <= blockBytes)) {
      throw new RangeError(`slab piece limit ${pieceBytesMax} must be in 1..${blockBytes} (the block size)`);
    }
  }

  /** A zero-filled array of `lengthBytes` (owned by the caller; never handed out again). */
  take(lengthBytes: number): Uint8Array {
    if (lengthBytes > this.pieceBytesMax) return new Uint8Array(lengthBytes);
    if (this.usedBytes + lengthBytes > this.block.byteLength) {
      this.block = new ArrayBuffer(this.blockBytes);
      this.usedBytes = 0;
    }
    const piece = new Uint8Array(this.block, this.usedBytes, lengthBytes);
    this.usedBytes += (lengthBytes + 7) & ~7;
    return piece;
  }
}

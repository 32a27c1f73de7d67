/**
 * Byte arrays cut from shared blocks. A fresh typed array of a few KiB costs its own backing
 * store (about 2 µs here, plus GC pressure from the external memory); a view into a block costs
 * a fraction of that. A change set's values are such arrays; a captured transaction's payload
 * comes from a RecyclingSlab (below), whose blocks serve again once their pieces are given back.
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

/** A block of a RecyclingSlab: its pieces not yet given back, and whether it has room left. */
export interface SlabBlock {
  outstanding: number;
  full: boolean;
  /** Served before: holds old bytes. */
  readonly reused: boolean;
  readonly buffer: ArrayBuffer;
}

/** A piece of a RecyclingSlab and the block to give it back to (undefined: its own buffer, never reused). */
export interface SlabPiece {
  readonly bytes: Uint8Array;
  readonly block: SlabBlock | undefined;
}

type Transfer = (buffer: ArrayBuffer) => ArrayBuffer;
/** Moves a buffer's memory to a new ArrayBuffer without copying; every view of the old one is detached (length 0). */
const transferBuffer: Transfer =
  typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function'
    ? (buffer) => (buffer as unknown as { transfer(): ArrayBuffer }).transfer()
    : (buffer) => structuredClone(buffer, { transfer: [buffer] });

/**
 * A ByteSlab whose blocks are used again once every piece cut from them was given back
 * (`give`). The owner of a piece promises to give it back when done; the arrays handed out of a
 * block are detached (length 0, reads find nothing) before its memory serves again, so a piece
 * kept past that point fails loudly instead of showing another piece's bytes.
 *
 * Why: V8 answers a steady churn of fresh array buffers (one per captured transaction) with
 * back-to-back full collections; memory that is handed out again is not new to it.
 */
export class RecyclingSlab {
  private current: SlabBlock | undefined;
  private usedBytes = 0;
  private readonly spare: ArrayBuffer[] = [];

  constructor(
    private readonly blockBytes: number,
    private readonly pieceBytesMax: number,
    private readonly spareBlocksMax: number,
  ) {
    if (!(pieceBytesMax > 0 && pieceBytesMax <= blockBytes)) {
      throw new RangeError(`slab piece limit ${pieceBytesMax} must be in 1..${blockBytes} (the block size)`);
    }
  }

  /**
   * An 8-byte aligned array of `lengthBytes`, to be given back with `give`: zero-filled, or with
   * `zeroFill` false whatever bytes its memory held (for a caller that writes every byte).
   */
  take(lengthBytes: number, zeroFill = true): SlabPiece {
    if (lengthBytes > this.pieceBytesMax) return { bytes: new Uint8Array(lengthBytes), block: undefined };
    let block = this.current;
    if (block === undefined || this.usedBytes + lengthBytes > this.blockBytes) {
      if (block !== undefined) {
        block.full = true;
        if (block.outstanding === 0) this.recycle(block);
      }
      const reused = this.spare.pop();
      block = { outstanding: 0, full: false, reused: reused !== undefined, buffer: reused ?? new ArrayBuffer(this.blockBytes) };
      this.current = block;
      this.usedBytes = 0;
    }
    const bytes = new Uint8Array(block.buffer, this.usedBytes, lengthBytes);
    if (block.reused && zeroFill) bytes.fill(0);
    this.usedBytes += (lengthBytes + 7) & ~7;
    block.outstanding++;
    return { bytes, block };
  }

  /** The owner of the piece from `block` is done with it. */
  give(block: SlabBlock | undefined): void {
    if (block === undefined) return;
    if (!(block.outstanding > 0)) throw new Error('slab piece given back twice');
    block.outstanding--;
    if (block.outstanding === 0 && block.full) this.recycle(block);
  }

  /** Bytes of the blocks held: the current one and the spare ones. */
  get heldBytes(): number {
    return (this.current === undefined ? 0 : this.blockBytes) + this.spare.length * this.blockBytes;
  }

  private recycle(block: SlabBlock): void {
    // A block someone else detached (transferred a payload's buffer) has no memory left to reuse.
    if (this.spare.length >= this.spareBlocksMax || block.buffer.byteLength === 0) return;
    this.spare.push(transferBuffer(block.buffer));
  }
}

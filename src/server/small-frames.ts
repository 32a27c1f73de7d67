/**
 * The peer frames below the frame pool's size (acknowledgements, heartbeats, appends of a few
 * KiB), encoded into pieces of blocks that serve again once the socket wrote every frame cut from
 * them. A fresh array buffer per frame, several per write, is external memory to V8, whose growth
 * since its last full collection counts against the old generation's limit: under writes it ran
 * a mark-compact every half second on a heap of 16 MiB. A frame the channel keeps (one that
 * cannot tell when it wrote it) never comes back, and leaves its block to the collector.
 */
import { RecyclingSlab } from '../../wasm/byte-slab.ts';
import { encodedMessageBytes, encodeMessageInto, type Message } from '../raft/index.ts';
import { POOLED_FRAME_BYTES_MIN } from './frame-pool.ts';

/** Bytes of a block frames are cut from. */
export const SMALL_FRAME_BLOCK_BYTES = 128 * 1024;
/** Free blocks kept for the frames to come. */
const SPARE_BLOCKS_MAX = 2;

export interface SmallFrame {
  /** The frame: `headroomBytes` for the transport's header, then the message's encoding. */
  readonly frame: Uint8Array;
  /** The transport is done with the frame; `reusable`: it wrote the bytes and keeps none of them. */
  released(reusable: boolean): void;
}

export class SmallFrames {
  private readonly slab = new RecyclingSlab(SMALL_FRAME_BLOCK_BYTES, POOLED_FRAME_BYTES_MIN, SPARE_BLOCKS_MAX);

  /** `message` (without a snapshot chunk) encoded after `headroomBytes`; one above POOLED_FRAME_BYTES_MIN gets its own buffer. */
  encode(message: Message, headroomBytes: number): SmallFrame {
    const piece = this.slab.take(headroomBytes + encodedMessageBytes(message));
    const frame = encodeMessageInto(message, headroomBytes, piece.bytes);
    let given = false;
    return {
      frame,
      released: (reusable) => {
        if (given || !reusable) return;
        given = true;
        this.slab.give(piece.block);
      },
    };
  }

  /** Bytes of the blocks held (the one being cut and the free ones). */
  get heldBytes(): number {
    return this.slab.heldBytes;
  }
}

/**
 * The small peer frames are cut from blocks that serve again once the transport wrote every
 * frame cut from them: a steady stream of acknowledgements and small appends allocates nothing
 * new, a frame the channel keeps is never overwritten, and each frame decodes to its message.
 */
import { describe, expect, test } from 'vitest';
import { decodeMessage, EntryType, MessageType, type Message } from '../../src/raft/index.ts';
import { POOLED_FRAME_BYTES_MIN } from '../../src/server/frame-pool.ts';
import { SMALL_FRAME_BLOCK_BYTES, SmallFrames } from '../../src/server/small-frames.ts';

const HEADROOM_BYTES = 18;

function message(index: number, dataBytes: number): Message {
  const data = new Uint8Array(dataBytes).fill(index & 0xff);
  return {
    type: dataBytes > 0 ? MessageType.Append : MessageType.AppendResponse,
    from: 1,
    to: 2,
    term: 3,
    logTerm: 3,
    index,
    commit: index,
    reject: false,
    rejectHint: 0,
    context: 0,
    entries: dataBytes > 0 ? [{ index: index + 1, term: 3, type: EntryType.Normal, data }] : [],
  };
}

function decoded(frame: Uint8Array): Message {
  return decodeMessage(frame.slice(HEADROOM_BYTES));
}

describe('SmallFrames', () => {
  test('frames written and given back make the memory of their block serve again, holding a bounded amount', () => {
    const frames = new SmallFrames();
    const first = frames.encode(message(1, 0), HEADROOM_BYTES);
    expect(first.frame.buffer.byteLength).toBe(SMALL_FRAME_BLOCK_BYTES);
    expect(decoded(first.frame)).toMatchObject({ type: MessageType.AppendResponse, index: 1, commit: 1 });
    first.released(true);
    // Thousands of frames of a few KiB, each written before the next: past many blocks' worth.
    for (let i = 2; i < 2000; i++) {
      const small = frames.encode(message(i, 3000 + (i % 7) * 500), HEADROOM_BYTES);
      const back = decoded(small.frame);
      expect(back.index).toBe(i);
      expect(back.entries[0]!.data.every((byte) => byte === (i & 0xff))).toBe(true);
      small.released(true);
      small.released(true); // a second report is ignored, never a second give
    }
    // The first block's memory served again: its old frames are detached, not showing new bytes.
    expect(first.frame.length).toBe(0);
    expect(frames.heldBytes).toBeLessThanOrEqual(3 * SMALL_FRAME_BLOCK_BYTES);
  });

  test('a frame the channel keeps (not reusable) keeps its bytes while later frames come and go', () => {
    const frames = new SmallFrames();
    const kept = frames.encode(message(7, 1000), HEADROOM_BYTES);
    const keptCopy = kept.frame.slice();
    kept.released(false);
    for (let i = 0; i < 500; i++) frames.encode(message(i, 2000), HEADROOM_BYTES).released(true);
    expect(kept.frame).toEqual(keptCopy);
    expect(decoded(kept.frame).entries[0]!.data.length).toBe(1000);
  });

  test('a frame above the pooled size gets a buffer of its own', () => {
    const frames = new SmallFrames();
    const large = frames.encode(message(1, POOLED_FRAME_BYTES_MIN), HEADROOM_BYTES);
    expect(large.frame.buffer.byteLength).toBe(large.frame.length);
    expect(decoded(large.frame).entries[0]!.data.length).toBe(POOLED_FRAME_BYTES_MIN);
    large.released(true);
  });
});

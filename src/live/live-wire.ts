/** A live result as it travels (src/protocol/live-requests.ts): a Bookmark with its index, then its Rows. */
import { concatBytes } from '../util/bytes.ts';
import { encodeResponse } from '../protocol/index.ts';
import type { LiveResult } from './live-queries.ts';

/** Encoded once per result, however many subscribers it goes to (byte streams copy what they are given). */
const encoded = new WeakMap<LiveResult, Uint8Array>();

/** One write's worth of bytes; the caller must not change them. */
export function encodeLiveResult(result: LiveResult): Uint8Array {
  let bytes = encoded.get(result);
  if (!bytes) {
    bytes = concatBytes([encodeResponse({ type: 'bookmark', index: BigInt(result.index) }), ...result.messages]);
    encoded.set(result, bytes);
  }
  return bytes;
}

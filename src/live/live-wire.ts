/** A live result as it travels (src/protocol/live-requests.ts): a Bookmark with its index, then its Rows. */
import { concatBytes } from '../util/bytes.ts';
import { encodeResponse } from '../protocol/index.ts';
import type { LiveResult } from './live-queries.ts';

/** One write's worth of bytes, new for every call (a transport may take ownership of them). */
export function encodeLiveResult(result: LiveResult): Uint8Array {
  return concatBytes([encodeResponse({ type: 'bookmark', index: BigInt(result.index) }), ...result.messages]);
}

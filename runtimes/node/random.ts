import { webcrypto } from 'node:crypto';

/** getRandomValues refuses more than this many bytes per call. */
const GET_RANDOM_VALUES_BYTES_MAX = 65_536;
/** A bound so that a bad length is an error rather than an out-of-memory crash. */
export const RANDOM_BYTES_MAX = 64 * 1024 * 1024;

/** Cryptographically strong random bytes. */
export function randomBytes(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0 || length > RANDOM_BYTES_MAX) {
    throw new RangeError(`randomBytes: length must be an integer in 0..${RANDOM_BYTES_MAX}, got ${length}`);
  }
  const bytes = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += GET_RANDOM_VALUES_BYTES_MAX) {
    webcrypto.getRandomValues(bytes.subarray(offset, Math.min(length, offset + GET_RANDOM_VALUES_BYTES_MAX)));
  }
  return bytes;
}

/** The host interface in a browser (or any host with the web platform's timers and WebSocket). */
import type { Clock, Runtime } from '../../src/runtime.ts';
import { dialStandardWebSocket } from './websocket.ts';

const GET_RANDOM_VALUES_BYTES_MAX = 65_536;
export const BROWSER_RANDOM_BYTES_MAX = 64 * 1024 * 1024;

export const webClock: Clock = {
  nowMs: () => performance.now(),
  setTimeout(callback, delayMs) {
    const timer = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(timer) };
  },
  setInterval(callback, periodMs) {
    const timer = setInterval(callback, periodMs);
    return { cancel: () => clearInterval(timer) };
  },
};

export function webRandomBytes(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0 || length > BROWSER_RANDOM_BYTES_MAX) {
    throw new RangeError(`randomBytes: length must be an integer in 0..${BROWSER_RANDOM_BYTES_MAX}, got ${length}`);
  }
  const bytes = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += GET_RANDOM_VALUES_BYTES_MAX) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(length, offset + GET_RANDOM_VALUES_BYTES_MAX)));
  }
  return bytes;
}

export function browserRuntime(): Runtime {
  return { name: 'browser', clock: webClock, randomBytes: webRandomBytes, dialWebSocket: dialStandardWebSocket };
}

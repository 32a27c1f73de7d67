/**
 * The host interface on Deno. Deno has the web platform's timers, crypto and WebSocket, so it
 * shares the browser's implementations; only the name differs.
 */
import type { Runtime } from '../../src/runtime.ts';
import { webClock, webRandomBytes } from '../browser/runtime.ts';
import { dialStandardWebSocket } from '../browser/websocket.ts';

export function denoRuntime(): Runtime {
  return { name: 'deno', clock: webClock, randomBytes: webRandomBytes, dialWebSocket: dialStandardWebSocket };
}

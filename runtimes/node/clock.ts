import { performance } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '../../src/runtime.ts';

/** The host clock: monotonic milliseconds and the event loop's timers. */
export const nodeClock: Clock = {
  nowMs(): number {
    return performance.now();
  },
  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(timer) };
  },
  setInterval(callback: () => void, periodMs: number): TimerHandle {
    const timer = setInterval(callback, periodMs);
    return { cancel: () => clearInterval(timer) };
  },
  afterIo(callback: () => void): void {
    setImmediate(callback);
  },
};

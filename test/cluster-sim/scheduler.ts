/**
 * Virtual time for the whole-cluster simulation: one queue of timed events, run in (time, order
 * of scheduling) order, with every microtask drained between two events. Nothing here reads the
 * wall clock, so one seed always runs the same events in the same order.
 *
 * Each node incarnation sees time through its own `FencedClock`: a crash fences it, so the dead
 * incarnation's timers never fire again and its frozen promises are garbage.
 */
import type { Clock, TimerHandle } from '../../src/runtime.ts';

interface ScheduledEvent {
  timeMs: number;
  order: number;
  run: () => void;
  cancelled: boolean;
}

/** Bound on events that may be queued at once; more means a timer leak, not a busy cluster. */
export const EVENTS_QUEUED_MAX = 1_000_000;

export class Scheduler {
  private nowValueMs = 0;
  private nextOrder = 0;
  private readonly heap: ScheduledEvent[] = [];
  private eventsRunValue = 0;
  /** Errors thrown by event callbacks (a node throwing out of a timer would crash its process). */
  readonly uncaught: Error[] = [];

  get nowMs(): number {
    return this.nowValueMs;
  }

  get eventsRun(): number {
    return this.eventsRunValue;
  }

  at(timeMs: number, run: () => void): TimerHandle {
    if (this.heap.length >= EVENTS_QUEUED_MAX) throw new Error(`more than ${EVENTS_QUEUED_MAX} events queued: a timer leaks`);
    const event: ScheduledEvent = { timeMs: Math.max(timeMs, this.nowValueMs), order: this.nextOrder++, run, cancelled: false };
    this.push(event);
    return {
      cancel: () => {
        event.cancelled = true;
      },
    };
  }

  after(delayMs: number, run: () => void): TimerHandle {
    return this.at(this.nowValueMs + Math.max(0, delayMs), run);
  }

  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.after(delayMs, resolve));
  }

  /**
   * Runs events until virtual time would pass `endMs` or `until()` holds (checked after every
   * event). Returns whether `until` was met.
   */
  async runUntil(endMs: number, until?: () => boolean): Promise<boolean> {
    await drainMicrotasks();
    for (;;) {
      if (until?.()) return true;
      const next = this.peek();
      if (!next || next.timeMs > endMs) {
        this.nowValueMs = Math.max(this.nowValueMs, endMs);
        return until?.() ?? false;
      }
      this.pop();
      if (next.cancelled) continue;
      this.nowValueMs = next.timeMs;
      this.eventsRunValue++;
      try {
        next.run();
      } catch (error) {
        this.uncaught.push(error instanceof Error ? error : new Error(String(error)));
      }
      await drainMicrotasks();
    }
  }

  /** Runs the simulation until `work` settles; throws after `limitMs` of simulated time. */
  async drive<T>(what: string, limitMs: number, work: Promise<T>): Promise<T> {
    let settled = false;
    const observed = work.finally(() => {
      settled = true;
    });
    observed.catch(() => {});
    await this.runUntil(this.nowValueMs + limitMs, () => settled);
    if (!settled) throw new Error(`${what} did not finish within ${limitMs} simulated ms`);
    return observed;
  }

  private peek(): ScheduledEvent | undefined {
    return this.heap[0];
  }

  private push(event: ScheduledEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left;
      if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right;
      if (smallest === i) return;
      [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
      i = smallest;
    }
  }
}

function before(a: ScheduledEvent, b: ScheduledEvent): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.order < b.order);
}

/**
 * Lets every queued promise continuation run. Everything the simulated cluster does between two
 * events is synchronous or a microtask (storage, network and timers all go through the
 * scheduler), so one macrotask turn drains it all, in an order fixed by the code.
 */
function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A node incarnation's clock: virtual time, and timers that die with the incarnation. */
export class FencedClock implements Clock {
  private fenced = false;
  private readonly live = new Set<TimerHandle>();

  constructor(private readonly scheduler: Scheduler) {}

  nowMs(): number {
    return this.scheduler.nowMs;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    if (this.fenced) return { cancel: () => {} };
    const handle: TimerHandle = this.scheduler.after(delayMs, () => {
      this.live.delete(handle);
      if (!this.fenced) callback();
    });
    this.live.add(handle);
    return {
      cancel: () => {
        handle.cancel();
        this.live.delete(handle);
      },
    };
  }

  setInterval(callback: () => void, periodMs: number): TimerHandle {
    let current: TimerHandle | undefined;
    let cancelled = false;
    const arm = (): void => {
      current = this.setTimeout(() => {
        if (cancelled) return;
        arm();
        callback();
      }, Math.max(1, periodMs));
    };
    arm();
    return {
      cancel: () => {
        cancelled = true;
        current?.cancel();
      },
    };
  }

  /** The incarnation died: no timer of it fires again. */
  fence(): void {
    this.fenced = true;
    for (const handle of this.live) handle.cancel();
    this.live.clear();
  }

  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, delayMs));
  }
}

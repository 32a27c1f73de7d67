/** Callers waiting until this node applied a log index (a new leader's barrier, a membership change). */
import { deferred, type Deferred } from '../fsm/deferred.ts';

export class AppliedWaiters {
  private readonly waiters: { index: number; done: Deferred<void> }[] = [];

  /** Resolves once `settle` reports an applied index at or past `index`. */
  wait(index: number): Promise<void> {
    const done = deferred<void>();
    this.waiters.push({ index, done });
    return done.promise;
  }

  settle(appliedIndex: number): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!;
      if (waiter.index <= appliedIndex) {
        waiter.done.resolve();
        this.waiters.splice(i, 1);
      }
    }
  }

  rejectAll(error: Error): void {
    for (const waiter of this.waiters.splice(0)) waiter.done.reject(error);
  }
}

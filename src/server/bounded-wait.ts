/**
 * Bounds every wait on Raft (a commit, a read confirmation, a membership change): without a
 * quorum the wait fails with a clear error after `timeoutMs` instead of hanging. Time comes from
 * the injected clock only.
 */
import { NodeError, SQLITE_IOERR_LEADERSHIP_LOST } from '../fsm/errors.ts';
import type { Clock } from '../runtime.ts';

export class BoundedWait {
  constructor(
    private readonly clock: Pick<Clock, 'setTimeout'>,
    readonly timeoutMs: number,
  ) {}

  /** `promise`, or a leadership-lost failure after `timeoutMs`; `onTimeout` cleans up the wait. */
  wait<T>(promise: Promise<T>, what: string, onTimeout?: () => void): Promise<T> {
    const timeoutMs = this.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        onTimeout?.();
        reject(
          new NodeError(
            SQLITE_IOERR_LEADERSHIP_LOST,
            `timed out after ${timeoutMs} ms ${what}: no quorum of voters answered; the cluster needs a majority of its voters up`,
          ),
        );
      }, timeoutMs);
      promise.then(
        (value) => {
          timer.cancel();
          resolve(value);
        },
        (error: unknown) => {
          timer.cancel();
          reject(error);
        },
      );
    });
  }
}

/**
 * Bounds every wait on Raft (a commit, a read confirmation, a membership change): without a
 * quorum the wait fails with a clear error after `timeoutMs` instead of hanging. Time comes from
 * the injected clock only.
 */
import { NodeError, SQLITE_IOERR_LEADERSHIP_LOST } from '../fsm/errors.ts';
import type { Clock } from '../runtime.ts';

const TIMEOUT_REASON = 'no quorum of voters answered; the cluster needs a majority of its voters up';
const TIMEOUT_MESSAGE = /^timed out after \d+ ms .*: no quorum of voters answered; /s;

/**
 * The message of the failure a bounded wait ends in (with SQLITE_IOERR_LEADERSHIP_LOST): what a
 * client receives. `isBoundedWaitTimeout` recognises it; both live here so they cannot drift.
 */
export function boundedWaitTimeoutMessage(timeoutMs: number, what: string): string {
  return `timed out after ${timeoutMs} ms ${what}: ${TIMEOUT_REASON}`;
}

/**
 * Whether `message` (a leadership-lost failure's, as a client received it) says a bounded wait
 * timed out: no quorum answered in time, rather than the leader stepping down.
 */
export function isBoundedWaitTimeout(message: string): boolean {
  return TIMEOUT_MESSAGE.test(message);
}

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
        reject(new NodeError(SQLITE_IOERR_LEADERSHIP_LOST, boundedWaitTimeoutMessage(timeoutMs, what)));
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

import { describe, expect, it } from 'vitest';
import { DqliteError } from '../../src/client/errors.ts';
import { NodeError, SQLITE_IOERR_LEADERSHIP_LOST } from '../../src/fsm/errors.ts';
import { commitRefusal } from '../../src/http/backup-load.ts';
import { boundedWaitTimeoutMessage, BoundedWait, isBoundedWaitTimeout } from '../../src/server/bounded-wait.ts';
import type { Clock } from '../../src/runtime.ts';

/** The error a node's real BoundedWait raises when no quorum answers, as the client receives it. */
async function commitTimeoutError(): Promise<DqliteError> {
  let fire = (): void => {};
  // A clock whose one timer fires when the test says so.
  const clock: Pick<Clock, 'setTimeout'> = {
    setTimeout: (callback) => {
      fire = callback;
      return { cancel: () => {} };
    },
  };
  const wait = new BoundedWait(clock, 1234);
  const pending = wait.wait(new Promise<never>(() => {}), 'waiting for COMMIT');
  fire();
  const error = await pending.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(NodeError);
  const nodeError = error as NodeError;
  return new DqliteError(nodeError.code, nodeError.message);
}

describe('/db/load COMMIT refusal wording', () => {
  it('a commit timeout says no quorum acknowledged it and names --commit-timeout-ms', async () => {
    const refusal = commitRefusal(await commitTimeoutError());
    expect(refusal.message).toMatch(/^\/db\/load: no quorum acknowledged the COMMIT/);
    expect(refusal.message).toContain('--commit-timeout-ms');
    expect(refusal.message).not.toContain('leadership changed');
  });

  it('the recogniser knows the bounded wait\'s own message, and not a leadership loss or another timeout', async () => {
    expect(isBoundedWaitTimeout((await commitTimeoutError()).message)).toBe(true);
    expect(isBoundedWaitTimeout(boundedWaitTimeoutMessage(5, 'waiting for a read confirmation'))).toBe(true);
    expect(isBoundedWaitTimeout('leadership lost while applying')).toBe(false);
    expect(isBoundedWaitTimeout('timed out after 5 ms waiting for a leader')).toBe(false);
  });

  it('a leadership loss still says leadership changed', () => {
    const refusal = commitRefusal(new DqliteError(SQLITE_IOERR_LEADERSHIP_LOST, 'leadership lost while applying'));
    expect(refusal.message).toMatch(/^\/db\/load: leadership changed during COMMIT/);
  });
});

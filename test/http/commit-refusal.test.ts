import { describe, expect, it } from 'vitest';
import { DqliteError } from '../../src/client/errors.ts';
import { NodeError, SQLITE_IOERR_LEADERSHIP_LOST } from '../../src/fsm/errors.ts';
import { commitRefusal } from '../../src/http/backup-load.ts';
import { BoundedWait } from '../../src/server/bounded-wait.ts';

/** The error a node's real BoundedWait raises when no quorum answers, as the client receives it. */
async function commitTimeoutError(): Promise<DqliteError> {
  let fire = (): void => {};
  const wait = new BoundedWait({ setTimeout: (fn: () => void) => { fire = fn; return { cancel: () => {} }; } } as never, 1234);
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

  it('a leadership loss still says leadership changed', () => {
    const refusal = commitRefusal(new DqliteError(SQLITE_IOERR_LEADERSHIP_LOST, 'leadership lost while applying'));
    expect(refusal.message).toMatch(/^\/db\/load: leadership changed during COMMIT/);
  });
});

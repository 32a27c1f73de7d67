/**
 * The collection a member asks for once it has gone quiet (src/server/startup.ts): once after
 * start-up, once after each spell of writes on a real node, never while writes go on or while it
 * stays idle. The periods are stepped by hand; the applied index is the real node's.
 */
import { afterEach, expect, test } from 'vitest';
import type { Clock, TimerHandle } from '../../src/runtime.ts';
import { collectWhenQuiet } from '../../src/server/startup.ts';
import { startTestNode, type TestNode } from './harness.ts';

/** A clock whose one interval runs when the test says a period has passed. */
function steppedClock(): { clock: Clock; period(): void; cancelled(): boolean } {
  let callback: (() => void) | undefined;
  let cancelled = false;
  const handle: TimerHandle = { cancel: () => void (cancelled = true) };
  const clock: Clock = {
    nowMs: () => 0,
    setTimeout: () => handle,
    setInterval: (run) => {
      callback = run;
      return handle;
    },
  };
  return {
    clock,
    period: () => {
      if (!cancelled) callback?.();
    },
    cancelled: () => cancelled,
  };
}

let node: TestNode | undefined;
afterEach(async () => {
  await node?.close();
  node = undefined;
});

test('collects once after start-up and once after each spell of writes', async () => {
  node = await startTestNode();
  const db = await node.client('quiet');
  await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY)');
  const stepped = steppedClock();
  let collections = 0;
  const started = node.node;
  const timer = collectWhenQuiet(stepped.clock, () => started.appliedIndex(), () => collections++);

  // Start-up counts as a spell of activity: the first quiet period collects, later ones do not.
  stepped.period();
  expect(collections).toBe(1);
  stepped.period();
  stepped.period();
  expect(collections).toBe(1);

  // Writes in every period: no collection until a period passes without one.
  for (let i = 0; i < 3; i++) {
    await db.exec('INSERT INTO t VALUES (?)', [i]);
    stepped.period();
    expect(collections).toBe(1);
  }
  stepped.period();
  expect(collections).toBe(2);
  stepped.period();
  expect(collections).toBe(2);

  timer.cancel();
  await db.exec('INSERT INTO t VALUES (99)');
  stepped.period();
  stepped.period();
  expect(stepped.cancelled()).toBe(true);
  expect(collections).toBe(2);
});

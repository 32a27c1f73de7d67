/**
 * The Node runtime's collectGarbage runs a full collection without --expose-gc: a dropped
 * buffer is gone right after (and its bytes freed as soon as V8's sweeper thread gets to them),
 * where V8's heuristics could keep it.
 */
import { expect, test } from 'vitest';
import { nodeRuntime } from '../../runtimes/node/index.ts';

test('collectGarbage frees a dropped 64 MiB buffer at once', async () => {
  const runtime = nodeRuntime();
  expect(runtime.collectGarbage).toBeTypeOf('function');
  let buffer: Uint8Array | undefined = new Uint8Array(64 * 1024 * 1024).fill(1);
  const ref = new WeakRef(buffer);
  const before = process.memoryUsage().arrayBuffers;
  buffer = undefined;
  // A WeakRef target stays alive until the current job ends.
  await new Promise((resolve) => setTimeout(resolve, 0));
  runtime.collectGarbage!();
  expect(ref.deref()).toBeUndefined();
  // Dead, its bytes are freed by V8's array buffer sweeper, on a thread of its own: on a busy
  // machine a moment later (without the collection, not for as long as V8's heuristics like).
  await expect.poll(() => before - process.memoryUsage().arrayBuffers, { timeout: 10_000, interval: 20 }).toBeGreaterThan(60 * 1024 * 1024);
});

/**
 * The Node runtime's collectGarbage runs a full collection without --expose-gc: a dropped
 * buffer is gone (and its bytes freed) right after, where V8's heuristics could keep it.
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
  expect(before - process.memoryUsage().arrayBuffers).toBeGreaterThan(60 * 1024 * 1024);
});

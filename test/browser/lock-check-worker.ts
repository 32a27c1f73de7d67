/**
 * Bundled and run in Chromium module workers by storage.test.ts: one worker holds a node's OPFS
 * files open ("hold"), another opens the same directory ("read") and reports what it got, so the
 * test can terminate the holder and see the reader wait for the lock instead of failing.
 */
import { OpfsStorage } from '../../runtimes/browser/opfs-storage.ts';

type Request = { op: 'hold'; dir: string } | { op: 'read'; dir: string; lockWaitMs: number };

onmessage = async (event: MessageEvent<Request>) => {
  const request = event.data;
  try {
    if (request.op === 'hold') {
      const storage = await OpfsStorage.open(request.dir);
      await storage.append('seg', new TextEncoder().encode('held'));
      await storage.sync('seg');
      postMessage({ held: true });
      return;
    }
    // One attempt that does not wait, so that the page knows the lock is held while we wait.
    let first: string | null = null;
    try {
      const probe = await OpfsStorage.open(request.dir, { lockWaitMs: 0 });
      await probe.read('seg');
      await probe.close();
    } catch (error) {
      first = (error as { code?: string }).code ?? 'unknown';
    }
    postMessage({ firstCode: first });
    const storage = await OpfsStorage.open(request.dir, { lockWaitMs: request.lockWaitMs });
    const bytes = await storage.read('seg');
    await storage.close();
    postMessage({ text: bytes ? new TextDecoder().decode(bytes) : null });
  } catch (error) {
    postMessage({ code: (error as { code?: string }).code ?? null, message: (error as Error).message });
  }
};

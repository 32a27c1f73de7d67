/**
 * A full garbage collection on request. V8 frees a large array buffer only when a major
 * collection finds it dead, and its heuristics leave hundreds of MiB of dropped snapshot bytes
 * resident for long; the node asks for a collection right after it drops them (docs/memory.md).
 * `gc` is exposed to a new context once the flag is set, without starting Node with --expose-gc.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | null | undefined;

export function collectGarbage(): void {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('gc');
      collect = typeof gc === 'function' ? (gc as () => void) : null;
    } catch {
      collect = null;
    }
  }
  collect?.();
}

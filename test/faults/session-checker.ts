/**
 * Session guarantees of the register workload's session clients (docs/reads.md): each of their
 * reads returns a value some write actually wrote (or null before any), never a value certainly
 * older than the client's own last acknowledged write or than what it already read on that key.
 * "Certainly older": the write of u completed before the write of v was invoked, and every
 * value is written once, so no state after v holds u.
 */
import type { Op } from './history.ts';

type RegisterOp = Extract<Op, { workload: 'register' }>;

interface Written {
  invokeMs: number;
  completeMs: number;
}

export function checkSessionReads(ops: readonly Op[], sessionClients: ReadonlySet<number>): { ok: boolean; reads: number; problems: string[] } {
  const written = new Map<number, Written>();
  for (const op of ops) {
    if (op.workload !== 'register' || op.f === 'read' || op.status === 'fail') continue;
    // An indeterminate write may have happened: it completes "never" (Infinity).
    written.set(op.value, { invokeMs: op.invokeMs, completeMs: op.status === 'ok' ? op.completeMs : Infinity });
  }
  const problems: string[] = [];
  let reads = 0;
  /** Per client and key: the newest value the client knows is in the state (own write or read). */
  const floor = new Map<string, number>();
  const ordered = ops.filter((op): op is RegisterOp => op.workload === 'register' && sessionClients.has(op.client)).sort((a, b) => a.invokeMs - b.invokeMs);
  for (const op of ordered) {
    const slot = `${op.client}/${op.key}`;
    if (op.f === 'read') {
      if (op.status !== 'ok') continue;
      reads++;
      const known = floor.get(slot);
      const value = op.value ?? null;
      if (value === null) {
        if (known !== undefined) problems.push(`session client ${op.client} read null on key ${op.key} after it knew value ${known} (#${op.index})`);
        continue;
      }
      const write = written.get(value);
      if (!write) {
        problems.push(`session client ${op.client} read value ${value} on key ${op.key} that no write wrote (#${op.index})`);
        continue;
      }
      if (known !== undefined && known !== value) {
        const knownWrite = written.get(known)!;
        if (write.completeMs < knownWrite.invokeMs) {
          problems.push(`stale session read: client ${op.client} read ${value} on key ${op.key} after it knew the newer ${known} (#${op.index})`);
          continue;
        }
      }
      floor.set(slot, value);
    } else if (op.status === 'ok' && (op.f === 'write' || op.applied === true)) {
      floor.set(slot, op.value);
    }
  }
  return { ok: problems.length === 0, reads, problems };
}

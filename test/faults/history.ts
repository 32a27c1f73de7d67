/**
 * The history of a run: every operation a client invoked, with its real-time interval and its
 * outcome. `ok`: it happened and returned what is recorded. `fail`: it certainly did not take
 * effect. `info`: it may or may not have taken effect (indeterminate), so checkers must allow both.
 */
import { ConnectionError, DqliteError, IndeterminateError, NoLeaderError, ClientError } from '../../runtimes/node/client.ts';

export type OpStatus = 'pending' | 'ok' | 'fail' | 'info';

/** A list-append micro-operation: append `value` to list `key`, or read list `key`. */
export type MicroOp = { f: 'append'; key: number; value: number } | { f: 'read'; key: number; value?: number[] };

export type OpBody =
  | { workload: 'register'; f: 'read'; key: number; value?: number | null }
  | { workload: 'register'; f: 'write'; key: number; value: number }
  | { workload: 'register'; f: 'cas'; key: number; expected: number; value: number; applied?: boolean }
  | { workload: 'list-append'; f: 'txn'; micro: MicroOp[] }
  | { workload: 'bank'; f: 'transfer'; from: number; to: number; amount: number; applied?: boolean }
  | { workload: 'bank'; f: 'read'; balances?: number[] };

export type Op = OpBody & {
  index: number;
  /** Client number; the final reads after healing use -1. */
  client: number;
  status: OpStatus;
  /** Milliseconds since the run started (monotonic clock). */
  invokeMs: number;
  /** Infinity while pending, and for `info` operations (they may take effect at any later time). */
  completeMs: number;
  error?: string;
};

/** Bound on the operations one run records; a longer run is a configuration error. */
export const HISTORY_OPS_MAX = 2_000_000;

export class History {
  readonly ops: Op[] = [];
  private readonly startMs = performance.now();

  nowMs(): number {
    return performance.now() - this.startMs;
  }

  invoke<B extends OpBody>(client: number, body: B): B & Op {
    if (this.ops.length >= HISTORY_OPS_MAX) throw new Error(`history holds ${HISTORY_OPS_MAX} operations: shorten the run`);
    const op = { ...body, index: this.ops.length, client, status: 'pending', invokeMs: this.nowMs(), completeMs: Infinity } as B & Op;
    this.ops.push(op);
    return op;
  }

  ok(op: Op): void {
    op.status = 'ok';
    op.completeMs = this.nowMs();
  }

  /** Records a failed call: `fail` when it certainly did not apply, else `info`. */
  failed(op: Op, error: unknown, certainlyNotApplied = false): void {
    op.status = certainlyNotApplied || isDefiniteFailure(error) ? 'fail' : 'info';
    op.completeMs = op.status === 'fail' ? this.nowMs() : Infinity;
    op.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  }

  counts(): { ops: number; ok: number; fail: number; info: number } {
    let ok = 0;
    let fail = 0;
    let info = 0;
    for (const op of this.ops) {
      if (op.status === 'ok') ok++;
      else if (op.status === 'fail') fail++;
      else info++;
    }
    return { ops: this.ops.length, ok, fail, info };
  }

  toJSON(): unknown[] {
    return this.ops.map((op) => ({ ...op, completeMs: Number.isFinite(op.completeMs) ? op.completeMs : null }));
  }
}

/**
 * Whether an error proves the operation had no effect. Anything not known to be definite is
 * treated as indeterminate: a checker may then accept both outcomes, never wrongly reject.
 */
export function isDefiniteFailure(error: unknown): boolean {
  if (error instanceof IndeterminateError) return false;
  if (error instanceof NoLeaderError || error instanceof ClientError) return true;
  if (error instanceof ConnectionError) return !error.sent;
  if (error instanceof DqliteError) {
    // Leadership lost (10506) or a commit timeout: the write may still commit.
    return !error.isLeadershipLost;
  }
  return false;
}

/**
 * The one execution loop of a database on this node: tasks run one at a time, in arrival order,
 * on the database's single SQLite connection. While a client holds an open transaction, only that
 * client's tasks run; the others wait their turn, at most `busyTimeoutMs`, then fail SQLITE_BUSY
 * as SQLite itself would ("database is locked").
 */
import { NodeError, SQLITE_BUSY } from './errors.ts';

/** Who submits work: one per client connection (gateway). */
export type OwnerId = number;

interface Task {
  owner: OwnerId;
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  enqueuedAtMs: number;
}

export interface DatabaseLoopOptions {
  busyTimeoutMs: number;
  queueLengthMax: number;
  nowMs: () => number;
  /** Whether the connection is inside a transaction after a task ran. */
  inTransaction: () => boolean;
  setTimer: (callback: () => void, delayMs: number) => { cancel(): void };
}

export class DatabaseLoop {
  private readonly queue: Task[] = [];
  private owner: OwnerId | undefined;
  private paused = false;
  private busyTimer: { cancel(): void } | undefined;
  private draining = false;

  constructor(private readonly options: DatabaseLoopOptions) {}

  /** Queues `run`; it executes when its turn comes and no other client holds a transaction. */
  submit<T>(owner: OwnerId, run: () => T): Promise<T> {
    if (this.queue.length >= this.options.queueLengthMax) {
      return Promise.reject(
        new NodeError(SQLITE_BUSY, `database is busy: ${this.queue.length} statements already queued, retry later`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ owner, run, resolve: resolve as (v: unknown) => void, reject, enqueuedAtMs: this.options.nowMs() });
      this.drain();
    });
  }

  /** The client holding the open transaction, if any. */
  get transactionOwner(): OwnerId | undefined {
    return this.owner;
  }

  /** The connection was reset (abort, restore): nobody holds a transaction any more. */
  clearOwner(): void {
    this.owner = undefined;
    this.drain();
  }

  /** Holds every task (a checkpoint is in flight); `resume` lets them run again. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.drain();
  }

  /** Drops a departed client's queued tasks; the caller rolls back its open transaction. */
  forget(owner: OwnerId): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const task = this.queue[i]!;
      if (task.owner === owner) {
        this.queue.splice(i, 1);
        task.reject(new NodeError(SQLITE_BUSY, 'client disconnected'));
      }
    }
    if (this.owner === owner) this.owner = undefined;
    this.drain();
  }

  private drain(): void {
    // A task may end in a call back here (an abort clears the owner): running the next task
    // inside it would let the outer loop give that task's transaction to the wrong owner.
    if (this.draining) return;
    this.draining = true;
    try {
      this.runQueued();
    } finally {
      this.draining = false;
    }
    this.expireWaiters();
  }

  private runQueued(): void {
    while (!this.paused) {
      const index = this.queue.findIndex((t) => this.owner === undefined || t.owner === this.owner);
      if (index < 0) break;
      const task = this.queue.splice(index, 1)[0]!;
      try {
        task.resolve(task.run());
      } catch (error) {
        task.reject(error);
      }
      this.owner = this.options.inTransaction() ? task.owner : undefined;
    }
  }

  private expireWaiters(): void {
    this.busyTimer?.cancel();
    this.busyTimer = undefined;
    if (this.queue.length === 0) return;
    const now = this.options.nowMs();
    const timeoutMs = this.options.busyTimeoutMs;
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const task = this.queue[i]!;
      if (now - task.enqueuedAtMs >= timeoutMs) {
        this.queue.splice(i, 1);
        task.reject(
          new NodeError(
            SQLITE_BUSY,
            `database is locked: another client's transaction held it for more than ${timeoutMs} ms`,
          ),
        );
      }
    }
    if (this.queue.length === 0) return;
    const oldest = Math.min(...this.queue.map((t) => t.enqueuedAtMs));
    this.busyTimer = this.options.setTimer(() => this.drain(), Math.max(1, oldest + timeoutMs - now));
  }
}

/**
 * The two faces of a live query for its user: an async iterator of results (`for await`), and
 * `onChange(callback)` returning an unsubscribe. Both sit on a `LiveSource` (the node's own
 * LiveQueries, or a subscription over the wire), started on first use.
 *
 * The iterator keeps only the newest result its consumer has not taken yet: a live query says
 * what the data is now, so a slow consumer skips intermediate results rather than queueing them.
 */

export interface LiveSink<R> {
  result(result: R): void;
  /** The subscription ended with `error`; nothing follows. */
  error(error: Error): void;
}

/** Starts one subscription delivering to `sink`; resolves with its stop once the first result was delivered. */
export type LiveSource<R> = (sink: LiveSink<R>) => Promise<() => void>;

export class LiveQuery<R> implements AsyncIterableIterator<R> {
  private stop: (() => void) | undefined;
  private starting: Promise<void> | undefined;
  private pending: R | undefined;
  private hasPending = false;
  private failure: Error | undefined;
  private waiter: { resolve(result: IteratorResult<R>): void; reject(error: Error): void } | undefined;
  private done = false;

  constructor(private readonly source: LiveSource<R>) {}

  /**
   * Calls `callback` with the first result, then with every result that differs from the last;
   * `onError` when the subscription ends with an error. Returns the unsubscribe. Each call is a
   * subscription of its own, independent of the iterator.
   */
  onChange(callback: (result: R) => void, onError: (error: Error) => void = () => undefined): () => void {
    let stopped = false;
    let stop: (() => void) | undefined;
    this.source({
      result: (result) => {
        if (!stopped) callback(result);
      },
      error: (error) => {
        if (!stopped) onError(error);
      },
    }).then(
      (stopSource) => {
        if (stopped) stopSource();
        else stop = stopSource;
      },
      (error: unknown) => {
        if (!stopped) onError(error instanceof Error ? error : new Error(String(error)));
      },
    );
    return () => {
      if (stopped) return;
      stopped = true;
      stop?.();
    };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<R>> {
    if (this.done) return { done: true, value: undefined };
    this.starting ??= this.start();
    await this.starting;
    if (this.hasPending) {
      const value = this.pending as R;
      this.pending = undefined;
      this.hasPending = false;
      return { done: false, value };
    }
    if (this.failure) return this.end(this.failure);
    if (this.done) return { done: true, value: undefined };
    return new Promise<IteratorResult<R>>((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Stops the subscription (`break` out of `for await` calls it). */
  async return(): Promise<IteratorResult<R>> {
    this.close();
    return { done: true, value: undefined };
  }

  /** Stops the iterator's subscription; a waiting `next()` ends. */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.stop?.();
    this.stop = undefined;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve({ done: true, value: undefined });
  }

  private async start(): Promise<void> {
    try {
      const stop = await this.source({
        result: (result) => this.deliver(result),
        error: (error) => this.fail(error),
      });
      if (this.done) stop();
      else this.stop = stop;
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private deliver(result: R): void {
    if (this.done) return;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve({ done: false, value: result });
      return;
    }
    this.pending = result;
    this.hasPending = true;
  }

  private fail(error: Error): void {
    if (this.done) return;
    this.failure = error;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      this.done = true;
      this.stop?.();
      waiter.reject(error);
    }
  }

  private end(error: Error): Promise<IteratorResult<R>> {
    this.done = true;
    this.stop?.();
    return Promise.reject(error);
  }
}

/** A promise with its settle functions, for results that arrive from elsewhere (a Raft commit). */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting yet; an unobserved rejection must not crash the process.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

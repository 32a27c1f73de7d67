/**
 * A log line that may repeat at a peer's pace (a client retrying without a certificate) is
 * written at most once per interval, with the count of the ones left out.
 */
export function throttledLog<A extends unknown[]>(
  intervalMs: number,
  write: (suppressed: number, ...args: A) => void,
  nowMs: () => number = () => Date.now(),
): (...args: A) => void {
  let lastMs = -Infinity;
  let suppressed = 0;
  return (...args: A) => {
    const now = nowMs();
    if (now - lastMs < intervalMs) {
      suppressed++;
      return;
    }
    lastMs = now;
    write(suppressed, ...args);
    suppressed = 0;
  };
}

export const TLS_ERROR_LOG_INTERVAL_MS = 10_000;

/** The handshake-failure log of a TLS listener. */
export function tlsErrorLog(log: (line: string) => void): (remote: string, error: Error) => void {
  return throttledLog(TLS_ERROR_LOG_INTERVAL_MS, (suppressed: number, remote: string, error: Error) =>
    log(`TLS handshake with ${remote} failed: ${error.message}${suppressed > 0 ? ` (and ${suppressed} more since the last such line)` : ''}`),
  );
}

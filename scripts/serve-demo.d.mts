/** Serves `dir` read-only over HTTP on `host:port` (port 0 picks a free one). */
export function serveDirectory(dir: string, options?: { host?: string; port?: number }): Promise<{ url: string; close(): Promise<void> }>;

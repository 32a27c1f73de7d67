/**
 * Which paths the HTTP API answers, apart from the API itself: a host asks on every request, and
 * loads the API (src/http/cluster-node-host.ts and all it needs) only at the first that is one.
 */
export function isHttpApiPath(path: string): boolean {
  return path === '/db' || path.startsWith('/db/') || path === '/nodes' || path === '/readyz';
}

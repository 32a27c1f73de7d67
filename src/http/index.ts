/** The rqlite-compatible HTTP API (docs/http-api.md). */
export { HttpApi, isHttpApiPath, DEFAULT_DATABASE } from './router.ts';
export { httpApiFor, httpApiHostFor } from './cluster-node-host.ts';
export type { HttpApiHost, HttpApiClusterView, HttpApiMember } from './api-host.ts';
export type { HttpApiRequest, HttpApiResponse } from './request.ts';
export { JSON_BODY_BYTES_MAX } from './request.ts';
export { LOAD_BODY_BYTES_MAX } from './backup-load.ts';

/** TypeScript client for the dqlite wire protocol: works with real dqlite and with our nodes. */
export { connect, Database, Statement, Transaction, isReadOnlySql, returnsRows } from './database.ts';
export type { BeginOptions, ConnectOptions, ExecResult, Param, QueryResult, Queryable, RawQueryResult, ReadConsistency, ReadOptions } from './database.ts';
export { Cluster, connectCluster } from './cluster.ts';
export type { ClusterOptions, Member, NodeMetadata, NodeRef, RoleName } from './cluster.ts';
export type { LinkOptions } from './link.ts';
export { CONNECTION_DEFAULTS, Connection, openConnection } from './connection.ts';
export type { ConnectionOptions, RowsBatch, RowsCursor, RowsResult } from './connection.ts';
export { ClientError, ConnectionError, DqliteError, IndeterminateError, NoLeaderError } from './errors.ts';
export { ErrorCode, ValueType } from '../protocol/index.ts';
export type { FileData, TypedValue, Value } from '../protocol/index.ts';
export { byteStreamOverMessages, dialOverWebSocket } from './message-stream.ts';
export type { LiveQueryResult } from '../live/live-client.ts';
export type { LiveQuery } from '../live/live-query.ts';

/** Wire constants of the dqlite client protocol (go-dqlite 1.11.5, see PROTOCOL.md). */

/** The 8-byte word every body field is aligned to. */
export const WORD_BYTES = 8;
/** Bytes of the message header: words (u32), type (u8), schema (u8), extra (u16). */
export const HEADER_BYTES = 8;

/** Protocol version a client sends right after connecting. */
export const PROTOCOL_VERSION = 1n;
/** Version word of pre-1.0 dqlite; servers close the connection on it. */
export const PROTOCOL_VERSION_LEGACY = 0x86104dd760433fe5n;

/** Default bound on one message body; a larger `words` field is rejected before allocating. */
export const MESSAGE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
/** go-dqlite sends at most 255 parameters (schema 0 has a u8 count). */
export const PARAMS_MAX_SCHEMA0 = 255;

export const RequestType = {
  Leader: 0,
  Client: 1,
  Heartbeat: 2,
  Open: 3,
  Prepare: 4,
  Exec: 5,
  Query: 6,
  Finalize: 7,
  ExecSql: 8,
  QuerySql: 9,
  Interrupt: 10,
  Add: 12,
  Assign: 13,
  Remove: 14,
  Dump: 15,
  Cluster: 16,
  Transfer: 17,
  Describe: 18,
  Weight: 19,
} as const;
export type RequestTypeCode = (typeof RequestType)[keyof typeof RequestType];

/**
 * dqlite-wasm's extension of the protocol (docs/reads.md): request and response types dqlite
 * does not use. A client sends them only to a server whose Leader answer announced
 * `EXTENSION_READS` in the header's `extra` field, which dqlite always leaves 0.
 */
export const ExtensionRequestType = {
  /** QUERY_SQL with a consistency level, a session bookmark and a staleness bound. */
  ReadSql: 200,
  /** EXEC_SQL whose answer is preceded by the commit index of its transaction (a bookmark). */
  ExecSqlBookmarked: 201,
} as const;

export const ExtensionResponseType = {
  /** The log index an answer reflects; precedes the normal answer of an extension request. */
  Bookmark: 200,
} as const;

/** Feature bit in the `extra` header field of our Leader (Node) response. */
export const EXTENSION_READS = 0x0001;

/** Consistency levels as they travel in ReadSql; Default lets the node pick its default. */
export const ReadConsistencyCode = {
  Default: 0,
  Linearizable: 1,
  Lease: 2,
  Session: 3,
  Stale: 4,
} as const;
export type ReadConsistencyCodeValue = (typeof ReadConsistencyCode)[keyof typeof ReadConsistencyCode];

export const ResponseType = {
  Failure: 0,
  Node: 1,
  Welcome: 2,
  Nodes: 3,
  Db: 4,
  Stmt: 5,
  Result: 6,
  Rows: 7,
  Empty: 8,
  Files: 9,
  Metadata: 10,
} as const;
export type ResponseTypeCode = (typeof ResponseType)[keyof typeof ResponseType];

/** Type codes of values in parameter and row tuples. 6, 7 and 8 are unused. */
export const ValueType = {
  Integer: 1,
  Float: 2,
  Text: 3,
  Blob: 4,
  Null: 5,
  UnixTime: 9,
  Iso8601: 10,
  Boolean: 11,
} as const;
export type ValueTypeCode = (typeof ValueType)[keyof typeof ValueType];

const VALUE_TYPE_CODES: ReadonlySet<number> = new Set(Object.values(ValueType));
export function isValueTypeCode(code: number): code is ValueTypeCode {
  return VALUE_TYPE_CODES.has(code);
}

/** Node roles as they travel in Nodes responses and Assign requests. */
export const Role = {
  Voter: 0,
  StandBy: 1,
  Spare: 2,
} as const;
export type RoleCode = (typeof Role)[keyof typeof Role];

export function roleName(role: number): 'voter' | 'stand-by' | 'spare' | 'unknown' {
  switch (role) {
    case Role.Voter:
      return 'voter';
    case Role.StandBy:
      return 'stand-by';
    case Role.Spare:
      return 'spare';
    default:
      return 'unknown';
  }
}

/** Cluster request formats: 0 omits the role in each node of the Nodes response. */
export const ClusterFormat = { V0: 0, V1: 1 } as const;

/** Last word of a Rows body: DONE ends the result set, PART says another Rows message follows. */
export const ROWS_DONE_BYTE = 0xff;
export const ROWS_PART_BYTE = 0xee;

/** SQLite and dqlite result codes a client or server needs to name. */
export const ErrorCode = {
  SQLITE_ERROR: 1,
  SQLITE_BUSY: 5,
  SQLITE_IOERR: 10,
  SQLITE_NOTFOUND: 12,
  SQLITE_PROTOCOL: 15,
  SQLITE_CONSTRAINT: 19,
  SQLITE_BUSY_RECOVERY: 261,
  SQLITE_BUSY_SNAPSHOT: 517,
  SQLITE_CONSTRAINT_CHECK: 275,
  SQLITE_CONSTRAINT_FOREIGNKEY: 787,
  SQLITE_CONSTRAINT_NOTNULL: 1299,
  SQLITE_CONSTRAINT_PRIMARYKEY: 1555,
  SQLITE_CONSTRAINT_UNIQUE: 2067,
  SQLITE_IOERR_NOT_LEADER: 10250,
  SQLITE_IOERR_LEADERSHIP_LOST: 10506,
  /** Before dqlite "3.32.1+replication4". */
  SQLITE_IOERR_NOT_LEADER_LEGACY: 8202,
  SQLITE_IOERR_LEADERSHIP_LOST_LEGACY: 8458,
} as const;
export const SQLITE_IOERR_NOT_LEADER = ErrorCode.SQLITE_IOERR_NOT_LEADER;
export const SQLITE_IOERR_LEADERSHIP_LOST = ErrorCode.SQLITE_IOERR_LEADERSHIP_LOST;

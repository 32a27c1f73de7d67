import { ChangeStream, type ChangesOptions } from '../live/change-feed-client.ts';
import {
  ReadConsistencyCode,
  type TypedValue,
  type Value,
  bigintToValue,
  fromTypedValue,
  toTypedValue,
  ProtocolError,
} from '../protocol/index.ts';
import type { Connection, RowsBatch, RowsCursor } from './connection.ts';
import { ClientError, ConnectionError, DqliteError, IndeterminateError } from './errors.ts';
import { Link, type LinkOptions, type Session } from './link.ts';
import { ReadLink } from './read-link.ts';
import { liveOverWire, type LiveQueryResult } from '../live/live-client.ts';
import type { LiveQuery } from '../live/live-query.ts';

/** A parameter: an application value, or a wire value with an explicit type (e.g. a float 1.0). */
export type Param = Value | TypedValue;

export interface ExecResult {
  /** Rowid of the last inserted row; a number when it is a safe integer, else a bigint. */
  lastInsertId: number | bigint;
  rowsAffected: number;
}

export interface QueryResult {
  columns: string[];
  rows: Record<string, Value>[];
}

export interface RawQueryResult {
  columns: string[];
  rows: Value[][];
}

/**
 * How fresh a read must be (docs/reads.md). `linearizable`: it sees every write acknowledged
 * before it began; `lease`: the same, answered by the leader from its lease without a round;
 * `session`: it sees this Database's own writes and never goes back in time; `stale`: the
 * replica heard from a leader within `maxStalenessMs`.
 */
export type ReadConsistency = 'linearizable' | 'lease' | 'session' | 'stale';

export interface ReadOptions {
  consistency?: ReadConsistency;
  /** Bound of the stale level, in milliseconds. Default 5000. */
  maxStalenessMs?: number;
}

export interface ConnectOptions extends LinkOptions, ReadOptions {
  /** Name of the database to open on the cluster (created on first use). */
  database: string;
  /** VFS name sent in Open; the go-dqlite driver sends "volatile". */
  vfs?: string;
  /**
   * Where reads go: `leader` (default), or `any`: the first of `servers` that answers, leader or
   * not (list the nearest first). Writes always go to the leader. With `any` the Database opens
   * without a leader. Levels other than linearizable need dqlite-wasm nodes; against real dqlite
   * every read is a leader read, which satisfies them all.
   */
  readFrom?: 'leader' | 'any';
}

const CONSISTENCY_CODES: Record<ReadConsistency, number> = {
  linearizable: ReadConsistencyCode.Linearizable,
  lease: ReadConsistencyCode.Lease,
  session: ReadConsistencyCode.Session,
  stale: ReadConsistencyCode.Stale,
};
const STALENESS_DEFAULT_MS = 5_000;

/** The session's bookmark: the highest log index any answer of this Database reflected. */
class Bookmark {
  index = 0n;
  advance(index: bigint): void {
    if (index > this.index) this.index = index;
  }
}

interface ReadLevel {
  consistency: number;
  maxStalenessMs: number;
}

function readLevel(options: ReadOptions, defaults: Required<ReadOptions>): ReadLevel {
  const consistency = options.consistency ?? defaults.consistency;
  const code = CONSISTENCY_CODES[consistency];
  if (code === undefined) {
    throw new ClientError('bad_argument', `unknown consistency "${String(consistency)}" (linearizable, lease, session or stale)`);
  }
  const maxStalenessMs = options.maxStalenessMs ?? defaults.maxStalenessMs;
  if (!Number.isSafeInteger(maxStalenessMs) || maxStalenessMs < 0) {
    throw new ClientError('bad_argument', `maxStalenessMs must be a whole number of milliseconds, got ${maxStalenessMs}`);
  }
  return { consistency: code, maxStalenessMs };
}

interface DbState {
  db: number;
}

/** Statements and queries one can run: a Database, or the handle of a transaction. */
export interface Queryable {
  exec(sql: string, params?: readonly Param[]): Promise<ExecResult>;
  query(sql: string, params?: readonly Param[]): Promise<QueryResult>;
  queryRaw(sql: string, params?: readonly Param[]): Promise<RawQueryResult>;
  prepare(sql: string): Promise<Statement>;
}

/** Runs one call on a session; Database retries across leaders, a Transaction never does. */
interface Runner {
  run<T>(what: string, mayHaveApplied: boolean, op: (session: Session<DbState>) => Promise<T>): Promise<T>;
  /** Bookmarks of this Database's answers: session reads wait for the node to have applied it. */
  readonly bookmark: Bookmark;
}

export async function connect(options: ConnectOptions): Promise<Database> {
  const database = new Database(options);
  await database.ping();
  return database;
}

/** Runs a read on `connection`: our extension at `level` when the server speaks it, else QUERY_SQL. */
async function readOn(
  connection: Connection,
  db: number,
  sql: string,
  params: TypedValue[],
  level: ReadLevel,
  bookmark: Bookmark,
): Promise<RawQueryResult> {
  if (!connection.speaksReadExtension) return toRaw(await connection.callRows({ type: 'query_sql', db, sql, params }));
  const result = await connection.callBookmarkedRows({
    type: 'read_sql',
    db,
    sql,
    params,
    consistency: level.consistency,
    bookmark: bookmark.index,
    maxStalenessMs: level.maxStalenessMs,
  });
  bookmark.advance(result.bookmark);
  return toRaw(result);
}

/** A handle on one database of a dqlite cluster, following the leader. */
export class Database implements Queryable {
  private readonly link: Link<DbState>;
  private readonly reads: ReadLink | undefined;
  private readonly runner: Runner;
  private readonly readDefaults: Required<ReadOptions>;
  private readonly bookmark = new Bookmark();
  private readonly openOn: (connection: Connection) => Promise<number>;
  /** The stops of this Database's running live subscriptions. */
  private readonly lives = new Set<() => void>();
  private readonly feeds = new Set<ChangeStream>();

  constructor(private readonly options: ConnectOptions) {
    const vfs = options.vfs ?? 'volatile';
    const open = async (connection: Connection): Promise<number> =>
      (await connection.call({ type: 'open', name: options.database, flags: 0, vfs }, 'db')).id;
    this.openOn = open;
    this.link = new Link<DbState>(options, async (connection: Connection) => ({ db: await open(connection) }));
    if (options.readFrom !== undefined && options.readFrom !== 'leader' && options.readFrom !== 'any') {
      throw new ClientError('bad_argument', `readFrom must be 'leader' or 'any', got ${String(options.readFrom)}`);
    }
    this.reads = options.readFrom === 'any' ? new ReadLink(options, open) : undefined;
    this.readDefaults = { consistency: options.consistency ?? 'linearizable', maxStalenessMs: options.maxStalenessMs ?? STALENESS_DEFAULT_MS };
    readLevel({}, this.readDefaults);
    this.runner = { run: (what, mayHaveApplied, op) => this.link.call(what, mayHaveApplied, op), bookmark: this.bookmark };
  }

  /** Connects if not connected yet: to the leader, or with `readFrom: 'any'` to the first server that answers. */
  async ping(): Promise<void> {
    if (this.reads) await this.reads.ping();
    else await this.link.call('connect', false, async () => undefined);
  }

  /** The highest log index this Database's answers reflected: what session reads wait for. */
  get sessionBookmark(): bigint {
    return this.bookmark.index;
  }

  exec(sql: string, params: readonly Param[] = []): Promise<ExecResult> {
    return execOn(this.runner, sql, params);
  }

  async query(sql: string, params: readonly Param[] = [], options: ReadOptions = {}): Promise<QueryResult> {
    return toObjects(await this.queryRaw(sql, params, options));
  }

  async queryRaw(sql: string, params: readonly Param[] = [], options: ReadOptions = {}): Promise<RawQueryResult> {
    const level = readLevel(options, this.readDefaults);
    const typed = typeParams(params);
    const reads = this.reads;
    // Only a statement that certainly writes nothing may go to any replica (and be retried).
    if (reads && isReadOnlySql(sql)) {
      const local = await reads.read(sql, async (session) =>
        // A real dqlite follower answers no reads: without our extension, read on the leader.
        session.connection.speaksReadExtension ? readOn(session.connection, session.db, sql, typed, level, this.bookmark) : undefined,
      );
      if (local) return local;
    }
    return this.runner.run(sql, !isReadOnlySql(sql), (session) =>
      readOn(session.connection, session.state.db, sql, typed, level, this.bookmark),
    );
  }

  prepare(sql: string): Promise<Statement> {
    return Statement.create(this.runner, sql);
  }

  /**
   * A live query (docs/live-queries.md): its result now, at `consistency`, then again each time
   * a committed transaction changes it, as the first of `servers` that answers sees the log
   * (the subscriber's own node: a follower, or this program's embedded node, evaluates it on
   * its own replica). Iterate it with `for await` (`break` unsubscribes), or call
   * `onChange(callback)`, which returns the unsubscribe. Needs dqlite-wasm nodes.
   */
  live(sql: string, params: readonly Param[] = [], options: ReadOptions = {}): LiveQuery<LiveQueryResult> {
    const level = readLevel(options, this.readDefaults);
    return liveOverWire(this.options, this.openOn, {
      sql,
      params: typeParams(params),
      consistency: level.consistency,
      maxStalenessMs: level.maxStalenessMs,
      bookmark: () => this.bookmark.index,
      reflected: (index) => this.bookmark.advance(index),
    }, this.lives);
  }

  /**
   * Runs a query and yields its rows batch by batch as the server sends them, so a result of any
   * size passes in bounded memory. Other calls on this Database wait until the iteration ends
   * (stopping early with `break` interrupts the query). Only opening the query is retried.
   */
  async *stream(sql: string, params: readonly Param[] = []): AsyncGenerator<QueryResult, void, undefined> {
    const typed = typeParams(params);
    const release = await this.link.acquire();
    try {
      const opened = await this.link.callUnlocked(sql, !isReadOnlySql(sql), (session) => openCursor(session, sql, typed));
      yield* drainCursor(opened);
    } finally {
      release();
    }
  }

  /**
   * Runs `work` inside BEGIN IMMEDIATE ... COMMIT on one connection; ROLLBACK when it throws. Other calls
   * on this Database wait until it ends, so inside `work` use only `tx`, never this Database.
   * A transaction is not retried: if the leader changes midway, the error reaches the caller.
   * A lost connection during COMMIT is an IndeterminateError.
   */
  async transaction<T>(work: (tx: Transaction) => Promise<T>, options: BeginOptions = {}): Promise<T> {
    // IMMEDIATE unless asked otherwise: the transaction holds the database from its start, so its
    // reads and writes are serialized with other writers and it never fails SQLITE_BUSY_SNAPSHOT midway.
    const tx = await this.begin({ behavior: 'immediate', ...options });
    let result: T;
    try {
      result = await work(tx);
    } catch (error) {
      await tx.rollback();
      throw error;
    }
    await tx.commit();
    return result;
  }

  /**
   * Opens a transaction on one connection and returns its handle; end it with `commit()` or
   * `rollback()`. Until then every other call on this Database waits, so a handle that is never
   * ended blocks the Database: prefer `transaction(work)` unless a driver needs the two steps.
   */
  async begin(options: BeginOptions = {}): Promise<Transaction> {
    const sql = beginSql(options.behavior);
    const release = await this.link.acquire();
    try {
      const session = await this.link.callUnlocked(sql, false, async (s) => {
        await s.connection.call({ type: 'exec_sql', db: s.state.db, sql, params: [] }, 'result');
        return s;
      });
      return new Transaction(session, { release, dropSession: () => this.link.dropSession() }, this.bookmark);
    } catch (error) {
      release();
      throw error;
    }
  }

  /**
   * The committed transactions of this database, in log order, as an async iterator (change
   * feed, src/live/change-feed-client.ts): from `since` (an event's index) or from now, from
   * the first of `servers` that serves it, resuming by itself after a disconnect.
   */
  changes(options: ChangesOptions = {}): ChangeStream {
    const o = this.options;
    const feed = new ChangeStream(
      {
        database: o.database,
        servers: o.servers,
        dial: o.dial,
        ...(o.dialTimeoutMs !== undefined && { dialTimeoutMs: o.dialTimeoutMs }),
        ...(o.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
        ...(o.messageBytesMax !== undefined && { messageBytesMax: o.messageBytesMax }),
        ...(o.backoffBaseMs !== undefined && { backoffBaseMs: o.backoffBaseMs }),
        ...(o.backoffMaxMs !== undefined && { backoffMaxMs: o.backoffMaxMs }),
      },
      options,
      (closed) => this.feeds.delete(closed),
    );
    this.feeds.add(feed);
    return feed;
  }

  close(): Promise<void> {
    this.link.close();
    this.reads?.close();
    for (const stop of [...this.lives]) stop();
    for (const feed of [...this.feeds]) feed.close();
    return Promise.resolve();
  }
}

export interface BeginOptions {
  /** SQLite's BEGIN DEFERRED (the default), IMMEDIATE or EXCLUSIVE. */
  behavior?: 'deferred' | 'immediate' | 'exclusive';
}

const BEHAVIORS = ['deferred', 'immediate', 'exclusive'] as const;

function beginSql(behavior: BeginOptions['behavior']): string {
  if (behavior === undefined) return 'BEGIN';
  if (!BEHAVIORS.includes(behavior)) {
    throw new ClientError('bad_argument', `unknown transaction behavior "${String(behavior)}" (${BEHAVIORS.join(', ')})`);
  }
  return `BEGIN ${behavior.toUpperCase()}`;
}

/** What a Transaction needs from its Database to end: give the link back, or drop a broken connection. */
interface TransactionOwner {
  release(): void;
  dropSession(): void;
}

/**
 * An open transaction on one connection (from `Database.begin` or inside `Database.transaction`).
 * Its statements never move to another connection: if the connection fails they fail.
 */
export class Transaction implements Queryable {
  private readonly runner: Runner;
  private readonly session: Session<DbState>;
  private readonly owner: TransactionOwner;
  private readonly bookmark: Bookmark;
  private ended = false;

  /** @internal Use Database.begin or Database.transaction. */
  constructor(session: Session<DbState>, owner: TransactionOwner, bookmark: Bookmark) {
    this.session = session;
    this.owner = owner;
    this.bookmark = bookmark;
    this.runner = {
      run: (_what, _mayHaveApplied, op) => {
        if (this.ended) return Promise.reject(new ClientError('closed', 'the transaction has ended'));
        return op(session);
      },
      bookmark,
    };
  }

  /** Whether commit or rollback was called. */
  get isEnded(): boolean {
    return this.ended;
  }

  exec(sql: string, params: readonly Param[] = []): Promise<ExecResult> {
    return execOn(this.runner, sql, params);
  }

  async query(sql: string, params: readonly Param[] = []): Promise<QueryResult> {
    return toObjects(await this.queryRaw(sql, params));
  }

  queryRaw(sql: string, params: readonly Param[] = []): Promise<RawQueryResult> {
    return queryOn(this.runner, sql, params);
  }

  prepare(sql: string): Promise<Statement> {
    return Statement.create(this.runner, sql);
  }

  /** Like `Database.stream`, inside the transaction. */
  async *stream(sql: string, params: readonly Param[] = []): AsyncGenerator<QueryResult, void, undefined> {
    const typed = typeParams(params);
    const opened = await this.runner.run(sql, true, (session) => openCursor(session, sql, typed));
    yield* drainCursor(opened);
  }

  /**
   * COMMIT. A COMMIT that fails for a reason SQLite reports (a deferred constraint) is rolled
   * back and rethrown; a lost connection or leadership during COMMIT is an IndeterminateError.
   */
  async commit(): Promise<void> {
    if (this.ended) throw new ClientError('closed', 'the transaction has ended');
    this.ended = true;
    try {
      await this.send('COMMIT');
    } catch (error) {
      const mayHaveCommitted =
        (error instanceof ConnectionError && error.sent) || (error instanceof DqliteError && error.isLeadershipLost);
      if (mayHaveCommitted) {
        this.owner.dropSession();
        throw new IndeterminateError('COMMIT', { cause: error });
      }
      await this.rollbackQuietly();
      throw error;
    } finally {
      this.owner.release();
    }
  }

  /** ROLLBACK; does nothing when the transaction has already ended. */
  async rollback(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    try {
      await this.rollbackQuietly();
    } finally {
      this.owner.release();
    }
  }

  private async rollbackQuietly(): Promise<void> {
    try {
      await this.send('ROLLBACK');
    } catch (error) {
      // A failure answer means there was nothing to roll back (SQLite or the node already did,
      // e.g. after a lost leadership); the connection is fine. Otherwise drop it: the server
      // rolls back a transaction whose connection goes away.
      if (!(error instanceof DqliteError)) this.owner.dropSession();
    }
  }

  private async send(sql: string): Promise<void> {
    await execOnSession(this.session, sql, [], this.bookmark);
  }
}

/** A prepared statement; re-prepared transparently after the client moved to a new leader. */
export class Statement {
  readonly sql: string;
  private readonly runner: Runner;
  private prepared: { generation: number; connection: Connection; db: number; id: number; paramCount: number } | undefined;
  private closed = false;

  private constructor(runner: Runner, sql: string) {
    this.runner = runner;
    this.sql = sql;
  }

  /** @internal Use Database.prepare or Transaction.prepare. */
  static async create(runner: Runner, sql: string): Promise<Statement> {
    const statement = new Statement(runner, sql);
    await runner.run(sql, false, (session) => statement.ensurePrepared(session));
    return statement;
  }

  /** Number of parameters SQLite found in the statement. */
  get paramCount(): number {
    return this.prepared?.paramCount ?? 0;
  }

  private async ensurePrepared(session: Session<DbState>): Promise<number> {
    if (this.closed) throw new ClientError('closed', 'the statement is closed');
    if (this.prepared && this.prepared.generation === session.generation) return this.prepared.id;
    const response = await session.connection.call({ type: 'prepare', db: session.state.db, sql: this.sql }, 'stmt');
    this.prepared = {
      generation: session.generation,
      connection: session.connection,
      db: response.db,
      id: response.id,
      paramCount: response.paramCount,
    };
    return response.id;
  }

  private checkArity(params: readonly Param[]): void {
    if (this.prepared && params.length !== this.prepared.paramCount) {
      throw new ClientError('bad_argument', `the statement takes ${this.prepared.paramCount} parameters, got ${params.length}`);
    }
  }

  async exec(params: readonly Param[] = []): Promise<ExecResult> {
    const typed = typeParams(params);
    return this.runner.run(this.sql, true, async (session) => {
      const id = await this.ensurePrepared(session);
      this.checkArity(params);
      const result = await session.connection.call({ type: 'exec', db: session.state.db, stmt: id, params: typed }, 'result');
      return toExecResult(result);
    });
  }

  async query(params: readonly Param[] = []): Promise<QueryResult> {
    return toObjects(await this.queryRaw(params));
  }

  async queryRaw(params: readonly Param[] = []): Promise<RawQueryResult> {
    const typed = typeParams(params);
    return this.runner.run(this.sql, !isReadOnlySql(this.sql), async (session) => {
      const id = await this.ensurePrepared(session);
      this.checkArity(params);
      return toRaw(await session.connection.callRows({ type: 'query', db: session.state.db, stmt: id, params: typed }));
    });
  }

  /** Finalizes the statement on the server (if its connection is still open). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const prepared = this.prepared;
    this.prepared = undefined;
    if (!prepared || prepared.connection.closed) return;
    try {
      await prepared.connection.call({ type: 'finalize', db: prepared.db, stmt: prepared.id }, 'empty');
    } catch {
      // The statement dies with its connection anyway.
    }
  }
}

function typeParams(params: readonly Param[]): TypedValue[] {
  try {
    return params.map((param) => toTypedValue(param));
  } catch (error) {
    if (error instanceof ProtocolError) throw new ClientError('bad_argument', error.message, { cause: error });
    throw error;
  }
}

async function execOn(runner: Runner, sql: string, params: readonly Param[]): Promise<ExecResult> {
  const typed = typeParams(params);
  return runner.run(sql, true, async (session) => toExecResult(await execOnSession(session, sql, typed, runner.bookmark)));
}

/** EXEC_SQL, or our bookmarked variant when the server speaks it (the bookmark feeds session reads). */
async function execOnSession(
  session: Session<DbState>,
  sql: string,
  params: TypedValue[],
  bookmark: Bookmark,
): Promise<{ lastInsertId: bigint; rowsAffected: bigint }> {
  const { connection } = session;
  const db = session.state.db;
  if (!connection.speaksReadExtension) return connection.call({ type: 'exec_sql', db, sql, params }, 'result');
  const answer = await connection.callBookmarked({ type: 'exec_sql_bookmarked', db, sql, params }, 'result');
  bookmark.advance(answer.bookmark);
  return answer.response;
}

async function queryOn(runner: Runner, sql: string, params: readonly Param[]): Promise<RawQueryResult> {
  const typed = typeParams(params);
  return runner.run(sql, !isReadOnlySql(sql), async (session) =>
    toRaw(await session.connection.callRows({ type: 'query_sql', db: session.state.db, sql, params: typed })),
  );
}

interface OpenedCursor {
  cursor: RowsCursor;
  first: RowsBatch | undefined;
}

/** Sends the query and waits for its first batch, so errors in the SQL surface (and retry) here. */
async function openCursor(session: Session<DbState>, sql: string, params: TypedValue[]): Promise<OpenedCursor> {
  const cursor = await session.connection.openRows({ type: 'query_sql', db: session.state.db, sql, params });
  try {
    return { cursor, first: await cursor.next() };
  } catch (error) {
    await cursor.close();
    throw error;
  }
}

async function* drainCursor({ cursor, first }: OpenedCursor): AsyncGenerator<QueryResult, void, undefined> {
  try {
    for (let batch = first; batch !== undefined; batch = await cursor.next()) {
      if (batch.rows.length > 0) yield toObjects(toRaw(batch));
    }
  } finally {
    await cursor.close();
  }
}

function toExecResult(result: { lastInsertId: bigint; rowsAffected: bigint }): ExecResult {
  return { lastInsertId: bigintToValue(result.lastInsertId), rowsAffected: Number(result.rowsAffected) };
}

function toRaw(result: { columns: string[]; rows: TypedValue[][] }): RawQueryResult {
  return { columns: result.columns, rows: result.rows.map((row) => row.map(fromTypedValue)) };
}

function toObjects(raw: RawQueryResult): QueryResult {
  return {
    columns: raw.columns,
    rows: raw.rows.map((row) => {
      const record: Record<string, Value> = {};
      raw.columns.forEach((column, i) => {
        record[column] = row[i] ?? null;
      });
      return record;
    }),
  };
}

/**
 * Whether a query certainly writes nothing, so it may be repeated after a lost response.
 * Deliberately narrow: anything else (RETURNING, PRAGMA with arguments, ...) counts as a write.
 */
export function isReadOnlySql(sql: string): boolean {
  const text = sql.replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, ' ').trim().toUpperCase();
  if (!/^(SELECT|VALUES|EXPLAIN|WITH)\b/.test(text)) return false;
  return !/\b(INSERT|UPDATE|DELETE|REPLACE|RETURNING|CREATE|DROP|ALTER|ATTACH|DETACH|VACUUM|REINDEX)\b/.test(text);
}

/**
 * Whether a statement yields rows, so it should run as a query rather than an exec (which
 * reports rows affected and the last insert id instead): SELECT, VALUES, PRAGMA, EXPLAIN, a
 * WITH that only reads, and anything with RETURNING. String literals and comments are ignored.
 */
export function returnsRows(sql: string): boolean {
  const text = sql
    .replace(/--[^\n]*|\/\*[\s\S]*?\*\/|'(?:[^']|'')*'|"(?:[^"]|"")*"/g, ' ')
    .trim()
    .toUpperCase();
  if (/^(SELECT|VALUES|PRAGMA|EXPLAIN)\b/.test(text)) return true;
  if (/\bRETURNING\b/.test(text)) return true;
  return /^WITH\b/.test(text) && !/\b(INSERT|UPDATE|DELETE|REPLACE)\b/.test(text);
}

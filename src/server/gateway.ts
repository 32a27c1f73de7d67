/**
 * One client connection speaking the dqlite wire protocol: reads requests in order, runs them on
 * the database loops, answers each with exactly one response (or several Rows batches).
 */
import type { Statement } from '../../wasm/index.ts';
import {
  EXTENSION_LIVE_QUERIES,
  EXTENSION_READS,
  ErrorCode,
  FrameReader,
  ProtocolError,
  RowsBatcher,
  decodeRequest,
  encodeResponse,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_LEGACY,
  ReadConsistencyCode,
  ValueType,
  type Request,
  type Response,
  type TypedValue,
} from '../protocol/index.ts';
import type { Role } from '../raft/index.ts';
import type { ByteStream } from '../runtime.ts';
import { NodeError, notLeader, SQLITE_ERROR, SQLITE_FULL, SQLITE_MISUSE, SQLITE_NOTFOUND, SQLITE_RANGE, SQLITE_TOOBIG } from '../fsm/errors.ts';
import type { ReplicatedDatabase } from '../fsm/replicated-database.ts';
import type { Limits } from '../limits.ts';
import { administer } from './admin-requests.ts';
import { isDeferredBegin, isTransactionEnd } from './deferred-begin.ts';
import type { GatewayHost } from './gateway-host.ts';
import type { ReadConsistency, ReadLevel } from './read-path.ts';
import { concatBytes } from '../util/bytes.ts';
import { encodeLiveResult } from '../live/live-wire.ts';
import { bindValue, rowToTypedValues } from './value-mapping.ts';
import { isChangeRequest } from '../protocol/change-requests.ts';
import { routeChangeRequest, type ChangeSubscription } from '../live/change-feed-server.ts';

/**
 * A prepared statement. A read-only one that returns rows is compiled on the read view and runs
 * there, past the execution loop; its loop-side twin is compiled only when needed (the client
 * runs it inside its own transaction, or with EXEC).
 */
interface PreparedStatement {
  db: ReplicatedDatabase;
  sql: string;
  parameterCount: number;
  statement: Statement | undefined;
  view: Statement | undefined;
}

/** SQLite's extended code for a read snapshot that is no longer the latest when writing. */
const SQLITE_BUSY_SNAPSHOT = 517;

const CONSISTENCY_BY_CODE: Record<number, ReadConsistency> = {
  [ReadConsistencyCode.Linearizable]: 'linearizable',
  [ReadConsistencyCode.Lease]: 'lease',
  [ReadConsistencyCode.Session]: 'session',
  [ReadConsistencyCode.Stale]: 'stale',
};
const CODE_BY_ROLE: Record<Role, number> = { voter: 0, standby: 1, spare: 2 };

export class Gateway {
  private readonly reader: FrameReader;
  private readonly limits: Readonly<Limits>;
  private readonly queue: Uint8Array[] = [];
  /** When the request now being handled was read, and the entry its answer waits for (write anatomy). */
  private requestReceivedMs = 0;
  private answerIndex: number | undefined;
  private busy = false;
  private closed = false;
  private readonly databases: ReplicatedDatabase[] = [];
  private readonly statements = new Map<number, PreparedStatement>();
  /**
   * Databases where this client's BEGIN is only a mark so far (deferred-begin.ts), with the
   * committed version its first read saw: its first write fails SQLITE_BUSY_SNAPSHOT when the
   * database moved since, as SQLite's WAL mode does, so a read-then-write is never lost.
   */
  private readonly deferredBegins = new Map<ReplicatedDatabase, { readVersion: number | undefined }>();
  private nextStatementId = 0;
  /** The live query this connection carries (it then carries nothing else); its unsubscribe. */
  private liveStop: (() => void) | undefined;
  /** Set once a WatchChanges request turned this connection into a change feed. */
  private changeFeed: ChangeSubscription | undefined;

  constructor(
    private readonly node: GatewayHost,
    private readonly stream: ByteStream,
    private readonly id: number,
    private readonly log: (line: string) => void,
  ) {
    this.limits = node.limits;
    this.reader = new FrameReader({
      expectVersion: true,
      acceptedVersions: [PROTOCOL_VERSION, PROTOCOL_VERSION_LEGACY],
      messageBytesMax: this.limits.clientRequestBytesMax,
    });
    stream.onData((chunk) => this.receive(chunk));
    stream.onClose(() => this.cleanUp());
    node.metrics.clientOpened();
  }

  close(): void {
    this.stream.close();
    this.cleanUp();
  }

  private receive(chunk: Uint8Array): void {
    if (this.closed) return;
    this.node.metrics.clientReceived(chunk.byteLength);
    let messages: Uint8Array[];
    try {
      messages = this.reader.feed(chunk);
    } catch (error) {
      // The byte stream is out of step: nothing later on it can be trusted.
      this.log(`client ${this.stream.remoteAddress}: ${(error as Error).message}; closing the connection`);
      if (error instanceof ProtocolError && error.code === 'too_large' && !this.busy && this.queue.length === 0) {
        // The client waits for the answer to this request: tell it why before the connection goes.
        this.stream.write(
          encodeResponse({
            type: 'failure',
            code: SQLITE_TOOBIG,
            message: `request refused: ${error.message} (clientRequestBytesMax); send smaller statements or parameters`,
          }),
        );
      }
      this.close();
      return;
    }
    this.queue.push(...messages);
    if (this.queue.length > this.limits.clientQueuedRequestsMax) {
      this.log(`client ${this.stream.remoteAddress} sent more than ${this.limits.clientQueuedRequestsMax} requests without reading answers; closing`);
      this.close();
      return;
    }
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const message = this.queue.shift()!;
        if (this.changeFeed || isChangeRequest(message)) {
          this.changeFeed = routeChangeRequest(this.changeFeed, message, this.node.changeLog?.(), this.stream);
          continue;
        }
        const startedMs = this.node.metrics.nowMs();
        this.requestReceivedMs = startedMs;
        this.answerIndex = undefined;
        let type = 'malformed';
        let responses: Uint8Array[];
        try {
          const request = decodeRequest(message, { messageBytesMax: this.limits.clientRequestBytesMax });
          type = request.type;
          responses = await this.handle(request);
          this.node.metrics.request(type, 'ok', this.node.metrics.nowMs() - startedMs);
        } catch (error) {
          responses = [this.failure(error)];
          this.node.metrics.request(type, 'error', this.node.metrics.nowMs() - startedMs);
        }
        if (this.closed) return;
        if (responses.length === 0) continue;
        // One write per answer: an extension answer's Bookmark and its result leave together.
        const answer = responses.length === 1 ? responses[0]! : concatBytes(responses);
        this.stream.write(answer);
        this.node.metrics.clientSent(answer.byteLength);
        if (this.answerIndex !== undefined) this.node.metrics.writes.answered(this.answerIndex);
      }
    } finally {
      this.busy = false;
    }
  }

  private failure(error: unknown): Uint8Array {
    let code: number = SQLITE_ERROR;
    let message = String(error);
    if (error instanceof NodeError) {
      code = error.code;
      message = error.message;
    } else if (error instanceof ProtocolError) {
      code = ErrorCode.SQLITE_PROTOCOL;
      message = `malformed request: ${error.message}`;
    } else if (error instanceof Error) {
      const sqliteCode = (error as { code?: unknown }).code;
      code = typeof sqliteCode === 'number' ? sqliteCode : SQLITE_ERROR;
      message = error.message;
      if (typeof sqliteCode === 'number' && (sqliteCode & 0xff) === SQLITE_FULL) {
        // The engine's files are bounded by databaseBytesMax; SQLite only says "full".
        message += `: the database or its WAL would exceed databaseBytesMax (${this.limits.databaseBytesMax} bytes), so the transaction was rolled back and nothing of it was replicated; split it, delete data, or start the nodes with a larger databaseBytesMax`;
      }
      if (typeof sqliteCode !== 'number') {
        // Not a SQL error: a bug or a broken invariant; keep the trace for whoever debugs it.
        this.log(`internal error answering ${this.stream.remoteAddress}: ${error.stack ?? error.message}`);
      }
    }
    return encodeResponse({ type: 'failure', code, message });
  }

  private one(response: Response, legacyLeader = false): Uint8Array[] {
    return [encodeResponse(response, { legacyLeader })];
  }

  private async handle(request: Request): Promise<Uint8Array[]> {
    if (this.liveStop) throw new NodeError(SQLITE_MISUSE, 'this connection carries a live query and answers nothing else: use another connection');
    switch (request.type) {
      case 'leader': {
        const leader = this.node.leader();
        const legacy = this.reader.version === PROTOCOL_VERSION_LEGACY;
        return [
          encodeResponse(
            { type: 'node', id: BigInt(leader?.id ?? 0), address: leader?.address ?? '' },
            // The extra header field tells our client it may send our extension requests.
            { legacyLeader: legacy, features: legacy ? 0 : EXTENSION_READS | (this.node.liveQueries ? EXTENSION_LIVE_QUERIES : 0) },
          ),
        ];
      }
      case 'client':
        return this.one({ type: 'welcome', heartbeatTimeoutMs: 15_000 });
      case 'heartbeat':
      case 'cluster':
        return [
          encodeResponse(
            {
              type: 'nodes',
              nodes: this.node.members().map((m) => ({ id: BigInt(m.id), address: m.address, role: CODE_BY_ROLE[m.role] })),
            },
            { clusterFormat: request.type === 'cluster' ? request.format : 1 },
          ),
        ];
      case 'open':
        return this.one({ type: 'db', id: this.open(request.name) });
      case 'prepare':
        return this.prepare(request.db, request.sql);
      case 'exec':
        return this.exec(request.db, request.stmt, request.params);
      case 'query':
        return this.query(request.db, request.stmt, request.params);
      case 'finalize':
        return this.finalize(request.db, request.stmt);
      case 'exec_sql':
        return this.execSql(request.db, request.sql, request.params);
      case 'query_sql':
        return this.querySql(request.db, request.sql, request.params);
      case 'read_sql':
        return this.readSql(request.db, request.sql, request.params, this.levelOf(request));
      case 'live_subscribe':
        return this.liveSubscribe(request);
      case 'exec_sql_bookmarked': {
        const answer = await this.execSql(request.db, request.sql, request.params);
        return [encodeResponse({ type: 'bookmark', index: BigInt(this.node.appliedIndex()) }), ...answer];
      }
      case 'interrupt':
        // Results are sent whole, so there is never a half-read result set to stop.
        return this.one({ type: 'empty' });
      case 'add':
      case 'assign':
      case 'remove':
      case 'transfer':
      case 'weight':
        return this.one(await administer(this.node, this.stream, request));
      case 'dump':
        return this.dump(request.name);
      case 'describe': {
        const { failureDomain, weight } = this.node.describe();
        return this.one({ type: 'metadata', failureDomain, weight });
      }
    }
  }

  // ---------------------------------------------------------------- databases and statements

  private open(name: string): number {
    if (name.length === 0) throw new NodeError(SQLITE_MISUSE, 'database name is empty');
    const existing = this.databases.findIndex((db) => db.name === name);
    if (existing >= 0) return existing;
    if (this.databases.length >= this.limits.clientDatabasesMax) {
      throw new NodeError(SQLITE_MISUSE, `a connection may open at most ${this.limits.clientDatabasesMax} databases (clientDatabasesMax)`);
    }
    this.databases.push(this.node.database(name));
    return this.databases.length - 1;
  }

  private databaseById(id: number): ReplicatedDatabase {
    const db = this.databases[id];
    if (!db) throw new NodeError(SQLITE_NOTFOUND, `no database with id ${id} is open on this connection`);
    return db;
  }

  private statementById(dbId: number, stmtId: number): PreparedStatement {
    const prepared = this.statements.get(stmtId);
    if (!prepared || prepared.db !== this.databaseById(dbId)) {
      throw new NodeError(SQLITE_NOTFOUND, `no prepared statement with id ${stmtId}`);
    }
    return prepared;
  }

  private async prepare(dbId: number, sql: string): Promise<Uint8Array[]> {
    const db = this.databaseById(dbId);
    await this.node.leaderReady();
    if (this.statements.size >= this.limits.clientStatementsMax) {
      throw new NodeError(SQLITE_MISUSE, `a connection may hold at most ${this.limits.clientStatementsMax} prepared statements (clientStatementsMax)`);
    }
    const prepared = this.compileOnView(db, sql) ?? (await this.runAsLeader(db, () => {
      const statement = compile(db, sql);
      return { db, sql, parameterCount: statement.parameterCount, statement, view: undefined };
    }));
    const id = this.nextStatementId++;
    this.statements.set(id, prepared);
    return this.one({ type: 'stmt', db: dbId, id, paramCount: prepared.parameterCount });
  }

  private async finalize(dbId: number, stmtId: number): Promise<Uint8Array[]> {
    const prepared = this.statements.get(stmtId);
    if (!prepared || prepared.db !== this.databaseById(dbId)) {
      throw new NodeError(SQLITE_NOTFOUND, `no prepared statement with id ${stmtId}`);
    }
    this.statements.delete(stmtId);
    prepared.view?.finalize();
    const statement = prepared.statement;
    if (statement) await this.run(prepared.db, () => statement.finalize());
    return this.one({ type: 'empty' });
  }

  private async exec(dbId: number, stmtId: number, params: readonly TypedValue[]): Promise<Uint8Array[]> {
    const db = this.databaseById(dbId);
    await this.node.leaderReady();
    const outcome = await this.runAsLeader(db, () => {
      const prepared = this.statementById(dbId, stmtId);
      this.beginIfDeferred(db);
      const result = runToCompletion(db, loopStatement(prepared), params);
      db.proposeCaptured(this.node);
      return { result, barrier: db.commitBarrier() };
    });
    await this.settleWrite(outcome.barrier);
    return this.one({ type: 'result', ...outcome.result });
  }

  private async execSql(dbId: number, sql: string, params: readonly TypedValue[]): Promise<Uint8Array[]> {
    const db = this.databaseById(dbId);
    await this.node.leaderReady();
    if (params.length === 0 && db.loop.transactionOwner !== this.id) {
      if (!this.deferredBegins.has(db) && isDeferredBegin(sql)) {
        this.deferredBegins.set(db, { readVersion: undefined });
        return this.one({ type: 'result', lastInsertId: 0n, rowsAffected: 0n });
      }
      if (this.deferredBegins.has(db) && isTransactionEnd(sql)) {
        // Nothing was written: there is nothing to commit or roll back.
        this.deferredBegins.delete(db);
        return this.one({ type: 'result', lastInsertId: 0n, rowsAffected: 0n });
      }
    }
    const outcome = await this.runAsLeader(db, () => {
      let result = { lastInsertId: 0n, rowsAffected: 0n };
      let rest = sql;
      let ran = 0;
      this.beginIfDeferred(db);
      try {
        for (;;) {
          // Compiled once per text: a client sends the same statement for each of its writes.
          const statement = db.engine.prepareReusable(rest);
          if (!statement) break;
          rest = statement.tail;
          try {
            result = runToCompletion(db, statement, statement.parameterCount > 0 ? params : []);
          } finally {
            db.engine.recycle(statement);
          }
          ran++;
        }
      } finally {
        // Statements that ran before a failing one committed in SQLite: they must replicate.
        db.proposeCaptured(this.node);
      }
      if (ran === 0) throw new NodeError(SQLITE_MISUSE, 'empty statement: the SQL text holds no statement');
      return { result, barrier: db.commitBarrier() };
    });
    await this.settleWrite(outcome.barrier);
    return this.one({ type: 'result', ...outcome.result });
  }

  private async query(dbId: number, stmtId: number, params: readonly TypedValue[]): Promise<Uint8Array[]> {
    const db = this.databaseById(dbId);
    const onView = this.statementById(dbId, stmtId);
    if (onView.view && db.loop.transactionOwner !== this.id) {
      const view = onView.view;
      await this.node.admitRead(this.node.defaultReadLevel);
      db.engine.readView().catchUp();
      const rows = collectRows(view, params, this.limits.clientResultBytesMax);
      this.noteDeferredRead(db);
      return rows;
    }
    await this.node.leaderReady();
    const outcome = await this.runAsLeader(db, () => {
      const prepared = this.statementById(dbId, stmtId);
      const messages = collectRows(loopStatement(prepared), params, this.limits.clientResultBytesMax);
      db.proposeCaptured(this.node);
      return { messages, barrier: db.commitBarrier() };
    });
    await this.node.readSettled(outcome.barrier);
    return outcome.messages;
  }

  private async querySql(dbId: number, sql: string, params: readonly TypedValue[]): Promise<Uint8Array[]> {
    const db = this.databaseById(dbId);
    const level = this.node.defaultReadLevel;
    // dqlite's clients find the leader; a follower answers them only at a level it can serve alone.
    const followerMayAnswer = level.consistency === 'stale' || level.consistency === 'session';
    if (this.node.isLeader() || followerMayAnswer) {
      const read = await this.readOnView(db, sql, params, level);
      if (read) return read.messages;
    }
    return this.querySqlOnLoop(db, sql, params);
  }

  /** A transaction this client began as a mark starts for real, on the loop, before its first write. */
  private beginIfDeferred(db: ReplicatedDatabase): void {
    const deferred = this.deferredBegins.get(db);
    if (!deferred) return;
    if (deferred.readVersion !== undefined) {
      const view = db.engine.readView();
      view.catchUp();
      if (view.committedVersion !== deferred.readVersion || db.pendingCount > 0) {
        throw new NodeError(
          SQLITE_BUSY_SNAPSHOT,
          'database is locked: another transaction wrote since this transaction read (SQLITE_BUSY_SNAPSHOT); roll back and retry',
        );
      }
    }
    const begin = db.engine.prepareReusable('BEGIN')!;
    try {
      runToCompletion(db, begin, []);
    } finally {
      db.engine.recycle(begin);
    }
    this.deferredBegins.delete(db);
  }

  /** A read inside a deferred transaction: its first write must find the database unchanged. */
  private noteDeferredRead(db: ReplicatedDatabase): void {
    const deferred = this.deferredBegins.get(db);
    if (deferred && deferred.readVersion === undefined) deferred.readVersion = db.engine.readView().committedVersion;
  }

  /** Our extension: a read at the client's level, answered with a bookmark, then the rows. */
  private async readSql(dbId: number, sql: string, params: readonly TypedValue[], level: ReadLevel): Promise<Uint8Array[]> {
    const db = this.databaseById(dbId);
    const read = await this.readOnView(db, sql, params, level);
    const messages = read?.messages ?? (await this.querySqlOnLoop(db, sql, params));
    return [encodeResponse({ type: 'bookmark', index: BigInt(read?.bookmark ?? this.node.appliedIndex()) }), ...messages];
  }

  /** Our live-query extension: the first result now, later ones pushed as they change (live-requests.ts). */
  private async liveSubscribe(request: Extract<Request, { type: 'live_subscribe' }>): Promise<Uint8Array[]> {
    const live = this.node.liveQueries;
    if (!live) throw new NodeError(SQLITE_ERROR, 'this node keeps no live queries');
    const db = this.databaseById(request.db);
    // A request's blobs are views of its message: a subscription, which keeps its parameters, copies them.
    const params = request.params.map((p) => (p.type === ValueType.Blob ? { type: p.type, value: p.value.slice() } : p));
    const subscription = await live.subscribe(db.name, request.sql, params, this.levelOf(request), {
      result: (result) => {
        if (this.closed) return;
        const bytes = encodeLiveResult(result);
        this.stream.write(bytes);
        this.node.metrics.clientSent(bytes.byteLength);
      },
      error: (error) => {
        this.liveStop = undefined;
        if (this.closed) return;
        this.stream.write(this.failure(error));
        this.close();
      },
    });
    if (this.closed) {
      subscription.unsubscribe();
      return [];
    }
    this.liveStop = subscription.unsubscribe;
    return [encodeLiveResult(subscription.first)];
  }

  private levelOf(request: Extract<Request, { type: 'read_sql' | 'live_subscribe' }>): ReadLevel {
    const consistency = CONSISTENCY_BY_CODE[request.consistency];
    if (!consistency) return this.node.defaultReadLevel;
    const bookmark = request.bookmark > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(request.bookmark);
    return { consistency, bookmark, maxStalenessMs: request.maxStalenessMs };
  }

  /**
   * Runs a read-only statement on the read view once `level` admits it: past the execution loop,
   * on the committed state. Undefined when the statement belongs on the loop instead: the client
   * holds a transaction (it must see its own writes), or the statement writes or returns no rows.
   */
  private async readOnView(
    db: ReplicatedDatabase,
    sql: string,
    params: readonly TypedValue[],
    level: ReadLevel,
  ): Promise<{ messages: Uint8Array[]; bookmark: number } | undefined> {
    if (db.loop.transactionOwner === this.id) return undefined;
    await this.node.admitRead(level);
    const view = db.engine.readView();
    let statement: Statement | null;
    try {
      statement = view.prepare(sql);
    } catch (error) {
      // A leader retries on its loop's connection (a TEMP table lives there) for the real answer.
      if (this.node.isLeader()) return undefined;
      throw error;
    }
    if (!statement) throw new NodeError(SQLITE_MISUSE, 'empty statement: the SQL text holds no statement');
    try {
      if (!statement.isReadonly || statement.columnNames.length === 0) {
        if (this.node.isLeader()) return undefined;
        throw notLeader(this.node.leader()?.address, 'this statement writes: send it to the leader');
      }
      const messages = collectRows(statement, params, this.limits.clientResultBytesMax);
      this.noteDeferredRead(db);
      return { messages, bookmark: this.node.appliedIndex() };
    } finally {
      statement.finalize();
    }
  }

  /** A read-only statement compiled on the read view, when this client holds no transaction. */
  private compileOnView(db: ReplicatedDatabase, sql: string): PreparedStatement | undefined {
    if (db.loop.transactionOwner === this.id) return undefined;
    let statement: Statement | null;
    try {
      statement = db.engine.readView().prepare(sql);
    } catch {
      return undefined;
    }
    if (!statement) return undefined;
    if (!statement.isReadonly || statement.columnNames.length === 0) {
      statement.finalize();
      return undefined;
    }
    return { db, sql, parameterCount: statement.parameterCount, statement: undefined, view: statement };
  }

  private async querySqlOnLoop(db: ReplicatedDatabase, sql: string, params: readonly TypedValue[]): Promise<Uint8Array[]> {
    await this.node.leaderReady();
    const outcome = await this.runAsLeader(db, () => {
      const statement = compile(db, sql);
      try {
        const messages = collectRows(statement, params, this.limits.clientResultBytesMax);
        db.proposeCaptured(this.node);
        return { messages, barrier: db.commitBarrier() };
      } finally {
        statement.finalize();
      }
    });
    await this.node.readSettled(outcome.barrier);
    return outcome.messages;
  }

  private async dump(name: string): Promise<Uint8Array[]> {
    const db = this.node.existingDatabase(name);
    if (!db) throw new NodeError(SQLITE_NOTFOUND, `no database named ${name} on this node`);
    const files = await this.run(db, () => db.engine.snapshot());
    return this.one({
      type: 'files',
      files: [
        { name, data: files.main },
        { name: `${name}-wal`, data: files.wal },
      ],
    });
  }

  /** Waits for the write to commit, timing the wait when there is one (a read-only exec has none). */
  private async settleWrite(barrier: Promise<void> | undefined): Promise<void> {
    const startedMs = this.node.metrics.nowMs();
    await this.node.writeSettled(barrier);
    if (barrier) this.node.metrics.commitWaited(this.node.metrics.nowMs() - startedMs);
  }

  /**
   * Runs `work` on the database's loop for this client. The client may have gone while this
   * request waited (for the leader to catch up, or its turn): then nothing runs, so no
   * transaction is left open in the name of a client that will never end it.
   */
  private run<T>(db: ReplicatedDatabase, work: () => T): Promise<T> {
    return db.loop.submit(this.id, () => {
      if (this.closed && !this.node.unsafe.runRequestsOfDepartedClients) {
        throw new NodeError(SQLITE_MISUSE, 'the client disconnected before its statement ran');
      }
      return work();
    });
  }

  private runAsLeader<T>(db: ReplicatedDatabase, work: () => T): Promise<T> {
    return this.run(db, () => {
      this.node.requireReadyLeader();
      const { result, index } = this.node.metrics.writes.execute(this.requestReceivedMs, work);
      if (index !== undefined) this.answerIndex = index;
      return result;
    });
  }

  private cleanUp(): void {
    if (this.closed) return;
    this.closed = true;
    this.node.metrics.clientClosed();
    this.queue.length = 0;
    this.changeFeed?.close();
    this.deferredBegins.clear();
    this.liveStop?.();
    this.liveStop = undefined;
    for (const db of this.databases) {
      if (db.loop.transactionOwner === this.id) {
        try {
          db.rollbackOpenTransaction();
        } catch (error) {
          this.log(`rolling back a departed client's transaction failed: ${(error as Error).message}`);
        }
      }
      db.loop.forget(this.id);
    }
    // The engine recompiles statements after a connection reset, so they are always ours to finalize.
    for (const prepared of this.statements.values()) {
      prepared.statement?.finalize();
      prepared.view?.finalize();
    }
    this.statements.clear();
  }
}

function compile(db: ReplicatedDatabase, sql: string): Statement {
  const statement = db.engine.prepare(sql);
  if (!statement) throw new NodeError(SQLITE_MISUSE, 'empty statement: the SQL text holds no statement');
  return statement;
}

/** Binds as dqlite does: missing values leave their parameters NULL; one too many is SQLITE_RANGE. */
function bindAll(statement: Statement, params: readonly TypedValue[]): void {
  if (params.length > statement.parameterCount) throw new NodeError(SQLITE_RANGE, 'column index out of range');
  statement.bind(params.map(bindValue));
}

/**
 * Forgets the values bound for one run: a request's blobs are views of its message, which a
 * statement kept for later requests must not hold on to. Each run binds every value again (the
 * ones it does not send are NULL), so nothing a client sees changes.
 */
function unbind(statement: Statement, params: readonly TypedValue[]): void {
  if (params.length > 0) statement.unbind();
}

/** The loop-side statement of `prepared`, compiled on first need. Runs on the database's loop. */
function loopStatement(prepared: PreparedStatement): Statement {
  prepared.statement ??= compile(prepared.db, prepared.sql);
  return prepared.statement;
}

function runToCompletion(
  db: ReplicatedDatabase,
  statement: Statement,
  params: readonly TypedValue[],
): { lastInsertId: bigint; rowsAffected: bigint } {
  statement.reset();
  bindAll(statement, params);
  try {
    while (statement.step()) {
      // exec discards rows, as sqlite3_exec does.
    }
  } finally {
    statement.reset();
    unbind(statement, params);
  }
  return { lastInsertId: BigInt(db.engine.lastInsertRowid()), rowsAffected: BigInt(db.engine.changes()) };
}

function collectRows(statement: Statement, params: readonly TypedValue[], resultBytesMax: number): Uint8Array[] {
  if (statement.columnNames.length === 0) {
    // go-dqlite cannot read a zero-column result set to its end; dqlite answers this way too.
    throw new NodeError(SQLITE_ERROR, 'the statement returns no columns: use exec for it');
  }
  statement.reset();
  bindAll(statement, params);
  const batcher = new RowsBatcher(statement.columnNames);
  const messages: Uint8Array[] = [];
  let bytes = 0;
  // Every batch counts, the last one too, so the limit holds for the whole result.
  const keep = (batch: Uint8Array): void => {
    messages.push(batch);
    bytes += batch.length;
    if (bytes > resultBytesMax) {
      throw new NodeError(SQLITE_ERROR, `result set exceeds ${resultBytesMax} bytes (clientResultBytesMax): add a LIMIT`);
    }
  };
  try {
    while (statement.step()) {
      const full = batcher.add(rowToTypedValues(statement.row(), statement.rowTypes(), statement.declaredTypes));
      if (full) keep(full);
    }
  } finally {
    statement.reset();
    unbind(statement, params);
  }
  keep(batcher.finish());
  return messages;
}


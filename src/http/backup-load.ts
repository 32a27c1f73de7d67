/**
 * `GET /db/backup` and `POST /db/load`. A backup is the leader's committed state of one
 * database, turned into one standard SQLite file. A load stages the uploaded file, checks it,
 * and replays it through one transaction on the leader: one replicated change, so every node
 * ends with the same bytes.
 */
import { SqliteFileError, SqliteFileStage, standaloneImage, type Database, type StagedSqliteFile } from '../../wasm/index.ts';
import { DqliteError } from '../client/errors.ts';
import type { TypedValue } from '../protocol/index.ts';
import { isBoundedWaitTimeout } from '../server/bounded-wait.ts';
import type { LeaderLink } from './leader-link.ts';
import { statementErrorText } from './leader-link.ts';
import type { HttpApiHost } from './api-host.ts';
import { HttpApiError, header, tooLarge, type HttpApiRequest, type HttpApiResponse } from './request.ts';
import { quoteName, replayDatabase, ReplayError, type ReplayCounts } from './sqlite-replay.ts';

/** Bound on an uploaded database file (the engine's largest file). */
export const LOAD_BODY_BYTES_MAX = 2 ** 30;
/** Bound on uploaded SQL text: it is run whole, and what it builds must fit one transaction. */
export const LOAD_SQL_BYTES_MAX = 64 * 2 ** 20;
/** Upload bytes received between two garbage collections (see receive). */
const RECEIVE_GARBAGE_BYTES = 16 * 2 ** 20;
const SQL_CONTENT_TYPES = /^(text\/plain|application\/sql|text\/x-sql)\b/i;

/** Marks a backup request a node forwarded to the leader, so it is never forwarded again. */
export const FORWARDED_HEADER = 'x-dqlite-wasm-forwarded';

/**
 * The committed state of `database` as an SQLite file, made on the leader: a read on the
 * leader's own gateway confirms its leadership (ReadIndex) and waits for every write
 * acknowledged before it; right after, in the same turn of the event loop, the database's main
 * file and committed WAL are copied (one applied log index) and turned into one file. Undefined
 * when this node does not lead: the caller forwards to the leader.
 */
export async function backupDatabase(link: LeaderLink, host: HttpApiHost, database: string): Promise<Uint8Array | undefined> {
  const snapshot = await link.run(async (session) => {
    const db = await session.database(database);
    await session.connection.callRows({ type: 'query_sql', db, sql: 'SELECT 1', params: [] });
    if (!link.isLocal(session) || host.cluster().state !== 'leader') return null;
    return host.snapshotDatabase(database) ?? null;
  });
  return snapshot === null ? undefined : standaloneImage(snapshot);
}

/** Asks the leader's HTTP API for the backup and hands its answer back unchanged. */
export async function forwardBackup(leaderAddress: string, request: HttpApiRequest): Promise<HttpApiResponse> {
  const headers: Record<string, string> = { [FORWARDED_HEADER]: '1' };
  const authorization = header(request, 'authorization');
  if (authorization) headers['authorization'] = authorization;
  let response: Response;
  try {
    response = await fetch(`http://${leaderAddress}${request.path}${request.query ? `?${request.query}` : ''}`, { headers });
  } catch (error) {
    throw new HttpApiError(503, `the leader ${leaderAddress} did not answer the forwarded backup (${(error as Error).message}); retry`);
  }
  const answer: Record<string, string> = {};
  for (const name of ['content-type', 'content-disposition']) {
    const value = response.headers.get(name);
    if (value) answer[name] = value;
  }
  return { status: response.status, headers: answer, body: new Uint8Array(await response.arrayBuffer()) };
}

/**
 * A scratch engine for one outside SQLite file: an SQLite WebAssembly instance of its own,
 * dropped with the file. Checking and reading a file of hundreds of MiB grows that instance's
 * memory (page cache, integrity_check's work: 20 MiB for a 100 MiB file), which a WebAssembly
 * memory never gives back; one instance kept for the node's life held it for good, beside what
 * the node's memory report counts. A new instance costs 15–40 ms.
 */
export function newStage(): Promise<SqliteFileStage> {
  return SqliteFileStage.create({ fileBytesMax: LOAD_BODY_BYTES_MAX });
}
/** Imports run one at a time per node: each holds a whole file in memory (once: streamed into the stage). */
let loading: Promise<unknown> = Promise.resolve();

export interface LoadOutcome extends ReplayCounts {
  bytes: number;
}

export async function loadDatabase(link: LeaderLink, host: HttpApiHost, request: HttpApiRequest, database: string, replace: boolean): Promise<LoadOutcome> {
  const previous = loading;
  let done!: () => void;
  loading = new Promise<void>((resolve) => (done = resolve));
  await previous;
  try {
    // Held only here, so that replayInto can let go of the file and its SQLite instance before
    // the COMMIT (a suspended async function keeps whatever its variables still reference).
    const upload: Upload = { staged: (await newStage()).begin() };
    try {
      await receive(host, request, upload.staged!);
      const asSql = SQL_CONTENT_TYPES.test(header(request, 'content-type') ?? '');
      const size = upload.staged!.sizeBytes;
      if (asSql && size > LOAD_SQL_BYTES_MAX) throw tooLarge(size, LOAD_SQL_BYTES_MAX, '/db/load of SQL text');
      return await replayInto(link, host, upload, database, replace, asSql);
    } finally {
      upload.staged?.discard();
    }
  } finally {
    done();
  }
}

async function receive(host: HttpApiHost, request: HttpApiRequest, staged: StagedSqliteFile): Promise<void> {
  const declared = Number(header(request, 'content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > LOAD_BODY_BYTES_MAX) throw tooLarge(declared, LOAD_BODY_BYTES_MAX, '/db/load');
  let collectAtBytes = RECEIVE_GARBAGE_BYTES;
  try {
    if (request.body) {
      for await (const chunk of request.body) {
        staged.append(chunk);
        // Each chunk the socket delivered is garbage once copied into the stage: collected this
        // often, they do not pile up beside the staged file (V8 alone lets them reach tens of MiB).
        if (staged.sizeBytes >= collectAtBytes) {
          collectAtBytes = staged.sizeBytes + RECEIVE_GARBAGE_BYTES;
          host.collectGarbage?.();
        }
      }
    }
  } catch (error) {
    if (error instanceof SqliteFileError && error.code === 'TOO_LARGE') throw tooLarge(staged.sizeBytes, LOAD_BODY_BYTES_MAX, '/db/load');
    throw error;
  }
  if (staged.sizeBytes === 0) throw new HttpApiError(400, '/db/load: the body is empty; send an SQLite database file');
}

/** The uploaded file, until the replay is done with it. */
interface Upload {
  staged: StagedSqliteFile | undefined;
}

async function replayInto(link: LeaderLink, host: HttpApiHost, upload: Upload, database: string, replace: boolean, asSql: boolean): Promise<LoadOutcome> {
  const bytes = upload.staged!.sizeBytes;
  let source: Database | undefined;
  try {
    source = asSql ? await upload.staged!.openAsSql() : upload.staged!.open();
  } catch (error) {
    if (error instanceof SqliteFileError) throw new HttpApiError(400, `/db/load refused the file, nothing changed: ${error.message}`);
    throw error;
  }
  const session = await link.run(
    async (s) => {
      await s.connection.call({ type: 'exec_sql', db: await s.database(database), sql: 'BEGIN', params: [] }, 'result');
      return s;
    },
    { keep: true },
  );
  const db = await session.database(database);
  const exec = async (sql: string, params: TypedValue[]): Promise<void> => {
    await session.connection.call({ type: 'exec_sql', db, sql, params }, 'result');
  };
  let committed = false;
  try {
    const existing = await session.connection.callRows({
      type: 'query_sql',
      db,
      sql: "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type = 'table', type = 'view'",
      params: [],
    });
    if (existing.rows.length > 0) {
      if (!replace) {
        throw new HttpApiError(
          409,
          `database ${database} already holds ${existing.rows.length} tables, views, indexes or triggers; nothing changed. Load with ?replace (dqlite-wasm import --replace) to replace its contents`,
        );
      }
      for (const row of existing.rows) {
        const type = String(row[0]!.value);
        if (type === 'index') continue; // dropped with its table
        await exec(`DROP ${type.toUpperCase()} IF EXISTS ${quoteName(String(row[1]!.value))}`, []);
      }
    }
    const progress = replayProgress(host, database, bytes);
    const counts = await replayDatabase(source, { exec }, progress.rows);
    // The rows are in the transaction now: free the uploaded copy before COMMIT, when the
    // leader holds the transaction's WAL and its Raft entries at once, and let go of the scratch
    // SQLite instance too (its WebAssembly memory, 20 MiB after a 200 MiB file).
    upload.staged!.discard();
    upload.staged = undefined;
    source = undefined;
    host.collectGarbage?.();
    progress.committing(counts.rows);
    try {
      await exec('COMMIT', []);
    } catch (error) {
      throw commitRefusal(error);
    }
    committed = true;
    link.release(session);
    progress.done();
    return { ...counts, bytes };
  } catch (error) {
    if (!committed) await link.releaseAfterRollback(session, database);
    if (error instanceof HttpApiError) throw error;
    if (error instanceof ReplayError) throw new HttpApiError(400, `/db/load refused the file, nothing changed: ${error.message}`);
    if (error instanceof DqliteError) throw new HttpApiError(400, `/db/load failed, nothing changed: ${statementErrorText(error)}`);
    throw error;
  }
}

/** A load this large logs its replay on the node (smaller ones finish before anyone looks). */
const LOAD_LOGGED_BYTES_MIN = 16 * 2 ** 20;
const PROGRESS_LOG_INTERVAL_MS = 5000;

/** The node's log lines for a large load: rows replayed every few seconds, then the commit. */
function replayProgress(host: HttpApiHost, database: string, bytes: number): { rows: (rows: number) => void; committing: (rows: number) => void; done: () => void } {
  const log = bytes >= LOAD_LOGGED_BYTES_MIN && host.log ? host.log : undefined;
  const startMs = Date.now();
  let lastMs = startMs;
  const seconds = (): string => ((Date.now() - startMs) / 1000).toFixed(1);
  const size = `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  log?.(`/db/load into ${database}: replaying a ${size} file as one transaction`);
  return {
    rows(rows) {
      if (!log || Date.now() - lastMs < PROGRESS_LOG_INTERVAL_MS) return;
      lastMs = Date.now();
      log(`/db/load into ${database}: ${rows} rows replayed (${seconds()} s)`);
    },
    committing(rows) {
      log?.(`/db/load into ${database}: ${rows} rows replayed in ${seconds()} s; committing and replicating`);
    },
    done() {
      log?.(`/db/load into ${database}: committed on a quorum after ${seconds()} s`);
    },
  };
}

const SQLITE_TOOBIG = 18;
const SQLITE_FULL = 13;

/** A COMMIT the cluster refused; a load above the database limit says so plainly. */
export function commitRefusal(error: unknown): Error {
  const text = statementErrorText(error);
  // Loads larger than one Raft entry replicate in parts (src/fsm/commands.ts); only
  // databaseBytesMax bounds them, and the node's message names it.
  if (error instanceof DqliteError && (error.code === SQLITE_TOOBIG || (error.code & 0xff) === SQLITE_FULL)) {
    return new HttpApiError(413, `/db/load: the database replicates as one transaction, and ${text}: nothing changed`);
  }
  if (error instanceof DqliteError && error.isLeadershipLost && isBoundedWaitTimeout(error.message)) {
    // A commit timeout has the leadership-lost code too: only its message tells them apart.
    return new HttpApiError(503, `/db/load: no quorum acknowledged the COMMIT within the commit timeout, so the load may or may not have been applied: ${text}; check the cluster (a majority of voters up), raise --commit-timeout-ms for large loads, and check the database before loading again`);
  }
  if (error instanceof DqliteError && error.isLeadershipLost) {
    return new HttpApiError(503, `/db/load: leadership changed during COMMIT, so the load may or may not have been applied: ${text}; check the database before loading again`);
  }
  if (error instanceof DqliteError) return new HttpApiError(400, `/db/load: COMMIT failed, nothing changed: ${text}`);
  return error instanceof Error ? error : new Error(text);
}

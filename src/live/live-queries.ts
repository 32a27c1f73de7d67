/**
 * Live queries on one replica: a read-only SELECT evaluated on this node's committed state, then
 * again after every committed transaction that changed a table it reads. Every replica applies
 * the same log and emits the same commits (src/fsm/commit-events.ts), so a live query on a
 * follower, or in a browser tab, follows the cluster as closely as its replica does.
 *
 * - Reads run on the engine's read view (docs/reads.md): only Raft-committed frames, never an
 *   open transaction's or a pending group commit's. A commit only marks queries dirty; they are
 *   evaluated later, in their own task, so the Ready loop that applies entries never waits for
 *   one, and in slices that leave the node at least half of its thread.
 * - Subscribers to the same (database, sql, params) share one evaluation per round of commits,
 *   and a result equal to the previous one is not delivered again.
 * - A commit whose changes are unknown (`changes` undefined, or a snapshot) re-runs every live
 *   query of its database; otherwise only those whose read set (wasm/read-tables.ts) it touched.
 */
import { readSetTouched, type ReadSet, type ReadView, type Statement } from '../../wasm/index.ts';
import type { CommitEvents, CommittedTransaction } from '../fsm/commit-events.ts';
import { NodeError, SQLITE_ERROR, SQLITE_MISUSE, SQLITE_RANGE } from '../fsm/errors.ts';
import { RowsBatcher, type TypedValue } from '../protocol/index.ts';
import type { Clock } from '../runtime.ts';
import type { ReadLevel } from '../server/read-path.ts';
import { bindValue, rowToTypedValues } from '../server/value-mapping.ts';

/** SQLite's code for a limit reached (here: too many live queries). */
const SQLITE_FULL = 13;
/**
 * Evaluations run in slices of this long at most; when work remains, the next slice waits as long
 * as the last one took, so live queries take at most about half of the thread from the node's
 * writes, reads and Raft traffic however many there are (their results come later instead).
 */
const EVALUATION_SLICE_MS = 10;

export interface LiveResult {
  readonly columns: readonly string[];
  readonly rows: readonly (readonly TypedValue[])[];
  /** The log index this replica had applied when the result was read: the result reflects it. */
  readonly index: number;
  /** The result as Rows messages (the wire form): what is compared and what the gateway sends. */
  readonly messages: readonly Uint8Array[];
}

export interface LiveListener {
  /** A result that differs from the previous one. Called from a task of its own, never from the Ready loop. */
  result(result: LiveResult): void;
  /** The query cannot be evaluated any more (its table was dropped, say): the subscription has ended. */
  error(error: Error): void;
}

export interface LiveSubscription {
  /** The first result, as the subscription began. */
  readonly first: LiveResult;
  /** Stops the deliveries; frees the query once its last subscriber left. Idempotent. */
  unsubscribe(): void;
}

export interface LiveQueryHost {
  readonly commits: CommitEvents;
  readonly clock: Clock;
  /** The read view (committed state) of database `name`, created on first use. */
  readView(database: string): ReadView;
  /** Resolves when a read at `level` may run on this node's committed state (read-path.ts). */
  admitRead(level: ReadLevel): Promise<void>;
  appliedIndex(): number;
  readonly liveQueriesMax: number;
  readonly liveResultBytesMax: number;
  log(line: string): void;
}

interface Subscriber {
  readonly listener: LiveListener;
  last: LiveResult;
}

/** One (database, sql, params) and everyone watching it. */
interface LiveGroup {
  readonly key: string;
  readonly database: string;
  readonly sql: string;
  readonly params: readonly TypedValue[];
  readonly subscribers: Set<Subscriber>;
  /** What the statement reads; undefined before the first evaluation. */
  readSet: ReadSet | undefined;
  /** The statement, compiled on the read view once and run at each evaluation. */
  statement: Statement | undefined;
  /** The read view `statement` was compiled on (a restored snapshot brings a new one)... */
  compiledOn: ReadView | undefined;
  /** ...and its closeCount then: a schema change recompiles it. */
  compiledAt: number;
  last: LiveResult | undefined;
  /** The read view's committed version `last` was read at. */
  lastVersion: number;
  dirty: boolean;
}

export class LiveQueries {
  /** Evaluations run since start: for tests and metrics (shared evaluations count once). */
  evaluations = 0;
  private readonly groups = new Map<string, LiveGroup>();
  private readonly byDatabase = new Map<string, Set<LiveGroup>>();
  private readonly dirty = new Set<LiveGroup>();
  /**
   * Databases whose schema must be checked at the next flush, and the schema cookie last seen:
   * a commit's list of changed tables may leave out a schema change (ALTER TABLE, a view
   * redefined), which can change any query's result, so one re-runs every query of its database.
   */
  private readonly schemaChecks = new Set<string>();
  private readonly schemaCookies = new Map<string, number>();
  private subscriberCount = 0;
  private stopCommits: (() => void) | undefined;
  private flushScheduled = false;
  private closed = false;

  constructor(private readonly host: LiveQueryHost) {}

  /** Live subscriptions now, all queries together. */
  get subscriptions(): number {
    return this.subscriberCount;
  }

  /** Distinct queries being kept up to date now. */
  get queries(): number {
    return this.groups.size;
  }

  /**
   * Starts a live query once `level` admits a read here; rejects with a clear error for bad SQL,
   * a statement that writes or returns no columns, or more than one statement.
   */
  async subscribe(database: string, sql: string, params: readonly TypedValue[], level: ReadLevel, listener: LiveListener): Promise<LiveSubscription> {
    this.assertOpen();
    if (this.subscriberCount >= this.host.liveQueriesMax) {
      throw new NodeError(SQLITE_FULL, `this node already holds ${this.host.liveQueriesMax} live queries (liveQueriesMax): close some, or subscribe on another node`);
    }
    await this.host.admitRead(level);
    this.assertOpen();
    const key = groupKey(database, sql, params);
    let group = this.groups.get(key);
    const created = group === undefined;
    if (!group) {
      group = { key, database, sql, params: [...params], subscribers: new Set(), readSet: undefined, statement: undefined, compiledOn: undefined, compiledAt: -1, last: undefined, lastVersion: -1, dirty: false };
    }
    let first: LiveResult;
    try {
      first = this.currentResult(group);
    } catch (error) {
      if (created) group.statement?.finalize();
      else if (group.subscribers.size > 0) this.fail(group, error as Error);
      throw error;
    }
    if (created) this.addGroup(group);
    const subscriber: Subscriber = { listener, last: first };
    group.subscribers.add(subscriber);
    this.subscriberCount++;
    const joined = group;
    let active = true;
    return {
      first,
      unsubscribe: () => {
        if (!active) return;
        active = false;
        if (joined.subscribers.delete(subscriber)) this.subscriberCount--;
        if (joined.subscribers.size === 0) this.removeGroup(joined);
      },
    };
  }

  /** Ends every subscription (the node is stopping): no listener is called any more. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const group of [...this.groups.values()]) this.removeGroup(group);
    this.subscriberCount = 0;
  }

  // ---------------------------------------------------------------- commits

  private readonly onCommit = (event: CommittedTransaction): void => {
    const groups = this.byDatabase.get(event.database);
    if (!groups) return;
    const tables = event.snapshot || !event.changes ? undefined : event.changes.tables;
    if (tables !== undefined) {
      this.schemaChecks.add(event.database);
      this.scheduleFlush();
    }
    for (const group of groups) {
      if (tables !== undefined && group.readSet !== undefined && !readSetTouched(group.readSet, tables)) continue;
      group.dirty = true;
      this.dirty.add(group);
    }
    if (this.dirty.size > 0) this.scheduleFlush();
  };

  private scheduleFlush(delayMs = 0): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    // A task of its own: the commit that marked the queries is still being applied.
    this.host.clock.setTimeout(() => {
      this.flushScheduled = false;
      this.flush();
    }, delayMs);
  }

  /** Evaluates dirty queries for a slice of time, then yields and comes back for the rest. */
  private flush(): void {
    const startedMs = this.host.clock.nowMs();
    this.checkSchemas();
    for (const group of this.dirty) {
      this.dirty.delete(group);
      // Gone, or evaluated meanwhile for a new subscriber.
      if (!this.groups.has(group.key) || !group.dirty) continue;
      let result: LiveResult;
      try {
        result = this.evaluate(group);
      } catch (error) {
        this.fail(group, error as Error);
        continue;
      }
      this.publish(group, result);
      if (this.host.clock.nowMs() - startedMs >= EVALUATION_SLICE_MS) break;
    }
    if (this.dirty.size > 0) this.scheduleFlush(this.host.clock.nowMs() - startedMs);
  }

  private checkSchemas(): void {
    for (const database of this.schemaChecks) {
      const groups = this.byDatabase.get(database);
      if (!groups) continue;
      let cookie: number;
      try {
        cookie = this.host.readView(database).schemaCookie();
      } catch {
        cookie = -1;
      }
      if (cookie === this.schemaCookies.get(database)) continue;
      this.schemaCookies.set(database, cookie);
      for (const group of groups) {
        group.dirty = true;
        this.dirty.add(group);
      }
    }
    this.schemaChecks.clear();
  }

  // ---------------------------------------------------------------- evaluation

  /** The group's result at the committed state now: its last one when nothing changed since. */
  private currentResult(group: LiveGroup): LiveResult {
    const view = this.host.readView(group.database);
    view.catchUp();
    if (group.last && !group.dirty && group.lastVersion === view.committedVersion) return group.last;
    const result = this.evaluate(group);
    this.publish(group, result);
    return result;
  }

  private evaluate(group: LiveGroup): LiveResult {
    const view = this.host.readView(group.database);
    view.catchUp();
    let statement = group.statement;
    if (!statement || group.compiledOn !== view || group.compiledAt !== view.closeCount) {
      // First evaluation, or the schema changed: compile again, and take the read set again.
      statement?.finalize();
      group.statement = undefined;
      const prepared = view.prepareWithReadSet(group.sql);
      if (!prepared.statement) throw new NodeError(SQLITE_MISUSE, 'empty statement: a live query needs one SELECT');
      try {
        checkLiveStatement(prepared.statement, group.params.length);
      } catch (error) {
        prepared.statement.finalize();
        throw error;
      }
      statement = prepared.statement;
      group.statement = statement;
      group.readSet = prepared.readSet;
      group.compiledOn = view;
      group.compiledAt = view.closeCount;
    }
    this.evaluations++;
    group.dirty = false;
    group.lastVersion = view.committedVersion;
    const index = this.host.appliedIndex();
    return { ...collect(statement, group.params, this.host.liveResultBytesMax), index };
  }

  /** Hands `result` to every subscriber, unless it equals what they last received. */
  private publish(group: LiveGroup, result: LiveResult): void {
    const previous = group.last;
    group.last = result;
    if (previous && sameMessages(previous.messages, result.messages)) {
      // Same rows: subscribers keep theirs (they may say an older index, which is still true).
      return;
    }
    for (const subscriber of [...group.subscribers]) {
      if (subscriber.last === result || sameMessages(subscriber.last.messages, result.messages)) continue;
      subscriber.last = result;
      try {
        subscriber.listener.result(result);
      } catch (error) {
        this.host.log(`a live query listener failed on ${group.database}: ${(error as Error).message}`);
      }
    }
  }

  private fail(group: LiveGroup, error: Error): void {
    const subscribers = [...group.subscribers];
    this.removeGroup(group);
    for (const subscriber of subscribers) {
      try {
        subscriber.listener.error(error);
      } catch (listenerError) {
        this.host.log(`a live query listener failed on ${group.database}: ${(listenerError as Error).message}`);
      }
    }
  }

  private addGroup(group: LiveGroup): void {
    this.groups.set(group.key, group);
    let set = this.byDatabase.get(group.database);
    if (!set) {
      this.byDatabase.set(group.database, (set = new Set()));
      this.schemaCookies.set(group.database, this.host.readView(group.database).schemaCookie());
    }
    set.add(group);
    this.stopCommits ??= this.host.commits.subscribe(this.onCommit);
  }

  private removeGroup(group: LiveGroup): void {
    if (this.groups.get(group.key) !== group) return;
    this.groups.delete(group.key);
    this.subscriberCount -= group.subscribers.size;
    group.subscribers.clear();
    group.last = undefined;
    group.statement?.finalize();
    group.statement = undefined;
    this.dirty.delete(group);
    const set = this.byDatabase.get(group.database);
    set?.delete(group);
    if (set?.size === 0) {
      this.byDatabase.delete(group.database);
      this.schemaCookies.delete(group.database);
    }
    if (this.groups.size === 0) {
      this.stopCommits?.();
      this.stopCommits = undefined;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new NodeError(SQLITE_MISUSE, 'the node is stopping: no new live queries');
  }
}

/** A live query is one read-only statement that returns rows, with no more parameters than it has. */
function checkLiveStatement(statement: Statement, paramCount: number): void {
  if (statement.tail.replace(/^[\s;]+/, '') !== '') {
    throw new NodeError(SQLITE_ERROR, `a live query is one statement; remove what follows "${statement.sql}"`);
  }
  if (!statement.isReadonly) {
    throw new NodeError(SQLITE_ERROR, `a live query must be read-only (a SELECT): "${statement.sql}" writes; run it with exec instead`);
  }
  if (statement.columnNames.length === 0) {
    throw new NodeError(SQLITE_ERROR, `a live query must return columns: "${statement.sql}" returns none`);
  }
  if (paramCount > statement.parameterCount) {
    throw new NodeError(SQLITE_RANGE, `the live query takes ${statement.parameterCount} parameters, ${paramCount} were given`);
  }
}

function collect(statement: Statement, params: readonly TypedValue[], bytesMax: number): Omit<LiveResult, 'index'> {
  statement.reset();
  statement.bind(params.map(bindValue));
  const columns = [...statement.columnNames];
  const batcher = new RowsBatcher(columns);
  const rows: TypedValue[][] = [];
  const messages: Uint8Array[] = [];
  let bytes = 0;
  try {
    while (statement.step()) {
      const row = rowToTypedValues(statement.row(), statement.rowTypes(), statement.declaredTypes);
      rows.push(row);
      const full = batcher.add(row);
      if (full) {
        messages.push(full);
        bytes += full.length;
        if (bytes > bytesMax) throw new NodeError(SQLITE_ERROR, `a live query's result exceeds ${bytesMax} bytes (liveResultBytesMax): add a LIMIT`);
      }
    }
  } finally {
    statement.reset();
  }
  const last = batcher.finish();
  if (bytes + last.length > bytesMax) throw new NodeError(SQLITE_ERROR, `a live query's result exceeds ${bytesMax} bytes (liveResultBytesMax): add a LIMIT`);
  messages.push(last);
  return { columns, rows, messages };
}

function sameMessages(a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.length !== y.length) return false;
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return false;
  }
  return true;
}

function groupKey(database: string, sql: string, params: readonly TypedValue[]): string {
  return JSON.stringify([database, sql, params.map(paramKey)]);
}

function paramKey(param: TypedValue): unknown {
  const value: unknown = (param as { value?: unknown }).value;
  if (typeof value === 'bigint') return [param.type, `${value}n`];
  if (value instanceof Uint8Array) return [param.type, Array.from(value)];
  return [param.type, value];
}

/**
 * `GET /db/changes?db=NAME&since=N&tables=a,b` on the HTTP API: the database's change feed as
 * server-sent events, from this node's replica (any node answers, no leader needed). Each
 * committed transaction is one `transaction` event whose `id:` is its log index, so a browser's
 * EventSource resumes by itself after a disconnect (it sends `Last-Event-ID`, which wins over
 * `since`); a gap is one `gap` event. Values that JSON cannot carry travel as in rqlite's
 * answers: blobs as base64 text, 64-bit integers beyond 2^53 as decimal text.
 *
 *   event: transaction
 *   id: 42
 *   data: {"index":42,"timeMs":…,"database":"main","tables":["t"],"rows":[{"operation":"insert",…}],"rowsOmitted":false}
 */
import type { ChangeFeedEvent, ChangeLogSource } from '../live/change-feed.ts';
import { ChangeFeed } from '../live/change-feed.ts';
import type { Value } from '../protocol/values.ts';
import { HttpApiError, QueryParams, header, type HttpApiRequest } from './request.ts';

/** A comment line this often keeps proxies from closing an idle stream. */
export const KEEPALIVE_INTERVAL_MS = 15_000;

export interface ChangesResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The event stream; ends when the client goes (the host calls `return()`). */
  stream: AsyncIterable<string>;
}

/** Answers `/db/changes` for `database`; throws HttpApiError (400) on bad parameters. */
export function changesResponse(source: ChangeLogSource | undefined, request: HttpApiRequest, params: QueryParams, database: string): ChangesResponse {
  if (request.method !== 'GET') throw new HttpApiError(405, `/db/changes takes GET, not ${request.method}`, { allow: 'GET' });
  if (!source) throw new HttpApiError(503, 'this node serves no change feed');
  const since = sinceOf(header(request, 'last-event-id') ?? params.get('since'));
  const tablesText = params.get('tables');
  const tables = tablesText === undefined || tablesText === '' ? [] : tablesText.split(',').map((t) => t.trim()).filter((t) => t !== '');
  const feed = new ChangeFeed(source, { database, tables, ...(since !== undefined && { since }) });
  return {
    status: 200,
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' },
    body: '',
    stream: sseStream(feed),
  };
}

function sinceOf(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new HttpApiError(400, `/db/changes: since=${text} is not a log index: give the index of the last event received (a whole number), or leave it out to start from now`);
  }
  return Number(text);
}

/**
 * The events as SSE text. Not a generator: `return()` from the host must end a stream that is
 * waiting for the next commit, which a suspended generator would only see after that commit.
 */
function sseStream(feed: ChangeFeed): AsyncIterableIterator<string> {
  let started = false;
  let closed = false;
  let ticks = 0;
  let wake: (() => void) | undefined;
  const signal = (): void => wake?.();
  feed.onReady(signal);
  const keepalive = setInterval(() => {
    ticks++;
    signal();
  }, KEEPALIVE_INTERVAL_MS);
  const close = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(keepalive);
    feed.close();
    signal();
  };
  const iterator: AsyncIterableIterator<string> = {
    [Symbol.asyncIterator]: () => iterator,
    async next(): Promise<IteratorResult<string>> {
      if (!started) {
        started = true;
        // Say at once that the stream is open, and where it starts.
        return { done: false, value: `: change feed after index ${feed.bookmark}\nretry: 1000\n\n` };
      }
      for (;;) {
        if (closed) return { done: true, value: undefined };
        const event = feed.take();
        if (event) return { done: false, value: formatEvent(event) };
        if (ticks > 0) {
          ticks = 0;
          return { done: false, value: ': keepalive\n\n' };
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
    async return(): Promise<IteratorResult<string>> {
      close();
      return { done: true, value: undefined };
    },
  };
  return iterator;
}

export function formatEvent(event: ChangeFeedEvent): string {
  if (event.type === 'gap') {
    return `event: gap\nid: ${event.firstAvailableIndex - 1}\ndata: ${JSON.stringify(event)}\n\n`;
  }
  const data = {
    index: event.index,
    ...(event.timeMs !== undefined && { timeMs: event.timeMs }),
    database: event.database,
    ...(event.tables && { tables: event.tables }),
    ...(event.rows && {
      rows: event.rows.map((row) => ({
        operation: row.operation,
        table: row.table,
        primaryKey: row.primaryKey.map(jsonValue),
        ...(row.values && { values: row.values.map(jsonValue) }),
      })),
    }),
    rowsOmitted: event.rowsOmitted,
  };
  return `event: transaction\nid: ${event.index}\ndata: ${JSON.stringify(data)}\n\n`;
}

function jsonValue(value: Value): string | number | boolean | null {
  if (value instanceof Uint8Array) return bytesToBase64(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  return value;
}

function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!);
  return btoa(binary);
}

/**
 * Live queries for our client (`Database.live`): one connection per subscription, to the first
 * of the Database's servers that answers (the subscriber's own node: list it first), which
 * evaluates the query on its own replica and pushes each new result (src/protocol/live-requests.ts).
 * When that connection fails the subscription moves to the next server that answers and
 * subscribes again, retrying until one does or the subscriber leaves; a result equal to the last
 * one delivered is not delivered twice.
 */
import { fromTypedValue, type TypedValue, type Value } from '../protocol/index.ts';
import type { Connection, RowsResult } from '../client/connection.ts';
import { ClientError, ConnectionError, NoLeaderError } from '../client/errors.ts';
import type { LinkOptions } from '../client/link.ts';
import { ReadLink } from '../client/read-link.ts';
import { LiveQuery, type LiveSource } from './live-query.ts';

export interface LiveQueryResult {
  columns: string[];
  /** The rows as objects keyed by column name, as `Database.query` returns them. */
  rows: Record<string, Value>[];
  /** The log index the result reflects: the replica had applied this far when it was read. */
  index: number;
}

export interface LiveWireRequest {
  readonly sql: string;
  readonly params: readonly TypedValue[];
  /** ReadConsistencyCode and staleness bound of the first result. */
  readonly consistency: number;
  readonly maxStalenessMs: number;
  /** The session's bookmark (session level), read when (re)subscribing. */
  bookmark(): bigint;
  /** Called with every result's index (feeds the session's bookmark). */
  reflected(index: bigint): void;
}

/**
 * A live query over the wire, on servers `options.servers` (the nearest first). Every running
 * subscription is in `active` until it stops: calling it ends the subscription with a `closed`
 * error (the Database calls them all when it closes).
 */
export function liveOverWire(
  options: LinkOptions,
  open: (connection: Connection) => Promise<number>,
  request: LiveWireRequest,
  active: Set<() => void>,
): LiveQuery<LiveQueryResult> {
  const source: LiveSource<LiveQueryResult> = async (sink) => {
    const link = new ReadLink(options, open);
    let stopped = false;
    const ended = (): void => {
      active.delete(closedByOwner);
      link.close();
    };
    let lastKey: string | undefined;
    const subscribe = () =>
      link.read(request.sql, async (session) => {
        if (!session.connection.speaksLiveQueries) {
          throw new ClientError('protocol', `${session.connection.address} keeps no live queries (not a dqlite-wasm node, or an older one)`);
        }
        try {
          const results = await session.connection.openLive({
            type: 'live_subscribe',
            db: session.db,
            sql: request.sql,
            params: request.params,
            consistency: request.consistency,
            bookmark: request.bookmark(),
            maxStalenessMs: request.maxStalenessMs,
          });
          return { results, first: await results.next() };
        } catch (error) {
          // The connection was given over to this subscription: a retry (after a not-leader
          // answer from a node that knows no leader yet, say) needs a new one.
          session.connection.close();
          throw error;
        }
      });
    const deliver = (raw: RowsResult & { bookmark: bigint }): void => {
      request.reflected(raw.bookmark);
      const key = resultKey(raw);
      if (key === lastKey || stopped) return;
      lastKey = key;
      sink.result(toLiveResult(raw));
    };
    let current: Awaited<ReturnType<typeof subscribe>>;
    try {
      current = await subscribe();
    } catch (error) {
      link.close();
      throw error;
    }
    deliver(current.first);
    void (async () => {
      for (;;) {
        try {
          deliver(await current.results.next());
        } catch (error) {
          if (stopped) return;
          if (!(error instanceof ConnectionError)) {
            ended();
            sink.error(error as Error);
            return;
          }
          // The node went away (restarted, say): subscribe again where the link finds a server,
          // for as long as the subscriber stays (a node may take a while to come back).
          for (;;) {
            try {
              current = await subscribe();
              break;
            } catch (again) {
              if (stopped) return;
              if (!(again instanceof ConnectionError || again instanceof NoLeaderError)) {
                ended();
                sink.error(again as Error);
                return;
              }
            }
          }
          deliver(current.first);
        }
      }
    })();
    const stop = (): void => {
      stopped = true;
      active.delete(closedByOwner);
      link.close();
    };
    const closedByOwner = (): void => {
      stop();
      sink.error(new ClientError('closed', 'the Database was closed: its live queries ended'));
    };
    active.add(closedByOwner);
    return stop;
  };
  return new LiveQuery(source);
}

function toLiveResult(raw: RowsResult & { bookmark: bigint }): LiveQueryResult {
  return toLiveQueryResult(raw.columns, raw.rows, Number(raw.bookmark));
}

/** A result as users see it: rows as objects keyed by column name, values as `query()` gives them. */
export function toLiveQueryResult(columns: readonly string[], rows: readonly (readonly TypedValue[])[], index: number): LiveQueryResult {
  return {
    columns: [...columns],
    rows: rows.map((row) => {
      const object: Record<string, Value> = {};
      for (let i = 0; i < columns.length; i++) object[columns[i]!] = fromTypedValue(row[i]!);
      return object;
    }),
    index,
  };
}

function resultKey(raw: RowsResult): string {
  return JSON.stringify([raw.columns, raw.rows], (_key, value: unknown) =>
    typeof value === 'bigint' ? `${value}n` : value instanceof Uint8Array ? Array.from(value) : value,
  );
}

/**
 * A change feed consumer process for test/live/change-feed-processes.test.ts: prints
 * `{"watching":N}` once subscribed, then one JSON line per event, as it receives them.
 *   node --import ./scripts/ts-loader.mjs test/live/feed-consumer.ts SERVERS DATABASE [SINCE]
 */
import { connect } from '../../runtimes/node/client.ts';

const [servers, database, since] = process.argv.slice(2);
const db = await connect({ servers: servers!.split(','), database: database!, readFrom: 'any', consistency: 'stale', timeoutMs: 30_000 });
const feed = db.changes(since === undefined ? {} : { since: Number(since) });
const first = feed.next();
const watching = setInterval(() => {
  if (feed.bookmark === undefined) return;
  clearInterval(watching);
  process.stdout.write(`${JSON.stringify({ watching: feed.bookmark, server: feed.server })}\n`);
}, 20);
const print = (event: unknown): void => {
  process.stdout.write(`${JSON.stringify(event, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))}\n`);
};
const head = await first;
if (!head.done) print(head.value);
for await (const event of feed) print(event);

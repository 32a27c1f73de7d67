/**
 * The Date header the Node listener sends (runtimes/node/http-date.ts), made from Date's UTC fields
 * instead of Date.prototype.toUTCString (which loads ICU's time zone data into the node): the
 * same text as toUTCString for any time, and on a real listener's answers.
 */
import { afterEach, expect, test } from 'vitest';
import { httpDate } from '../../runtimes/node/http-date.ts';
import { listen, type Listener } from '../../runtimes/node/index.ts';

test('matches toUTCString: epoch, leap days, century years, before 1970, year 9999', () => {
  const days = [
    '1970-01-01T00:00:00Z', '1969-12-31T23:59:59Z', '1900-03-01T12:00:00Z', '2000-02-29T23:59:59Z', '2000-03-01T00:00:00Z',
    '2024-02-29T08:49:37Z', '2100-02-28T00:00:00Z', '2100-03-01T00:00:00Z', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z',
  ].map((iso) => Date.parse(iso));
  // A spread of times, every one a few days and seconds apart from the last: the same each run.
  let ms = Date.parse('1950-01-01T00:00:00Z');
  for (let i = 0; i < 20_000; i++) days.push((ms += 3 * 86_400_000 + 7_777_777 + i * 1_013));
  for (const time of days) expect(httpDate(time), new Date(time).toISOString()).toBe(new Date(time).toUTCString());
  // Milliseconds are dropped, not rounded.
  expect(httpDate(Date.parse('2026-12-03T17:30:15.999Z'))).toBe('Thu, 03 Dec 2026 17:30:15 GMT');
});

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.close();
  listener = undefined;
});

test('a real listener answers with one Date header of the current time', async () => {
  listener = await listen({
    host: '127.0.0.1',
    port: 0,
    onStream: () => undefined,
    onWebSocket: () => undefined,
    onHttp: () => ({ status: 200, body: 'ok\n' }),
    checkUpgrade: () => ({ status: 404, reason: 'none' }),
  });
  const before = Math.floor(Date.now() / 1000) * 1000;
  const response = await fetch(`http://${listener.address}/health`);
  await response.text();
  const after = Date.now();
  // Two Date headers would arrive joined by ", ", which the pattern refuses.
  const date = response.headers.get('date');
  expect(date).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/);
  const sent = Date.parse(date!);
  expect(sent).toBeGreaterThanOrEqual(before);
  expect(sent).toBeLessThanOrEqual(after);
});

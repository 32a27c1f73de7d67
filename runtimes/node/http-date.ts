/**
 * The HTTP Date header (RFC 9110's IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT") from Date's UTC
 * fields. Node.js's own header comes from Date.prototype.toUTCString, whose first call loads
 * V8's time zone support from ICU's data: 0.6 MiB of the `node` binary's pages that an idle node
 * which answered one status request would hold for good (docs/memory.md). The getUTC* accessors
 * need no time zone and load none of it.
 */
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const two = (n: number): string => String(n).padStart(2, '0');

export function httpDate(epochMs: number): string {
  const date = new Date(epochMs);
  const time = `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}`;
  return `${WEEKDAYS[date.getUTCDay()]!}, ${two(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]!} ${String(date.getUTCFullYear()).padStart(4, '0')} ${time} GMT`;
}

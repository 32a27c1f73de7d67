/**
 * The HTTP Date header (RFC 9110's IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT") computed from
 * the epoch by arithmetic. Node.js's own header comes from Date.prototype.toUTCString, whose
 * first call loads V8's time zone support from ICU's data: 0.6 MiB of the `node` binary's pages
 * that an idle node which answered one status request would hold for good (docs/memory.md).
 */
const WEEKDAYS = ['Thu', 'Fri', 'Sat', 'Sun', 'Mon', 'Tue', 'Wed']; // 1970-01-01 was a Thursday
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY_SECONDS = 86_400;

const two = (n: number): string => String(n).padStart(2, '0');

export function httpDate(epochMs: number): string {
  const seconds = Math.floor(epochMs / 1000);
  const days = Math.floor(seconds / DAY_SECONDS);
  const secondOfDay = seconds - days * DAY_SECONDS;
  // Days since 1970 to the proleptic Gregorian calendar, in 400-year eras starting on March 1st
  // (Howard Hinnant's civil_from_days).
  const shifted = days + 719_468;
  const era = Math.floor(shifted / 146_097);
  const dayOfEra = shifted - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1;
  const month = monthFromMarch < 10 ? monthFromMarch + 2 : monthFromMarch - 10;
  const year = yearOfEra + era * 400 + (month <= 1 ? 1 : 0);
  const weekday = WEEKDAYS[((days % 7) + 7) % 7]!;
  const time = `${two(Math.floor(secondOfDay / 3600))}:${two(Math.floor((secondOfDay % 3600) / 60))}:${two(secondOfDay % 60)}`;
  return `${weekday}, ${two(day)} ${MONTHS[month]!} ${String(year).padStart(4, '0')} ${time} GMT`;
}

import type { Value } from '../client/index.ts';

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** A result to print: column names and rows of values in column order. */
export interface ResultTable {
  columns: readonly string[];
  rows: readonly (readonly Value[])[];
}

/** `tabular` is what go-dqlite's shell calls its default. */
export function parseOutputFormat(name: string): OutputFormat | undefined {
  const lower = name.toLowerCase();
  if (lower === 'tabular') return 'table';
  return (OUTPUT_FORMATS as readonly string[]).includes(lower) ? (lower as OutputFormat) : undefined;
}

/** The result as text in `format`, ending in a newline (nothing for a result with no columns). */
export function formatResult(result: ResultTable, format: OutputFormat): string {
  if (result.columns.length === 0) return '';
  if (format === 'json') return formatJson(result);
  if (format === 'csv') return formatCsv(result);
  return formatTable(result);
}

function hex(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += byte.toString(16).padStart(2, '0');
  return text;
}

function cellText(value: Value): string {
  if (value === null) return 'NULL';
  if (value instanceof Uint8Array) return `x'${hex(value)}'`;
  if (value instanceof Date) return value.toISOString();
  return String(value);
}

function isNumeric(value: Value): boolean {
  return typeof value === 'number' || typeof value === 'bigint';
}

/** Aligned columns with a header rule, numbers to the right, and a row count. */
function formatTable({ columns, rows }: ResultTable): string {
  const cells = rows.map((row) => columns.map((_, i) => cellText(row[i] ?? null).replace(/\r?\n/g, '\\n')));
  const widths = columns.map((name, i) => Math.max(name.length, ...cells.map((row) => row[i]!.length)));
  const line = (parts: string[]): string => parts.join(' | ').trimEnd();
  const out = [line(columns.map((name, i) => name.padEnd(widths[i]!))), widths.map((w) => '-'.repeat(w)).join('-+-')];
  rows.forEach((row, r) => {
    out.push(line(cells[r]!.map((text, i) => (isNumeric(row[i] ?? null) ? text.padStart(widths[i]!) : text.padEnd(widths[i]!)))));
  });
  out.push(`(${rows.length} ${rows.length === 1 ? 'row' : 'rows'})`);
  return out.join('\n') + '\n';
}

function jsonValue(value: Value): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Uint8Array) return `x'${hex(value)}'`;
  if (value instanceof Date) return value.toISOString();
  return value;
}

/** An array of row objects. */
function formatJson({ columns, rows }: ResultTable): string {
  const objects = rows.map((row) => Object.fromEntries(columns.map((name, i) => [name, jsonValue(row[i] ?? null)])));
  return JSON.stringify(objects, null, 2) + '\n';
}

/** RFC 4180: a header line, then rows; NULL is an empty field. */
function formatCsv({ columns, rows }: ResultTable): string {
  const field = (text: string): string => (/[",\r\n]|^\s|\s$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
  const lines = [columns.map(field).join(',')];
  for (const row of rows) lines.push(columns.map((_, i) => (row[i] === null || row[i] === undefined ? '' : field(cellText(row[i]!)))).join(','));
  return lines.join('\r\n') + '\r\n';
}

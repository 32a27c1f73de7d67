/**
 * rqlite's statement forms, parsed into SQL plus wire values: a JSON array whose items are
 * `"SQL"`, `["SQL", positional...]` or `["SQL", {named}]`. Named parameters (`:name`, `@name`,
 * `$name`) become numbered ones (`?N`), because the dqlite protocol binds by position.
 */
import { ValueType, type TypedValue } from '../protocol/index.ts';
import { HttpApiError } from './request.ts';

export interface ParsedStatement {
  sql: string;
  params: TypedValue[];
}

/** Bound on statements in one request: each is a round trip to the leader. */
export const STATEMENTS_MAX = 10_000;

export function parseStatements(body: unknown, what: string): ParsedStatement[] {
  if (!Array.isArray(body)) {
    throw new HttpApiError(400, `${what}: the body must be a JSON array of statements, e.g. ["SELECT 1"] or [["INSERT INTO t VALUES(?)", 1]]`);
  }
  if (body.length === 0) throw new HttpApiError(400, `${what}: the array holds no statement`);
  if (body.length > STATEMENTS_MAX) throw new HttpApiError(400, `${what}: ${body.length} statements, more than the ${STATEMENTS_MAX} one request may hold`);
  return body.map((item, index) => parseStatement(item, `${what}: statement ${index + 1}`));
}

export function parseStatement(item: unknown, where: string): ParsedStatement {
  if (typeof item === 'string') return { sql: item, params: [] };
  if (!Array.isArray(item) || item.length === 0 || typeof item[0] !== 'string') {
    throw new HttpApiError(400, `${where} must be a string or an array starting with the SQL text`);
  }
  const sql = item[0];
  const rest = item.slice(1);
  if (rest.length === 1 && isPlainObject(rest[0])) return bindNamed(sql, rest[0], where);
  return { sql, params: rest.map((value, i) => toWireValue(value, `${where}, parameter ${i + 1}`)) };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function toWireValue(value: unknown, where: string): TypedValue {
  if (value === null) return { type: ValueType.Null, value: null };
  switch (typeof value) {
    case 'boolean':
      return { type: ValueType.Integer, value: value ? 1n : 0n };
    case 'number':
      if (!Number.isFinite(value)) throw new HttpApiError(400, `${where} is not a finite number`);
      return Number.isSafeInteger(value) ? { type: ValueType.Integer, value: BigInt(value) } : { type: ValueType.Float, value };
    case 'string':
      return { type: ValueType.Text, value };
    default:
      throw new HttpApiError(400, `${where} must be a string, number, boolean or null, not ${Array.isArray(value) ? 'an array' : typeof value}`);
  }
}

/** Rewrites `:name`/`@name`/`$name` outside literals, comments and quoted names into `?N`. */
function bindNamed(sql: string, values: Record<string, unknown>, where: string): ParsedStatement {
  const indexes = new Map<string, number>();
  const params: TypedValue[] = [];
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    const skipped = skipQuotedOrComment(sql, i);
    if (skipped > i) {
      out += sql.slice(i, skipped);
      i = skipped;
      continue;
    }
    if ((c === ':' || c === '@' || c === '$') && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
      let end = i + 1;
      while (end < sql.length && /[A-Za-z0-9_]/.test(sql[end]!)) end++;
      const name = sql.slice(i + 1, end);
      let index = indexes.get(name);
      if (index === undefined) {
        if (!Object.hasOwn(values, name)) {
          throw new HttpApiError(400, `${where}: no value for the named parameter ${c}${name} (the object has ${Object.keys(values).join(', ') || 'no keys'})`);
        }
        params.push(toWireValue(values[name], `${where}, parameter ${name}`));
        index = params.length;
        indexes.set(name, index);
      }
      out += `?${index}`;
      i = end;
      continue;
    }
    out += c;
    i++;
  }
  return { sql: out, params };
}

/** The index just past a literal, quoted name or comment starting at `i`, or `i` if none does. */
export function skipQuotedOrComment(sql: string, i: number): number {
  const c = sql[i]!;
  if (c === "'" || c === '"' || c === '`') {
    let j = i + 1;
    while (j < sql.length) {
      if (sql[j] === c) {
        if (sql[j + 1] === c) j += 2;
        else return j + 1;
      } else j++;
    }
    return sql.length;
  }
  if (c === '[') {
    const end = sql.indexOf(']', i + 1);
    return end < 0 ? sql.length : end + 1;
  }
  if (c === '-' && sql[i + 1] === '-') {
    const end = sql.indexOf('\n', i + 2);
    return end < 0 ? sql.length : end + 1;
  }
  if (c === '/' && sql[i + 1] === '*') {
    const end = sql.indexOf('*/', i + 2);
    return end < 0 ? sql.length : end + 2;
  }
  return i;
}

/**
 * Whether a statement only reads, so /db/query may run it and /db/request answers it with rows.
 * Deliberately conservative: SELECT, VALUES, WITH and EXPLAIN without a writing keyword, and
 * PRAGMA without an assignment.
 */
export function isReadStatement(sql: string): boolean {
  const text = stripLiteralsAndComments(sql).trim().toUpperCase();
  if (/^PRAGMA\b/.test(text)) return !text.includes('=');
  if (!/^(SELECT|VALUES|EXPLAIN|WITH)\b/.test(text)) return false;
  return !/\b(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|ATTACH|DETACH|VACUUM|REINDEX)\b/.test(text);
}

/**
 * Whether a statement changes rows (INSERT, UPDATE, DELETE, REPLACE, or WITH ... one of them).
 * SQLite keeps the change count and last insert id of the last such statement on the
 * connection, so for anything else (CREATE, DROP, ...) they would describe an earlier statement.
 */
export function changesRows(sql: string): boolean {
  return /^(INSERT|UPDATE|DELETE|REPLACE|WITH)\b/.test(stripLiteralsAndComments(sql).trim().toUpperCase());
}

/** Whether a write statement returns rows (RETURNING), so it runs as a query. */
export function returnsRows(sql: string): boolean {
  return /\bRETURNING\b/.test(stripLiteralsAndComments(sql).toUpperCase());
}

function stripLiteralsAndComments(sql: string): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const skipped = skipQuotedOrComment(sql, i);
    if (skipped > i) {
      out += ' ';
      i = skipped;
    } else {
      out += sql[i];
      i++;
    }
  }
  return out;
}

/**
 * A database as SQL text (`/db/backup?fmt=sql`, what rqlite's `.dump` asks for): the same replay
 * a load runs, written out with literal values, inside one transaction, so `sqlite3 new.db < dump`
 * rebuilds it.
 */
import { ValueType, type TypedValue } from '../protocol/index.ts';
import { newStage } from './backup-load.ts';
import { replayDatabase } from './sqlite-replay.ts';
import { skipQuotedOrComment } from './statements.ts';

export async function sqlDump(image: Uint8Array): Promise<string> {
  const lines = ['PRAGMA foreign_keys=OFF;', 'BEGIN TRANSACTION;'];
  if (image.length > 0) {
    const staged = (await newStage()).begin();
    try {
      staged.append(image);
      await replayDatabase(staged.open(), {
        exec: (sql, params) => {
          lines.push(`${withLiterals(sql, params)};`);
          return Promise.resolve();
        },
      });
    } finally {
      staged.discard();
    }
  }
  lines.push('COMMIT;');
  return lines.join('\n') + '\n';
}

/** Puts each value in place of its `?`, skipping quoted names and literals. */
function withLiterals(sql: string, params: TypedValue[]): string {
  let out = '';
  let next = 0;
  let i = 0;
  while (i < sql.length) {
    const skipped = skipQuotedOrComment(sql, i);
    if (skipped > i) {
      out += sql.slice(i, skipped);
      i = skipped;
    } else if (sql[i] === '?') {
      const param = params[next++];
      if (!param) throw new Error(`statement has more placeholders than its ${params.length} values`);
      out += literal(param);
      i++;
    } else {
      out += sql[i];
      i++;
    }
  }
  if (next !== params.length) throw new Error(`statement has ${next} placeholders for ${params.length} values`);
  return out;
}

function literal(value: TypedValue): string {
  switch (value.type) {
    case ValueType.Null:
      return 'NULL';
    case ValueType.Integer:
    case ValueType.UnixTime:
      return value.value.toString();
    case ValueType.Float: {
      if (Number.isNaN(value.value)) return 'NULL';
      if (!Number.isFinite(value.value)) return value.value > 0 ? '9e999' : '-9e999';
      const text = String(value.value);
      // Keep it REAL: an integral float written as 3 would come back as INTEGER.
      return /[.eE]/.test(text) ? text : `${text}.0`;
    }
    case ValueType.Text:
    case ValueType.Iso8601:
      return `'${value.value.replace(/'/g, "''")}'`;
    case ValueType.Boolean:
      return value.value ? '1' : '0';
    case ValueType.Blob: {
      let hex = '';
      for (const byte of value.value) hex += byte.toString(16).padStart(2, '0');
      return `X'${hex}'`;
    }
  }
}

import type { CapturedTransaction, Database, SqlValue } from '../../wasm/index.ts';
import type { DatabaseImpl } from '../../wasm/database.ts';

/** Runs every statement of `sql` (binding `values` to the first), returns the last one's rows. */
export function run(db: Database, sql: string, values: readonly SqlValue[] = []): SqlValue[][] {
  let rest = sql;
  let rows: SqlValue[][] = [];
  let first = true;
  for (;;) {
    const statement = db.prepare(rest);
    if (statement === null) return rows;
    try {
      if (first && values.length > 0) statement.bind(values);
      first = false;
      rows = [];
      while (statement.step()) rows.push(statement.row());
    } finally {
      statement.finalize();
    }
    rest = statement.tail;
  }
}

/** Takes the leader's captured transactions, applies them to every follower, confirms them. */
export function ship(leader: Database, followers: readonly Database[]): CapturedTransaction[] {
  const captured = leader.takeCaptured();
  for (const transaction of captured) for (const follower of followers) follower.apply(transaction.payload);
  if (captured.length > 0) leader.confirm(captured.length);
  return captured;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Index of the first differing byte (or -1): for readable failure messages. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Throws with a description unless both databases' main files and WALs are byte-identical. */
export function assertSameFiles(a: Database, b: Database, context: string): void {
  const va = (a as DatabaseImpl).fileViews();
  const vb = (b as DatabaseImpl).fileViews();
  for (const which of ['main', 'wal'] as const) {
    const ca = va[which];
    const cb = vb[which];
    const same = ca.length === cb.length && ca.every((chunk, i) => bytesEqual(chunk, cb[i]!));
    if (!same) {
      const fa = a.files()[which];
      const fb = b.files()[which];
      throw new Error(
        `${context}: ${which} files differ (${fa.length} vs ${fb.length} bytes, first difference at byte ${firstDifference(fa, fb)})`,
      );
    }
  }
}

/** FNV-1a over the logical contents of every table (large blobs by length and ends). */
export function digest(db: Database): string {
  let hash = 0x811c9dc5;
  const feed = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      hash ^= text.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
  };
  const tables = run(db, "SELECT name, sql FROM sqlite_schema WHERE type IN ('table','index') ORDER BY name");
  for (const [name, sql] of tables) {
    feed(`${String(name)}|${String(sql)}\n`);
  }
  for (const [name] of run(db, "SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")) {
    const quoted = `"${String(name).replaceAll('"', '""')}"`;
    const statement = db.prepare(`SELECT * FROM ${quoted} ORDER BY rowid`)!;
    try {
      while (statement.step()) {
        const types = statement.rowTypes();
        const row = statement.row();
        for (let i = 0; i < row.length; i++) {
          const value = row[i];
          if (value instanceof Uint8Array) {
            feed(`B${value.length}:`);
            const sampled = value.length > 65536 ? [value.subarray(0, 64), value.subarray(-64)] : [value];
            for (const bytes of sampled) {
              for (let j = 0; j < bytes.length; j++) {
                hash ^= bytes[j]!;
                hash = Math.imul(hash, 0x01000193) >>> 0;
              }
            }
          } else feed(`${types[i]}${typeof value === 'bigint' ? `${value}n` : String(value)}`);
          feed('|');
        }
        feed('\n');
      }
    } finally {
      statement.finalize();
    }
  }
  return hash.toString(16);
}

/** Deterministic PRNG (xorshift32) so a failing seed replays exactly. */
export class Random {
  private state: number;

  constructor(seed: number) {
    // Scramble the seed: xorshift's first outputs from a small state are small.
    let state = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
    state = Math.imul(state ^ (state >>> 13), 0xc2b2ae35) >>> 0;
    this.state = state || 0x9e3779b9;
    for (let i = 0; i < 4; i++) this.next();
  }

  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x / 0x100000000;
  }

  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(length: number): Uint8Array {
    const bytes = new Uint8Array(length);
    for (let i = 0; i < length; i += 4) {
      const word = Math.floor(this.next() * 0x100000000);
      bytes[i] = word & 0xff;
      if (i + 1 < length) bytes[i + 1] = (word >>> 8) & 0xff;
      if (i + 2 < length) bytes[i + 2] = (word >>> 16) & 0xff;
      if (i + 3 < length) bytes[i + 3] = word >>> 24;
    }
    return bytes;
  }

  text(maxLength: number): string {
    const alphabet = ['a', 'b', 'z', ' ', "'", '"', 'é', 'ß', '中', '😀', '\u0000x'];
    let text = '';
    const length = this.int(maxLength + 1);
    for (let i = 0; i < length; i++) text += this.pick(alphabet);
    return text;
  }
}

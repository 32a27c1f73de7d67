/**
 * The fault suite's three workloads (register, list-append, bank; same SQL, same history
 * records, same checkers from `test/faults/`), run by simulated clients through `SimSession`.
 * Transactions are interactive: BEGIN, then one request per statement, then COMMIT.
 */
import type { TypedValue } from '../../src/protocol/index.ts';
import { checkBank } from '../faults/bank-checker.ts';
import type { History, MicroOp } from '../faults/history.ts';
import { checkRegisterHistory } from '../faults/linearizability.ts';
import { checkListAppend, parseList } from '../faults/list-append-checker.ts';
import { KeyRotation } from '../faults/workloads.ts';
import type { Prng } from '../sim/prng.ts';
import type { SimSession } from './sim-client.ts';

export interface CheckReport {
  ok: boolean | 'unknown';
  problems: string[];
  detail: string;
}

export interface SimWorkload {
  readonly name: 'register' | 'list-append' | 'bank';
  readonly database: string;
  setup(session: SimSession): Promise<void>;
  operate(session: SimSession, client: number, rng: Prng): Promise<void>;
  /**
   * A statement that opens a transaction and writes, for a client that sends it and leaves:
   * it must never commit (each would break its checker) and must not hold the database.
   */
  abandonedSql(rng: Prng): string;
  /** A read-only operation, for clients that only read; undefined when the workload has none. */
  readOnly?(session: SimSession, client: number, rng: Prng): Promise<void>;
  readFinal(session: SimSession): Promise<void>;
  check(): CheckReport;
}

type Outcome<T> = { value: T } | { error: unknown; beforeCommit: boolean };

/**
 * BEGIN, `work`, COMMIT on one connection. A statement that would need a new connection fails
 * instead (the transaction lived on the old one). On an error the client rolls back, as a real
 * client does, and drops the connection if even that fails.
 */
async function transaction<T>(session: SimSession, work: () => Promise<T>): Promise<Outcome<T>> {
  let committing = false;
  try {
    await session.exec('BEGIN');
    session.pin();
    const value = await work();
    committing = true;
    await session.exec('COMMIT');
    return { value };
  } catch (error) {
    if (!committing && session.connected) {
      try {
        await session.exec('ROLLBACK');
      } catch {
        session.close();
      }
    }
    return { error, beforeCommit: !committing };
  } finally {
    session.unpin();
  }
}

function num(value: TypedValue | number | undefined): number {
  return Number(typeof value === 'object' ? value.value : value);
}

export class RegisterWorkload implements SimWorkload {
  readonly name = 'register';
  readonly database = 'register';
  private readonly keys = new KeyRotation(2, 50);
  private nextValue = 1;
  private readonly recent = new Map<number, number[]>();

  constructor(private readonly history: History) {}

  async setup(session: SimSession): Promise<void> {
    await session.exec('CREATE TABLE IF NOT EXISTS registers (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)');
  }

  async operate(session: SimSession, client: number, rng: Prng): Promise<void> {
    const key = this.keys.pick(rng);
    const roll = rng.next();
    const recent = this.recent.get(key) ?? [];
    if (roll < 0.45) return this.read(session, client, key);
    const value = this.nextValue++;
    recent.push(value);
    if (recent.length > 3) recent.shift();
    this.recent.set(key, recent);
    if (roll < 0.75 || recent.length < 2) {
      const op = this.history.invoke(client, { workload: 'register', f: 'write', key, value });
      try {
        await session.exec('INSERT INTO registers (id, value) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET value = excluded.value', [key, value]);
        this.history.ok(op);
      } catch (error) {
        this.history.failed(op, error);
      }
      return;
    }
    const expected = rng.pick(recent.slice(0, -1));
    const op = this.history.invoke(client, { workload: 'register', f: 'cas', key, expected, value });
    try {
      const result = await session.exec('UPDATE registers SET value = ? WHERE id = ? AND value = ?', [value, key, expected]);
      op.applied = result.rowsAffected === 1;
      this.history.ok(op);
    } catch (error) {
      this.history.failed(op, error);
    }
  }

  async readOnly(session: SimSession, client: number, rng: Prng): Promise<void> {
    await this.read(session, client, this.keys.pick(rng));
  }

  abandonedSql(rng: Prng): string {
    return `BEGIN; UPDATE registers SET value = -1 WHERE id = ${this.keys.pick(rng)}`;
  }

  private async read(session: SimSession, client: number, key: number): Promise<void> {
    const op = this.history.invoke(client, { workload: 'register', f: 'read', key });
    try {
      const rows = await session.query('SELECT value FROM registers WHERE id = ?', [key]);
      op.value = rows.length === 0 ? null : num(rows[0]![0]);
      this.history.ok(op);
    } catch (error) {
      this.history.failed(op, error, true);
    }
  }

  async readFinal(session: SimSession): Promise<void> {
    const invokeMs = this.history.nowMs();
    const rows = await session.query('SELECT id, value FROM registers');
    const values = new Map(rows.map((row) => [num(row[0]), num(row[1])]));
    for (const key of this.keys.used) {
      const op = this.history.invoke(-1, { workload: 'register', f: 'read', key });
      op.invokeMs = invokeMs;
      op.value = values.get(key) ?? null;
      this.history.ok(op);
    }
  }

  check(): CheckReport {
    const report = checkRegisterHistory(this.history.ops);
    return { ok: report.ok, problems: report.problems, detail: `${report.keys} keys` };
  }
}

export class ListAppendWorkload implements SimWorkload {
  readonly name = 'list-append';
  readonly database = 'lists';
  private readonly keys = new KeyRotation(4, 60);
  private nextValue = 1;
  private finalLists: Map<number, number[]> | undefined;

  constructor(private readonly history: History) {}

  abandonedSql(rng: Prng): string {
    return `BEGIN; UPDATE lists SET vals = vals || ',-1' WHERE k = ${this.keys.pick(rng)}`;
  }

  async setup(session: SimSession): Promise<void> {
    await session.exec('CREATE TABLE IF NOT EXISTS lists (k INTEGER PRIMARY KEY, vals TEXT NOT NULL)');
  }

  async operate(session: SimSession, client: number, rng: Prng): Promise<void> {
    const count = 1 + rng.int(3);
    const micro: MicroOp[] = [];
    for (let i = 0; i < count; i++) {
      const key = this.keys.pick(rng);
      micro.push(rng.chance(0.5) ? { f: 'append', key, value: this.nextValue++ } : { f: 'read', key });
    }
    const op = this.history.invoke(client, { workload: 'list-append', f: 'txn', micro });
    const outcome = await transaction(session, async () => {
      const reads: (number[] | undefined)[] = [];
      for (const m of micro) {
        if (m.f === 'append') {
          await session.exec("INSERT INTO lists (k, vals) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET vals = vals || ',' || excluded.vals", [m.key, String(m.value)]);
          reads.push(undefined);
        } else {
          const rows = await session.query('SELECT vals FROM lists WHERE k = ?', [m.key]);
          reads.push(parseList(rows[0]?.[0]?.value));
        }
      }
      return reads;
    });
    if ('value' in outcome) {
      outcome.value.forEach((read, i) => {
        const m = micro[i]!;
        if (m.f === 'read' && read) m.value = read;
      });
      this.history.ok(op);
    } else {
      this.history.failed(op, outcome.error, outcome.beforeCommit);
    }
  }

  async readFinal(session: SimSession): Promise<void> {
    const rows = await session.query('SELECT k, vals FROM lists');
    this.finalLists = new Map(rows.map((row) => [num(row[0]), parseList(row[1]?.value)]));
  }

  check(): CheckReport {
    if (!this.finalLists) return { ok: false, problems: ['no final read of the lists'], detail: '' };
    const report = checkListAppend(this.history.ops, this.finalLists);
    return { ok: report.ok, problems: report.problems, detail: `${report.keys} keys, ${report.reads} reads` };
  }
}

export class BankWorkload implements SimWorkload {
  readonly name = 'bank';
  readonly database = 'bank';
  readonly accounts = 5;
  readonly initialBalance = 100;
  private finalBalances: number[] | undefined;

  constructor(private readonly history: History) {}

  async setup(session: SimSession): Promise<void> {
    await session.exec('CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)');
    const values = Array.from({ length: this.accounts }, (_, i) => `(${i + 1}, ${this.initialBalance})`).join(', ');
    await session.exec(`INSERT OR IGNORE INTO accounts (id, balance) VALUES ${values}`);
  }

  abandonedSql(rng: Prng): string {
    return `BEGIN; UPDATE accounts SET balance = balance + 1000 WHERE id = ${1 + rng.int(this.accounts)}`;
  }

  async readOnly(session: SimSession, client: number): Promise<void> {
    const op = this.history.invoke(client, { workload: 'bank', f: 'read' });
    try {
      const rows = await session.query('SELECT balance FROM accounts ORDER BY id');
      op.balances = rows.map((row) => num(row[0]));
      this.history.ok(op);
    } catch (error) {
      this.history.failed(op, error, true);
    }
  }

  async operate(session: SimSession, client: number, rng: Prng): Promise<void> {
    if (rng.chance(0.4)) return this.readOnly(session, client);
    const from = 1 + rng.int(this.accounts);
    const to = 1 + ((from + rng.int(this.accounts - 1)) % this.accounts);
    const amount = 1 + rng.int(20);
    const op = this.history.invoke(client, { workload: 'bank', f: 'transfer', from, to, amount });
    const outcome = await transaction(session, async () => {
      const rows = await session.query('SELECT balance FROM accounts WHERE id = ?', [from]);
      const balance = num(rows[0]?.[0] ?? 0);
      if (balance < amount) return false;
      await session.exec('UPDATE accounts SET balance = balance - ? WHERE id = ?', [amount, from]);
      await session.exec('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amount, to]);
      return true;
    });
    if ('value' in outcome) {
      op.applied = outcome.value;
      this.history.ok(op);
    } else {
      this.history.failed(op, outcome.error, outcome.beforeCommit);
    }
  }

  async readFinal(session: SimSession): Promise<void> {
    const rows = await session.query('SELECT balance FROM accounts ORDER BY id');
    this.finalBalances = rows.map((row) => num(row[0]));
  }

  check(): CheckReport {
    const report = checkBank(this.history.ops, this.accounts, this.accounts * this.initialBalance, this.finalBalances);
    return { ok: report.ok, problems: report.problems, detail: `${report.reads} reads` };
  }
}

export function createWorkloads(history: History): SimWorkload[] {
  return [new RegisterWorkload(history), new ListAppendWorkload(history), new BankWorkload(history)];
}


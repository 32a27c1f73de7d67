/**
 * The three workloads. Each has its own database, runs one operation at a time per client,
 * records every operation in the history (invoke, then ok / fail / info) and reads the final
 * state after the cluster healed. Keys rotate (a key takes a bounded number of operations, then
 * a fresh one replaces it) so the register search stays small per key.
 */
import type { Database, Transaction } from '../../runtimes/node/client.ts';
import { checkBank, type BankReport } from './bank-checker.ts';
import type { History, MicroOp } from './history.ts';
import { checkRegisterHistory, type RegisterReport } from './linearizability.ts';
import { checkSessionReads } from './session-checker.ts';
import { checkListAppend, parseList, type ListAppendReport } from './list-append-checker.ts';
import type { Prng } from '../sim/prng.ts';

export type WorkloadName = 'register' | 'list-append' | 'bank';

export interface CheckReport {
  ok: boolean | 'unknown';
  problems: string[];
  detail: string;
}

export interface Workload {
  readonly name: WorkloadName;
  readonly database: string;
  /** Creates the schema; idempotent (it is retried). */
  setup(db: Database): Promise<void>;
  /** Runs and records one operation. */
  operate(db: Database, client: number, rng: Prng): Promise<void>;
  /** Reads the final state after healing; throws when the cluster cannot answer. */
  readFinal(db: Database): Promise<void>;
  check(): CheckReport;
  /** What the final read saw, for the report of a failed run. */
  finalState(): unknown;
}

/** Replaces a key after this many operations on it, keeping the linearizability search small. */
export class KeyRotation {
  private readonly active: number[];
  private readonly uses = new Map<number, number>();
  private nextKey: number;
  readonly used = new Set<number>();

  constructor(
    activeKeys: number,
    private readonly opsPerKey: number,
  ) {
    this.active = Array.from({ length: activeKeys }, (_, i) => i + 1);
    this.nextKey = activeKeys + 1;
  }

  pick(rng: Prng): number {
    const slot = rng.int(this.active.length);
    const key = this.active[slot]!;
    const uses = (this.uses.get(key) ?? 0) + 1;
    this.uses.set(key, uses);
    if (uses >= this.opsPerKey) this.active[slot] = this.nextKey++;
    this.used.add(key);
    return key;
  }
}

/** Runs `work` in a transaction; errors thrown before COMMIT prove it did not apply. */
async function transaction<T>(db: Database, work: (tx: Transaction) => Promise<T>): Promise<{ value: T } | { error: unknown; beforeCommit: boolean }> {
  let beforeCommit = false;
  try {
    const value = await db.transaction(async (tx) => {
      try {
        return await work(tx);
      } catch (error) {
        beforeCommit = true;
        throw error;
      }
    });
    return { value };
  } catch (error) {
    return { error, beforeCommit };
  }
}

export class RegisterWorkload implements Workload {
  readonly name = 'register';
  readonly database = 'register';
  private readonly keys = new KeyRotation(4, 120);
  private nextValue = 1;
  /** Recent values written per key: CAS expects one of them, so some CAS succeed. */
  private readonly recent = new Map<number, number[]>();
  /** Clients reading at the session level: their reads are held to session guarantees, not linearizability. */
  readonly sessionClients = new Set<number>();

  constructor(private readonly history: History) {}

  async setup(db: Database): Promise<void> {
    await db.exec('CREATE TABLE IF NOT EXISTS registers (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)');
  }

  async operate(db: Database, client: number, rng: Prng): Promise<void> {
    const key = this.keys.pick(rng);
    const roll = rng.next();
    const recent = this.recent.get(key) ?? [];
    if (roll < 0.45) {
      const op = this.history.invoke(client, { workload: 'register', f: 'read', key });
      try {
        const { rows } = await db.queryRaw('SELECT value FROM registers WHERE id = ?', [key]);
        op.value = rows.length === 0 ? null : Number(rows[0]![0]);
        this.history.ok(op);
      } catch (error) {
        this.history.failed(op, error, true);
      }
      return;
    }
    const value = this.nextValue++;
    recent.push(value);
    if (recent.length > 3) recent.shift();
    this.recent.set(key, recent);
    if (roll < 0.75 || recent.length < 2) {
      const op = this.history.invoke(client, { workload: 'register', f: 'write', key, value });
      try {
        await db.exec('INSERT INTO registers (id, value) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET value = excluded.value', [key, value]);
        this.history.ok(op);
      } catch (error) {
        this.history.failed(op, error);
      }
      return;
    }
    const expected = rng.pick(recent.slice(0, -1));
    const op = this.history.invoke(client, { workload: 'register', f: 'cas', key, expected, value });
    try {
      const result = await db.exec('UPDATE registers SET value = ? WHERE id = ? AND value = ?', [value, key, expected]);
      op.applied = result.rowsAffected === 1;
      this.history.ok(op);
    } catch (error) {
      this.history.failed(op, error);
    }
  }

  async readFinal(db: Database): Promise<void> {
    const op0 = this.history.nowMs();
    const { rows } = await db.queryRaw('SELECT id, value FROM registers');
    const values = new Map(rows.map((row) => [Number(row[0]), Number(row[1])]));
    for (const key of this.keys.used) {
      const op = this.history.invoke(-1, { workload: 'register', f: 'read', key });
      op.invokeMs = op0;
      op.value = values.get(key) ?? null;
      this.history.ok(op);
    }
  }

  finalState(): unknown {
    const finals: { key: number; value: number | null | undefined }[] = [];
    for (const op of this.history.ops) if (op.workload === 'register' && op.f === 'read' && op.client === -1) finals.push({ key: op.key, value: op.value });
    return finals;
  }

  check(): CheckReport {
    const linearizable = this.history.ops.filter((op) => !(op.workload === 'register' && op.f === 'read' && this.sessionClients.has(op.client)));
    const report: RegisterReport = checkRegisterHistory(linearizable);
    const session = checkSessionReads(this.history.ops, this.sessionClients);
    const problems = [...report.problems, ...session.problems];
    const ok = report.ok === false || !session.ok ? false : report.ok;
    return { ok, problems, detail: `${report.keys} keys, ${session.reads} session reads` };
  }
}

export class ListAppendWorkload implements Workload {
  readonly name = 'list-append';
  readonly database = 'lists';
  private readonly keys = new KeyRotation(5, 80);
  private nextValue = 1;
  private finalLists: Map<number, number[]> | undefined;

  constructor(private readonly history: History) {}

  async setup(db: Database): Promise<void> {
    await db.exec('CREATE TABLE IF NOT EXISTS lists (k INTEGER PRIMARY KEY, vals TEXT NOT NULL)');
  }

  async operate(db: Database, client: number, rng: Prng): Promise<void> {
    const count = 1 + rng.int(3);
    const micro: MicroOp[] = [];
    for (let i = 0; i < count; i++) {
      const key = this.keys.pick(rng);
      micro.push(rng.chance(0.5) ? { f: 'append', key, value: this.nextValue++ } : { f: 'read', key });
    }
    const op = this.history.invoke(client, { workload: 'list-append', f: 'txn', micro });
    const outcome = await transaction(db, async (tx) => {
      const reads: (number[] | undefined)[] = [];
      for (const m of micro) {
        if (m.f === 'append') {
          await tx.exec('INSERT INTO lists (k, vals) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET vals = vals || \',\' || excluded.vals', [m.key, String(m.value)]);
          reads.push(undefined);
        } else {
          const { rows } = await tx.queryRaw('SELECT vals FROM lists WHERE k = ?', [m.key]);
          reads.push(parseList(rows[0]?.[0]));
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

  async readFinal(db: Database): Promise<void> {
    const { rows } = await db.queryRaw('SELECT k, vals FROM lists');
    this.finalLists = new Map(rows.map((row) => [Number(row[0]), parseList(row[1])]));
  }

  finalState(): unknown {
    return this.finalLists ? Object.fromEntries(this.finalLists) : null;
  }

  check(): CheckReport {
    if (!this.finalLists) return { ok: false, problems: ['no final read of the lists'], detail: '' };
    const report: ListAppendReport = checkListAppend(this.history.ops, this.finalLists);
    return { ok: report.ok, problems: report.problems, detail: `${report.keys} keys, ${report.reads} reads` };
  }
}

export class BankWorkload implements Workload {
  readonly name = 'bank';
  readonly database = 'bank';
  readonly accounts = 5;
  readonly initialBalance = 100;
  private finalBalances: number[] | undefined;

  constructor(private readonly history: History) {}

  async setup(db: Database): Promise<void> {
    await db.exec('CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)');
    const values = Array.from({ length: this.accounts }, (_, i) => `(${i + 1}, ${this.initialBalance})`).join(', ');
    await db.exec(`INSERT OR IGNORE INTO accounts (id, balance) VALUES ${values}`);
  }

  async operate(db: Database, client: number, rng: Prng): Promise<void> {
    if (rng.chance(0.4)) {
      const op = this.history.invoke(client, { workload: 'bank', f: 'read' });
      try {
        const { rows } = await db.queryRaw('SELECT balance FROM accounts ORDER BY id');
        op.balances = rows.map((row) => Number(row[0]));
        this.history.ok(op);
      } catch (error) {
        this.history.failed(op, error, true);
      }
      return;
    }
    const from = 1 + rng.int(this.accounts);
    const to = 1 + ((from + rng.int(this.accounts - 1)) % this.accounts);
    const amount = 1 + rng.int(20);
    const op = this.history.invoke(client, { workload: 'bank', f: 'transfer', from, to, amount });
    const outcome = await transaction(db, async (tx) => {
      const { rows } = await tx.queryRaw('SELECT balance FROM accounts WHERE id = ?', [from]);
      const balance = Number(rows[0]?.[0] ?? 0);
      if (balance < amount) return false;
      await tx.exec('UPDATE accounts SET balance = balance - ? WHERE id = ?', [amount, from]);
      await tx.exec('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amount, to]);
      return true;
    });
    if ('value' in outcome) {
      op.applied = outcome.value;
      this.history.ok(op);
    } else {
      this.history.failed(op, outcome.error, outcome.beforeCommit);
    }
  }

  async readFinal(db: Database): Promise<void> {
    const { rows } = await db.queryRaw('SELECT balance FROM accounts ORDER BY id');
    this.finalBalances = rows.map((row) => Number(row[0]));
  }

  finalState(): unknown {
    return this.finalBalances ?? null;
  }

  check(): CheckReport {
    const report: BankReport = checkBank(this.history.ops, this.accounts, this.accounts * this.initialBalance, this.finalBalances);
    return { ok: report.ok, problems: report.problems, detail: `${report.reads} reads` };
  }
}

export function createWorkloads(history: History): Workload[] {
  return [new RegisterWorkload(history), new ListAppendWorkload(history), new BankWorkload(history)];
}


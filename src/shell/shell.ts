import { ClientError, type Cluster, type Database, type FileData, returnsRows } from '../client/index.ts';
import { closestName } from './closest-name.ts';
import { adviseOn } from './error-advice.ts';
import { OUTPUT_FORMATS, type OutputFormat, type ResultTable, formatResult, parseOutputFormat } from './output-format.ts';
import { StatementSplitter } from './statement-splitter.ts';

/** What the shell needs from its host: connections, a file to write, a clock, and two streams. */
export interface ShellHost {
  /** Opens the database named on the command line (called once, on first use). */
  connectDatabase(): Promise<Database>;
  /** Opens the cluster administration client (called once, on first use). */
  connectCluster(): Promise<Cluster>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  nowMs(): number;
  /** Results. */
  stdout(text: string): void;
  /** Errors and notices. */
  stderr(text: string): void;
}

export interface ShellOptions {
  database: string;
  format: OutputFormat;
  timer?: boolean;
}

export const PROMPT = 'dqlite> ';
export const CONTINUATION_PROMPT = '   ...> ';

const HELP = `.cluster              the cluster's members: id, address, role
.leader               the leader's address
.describe ADDR        failure domain and weight of the node at ADDR
.remove ADDR          remove the node at ADDR from the cluster
.weight ADDR N        set the weight of the node at ADDR (leader elections prefer higher)
.dump FILE            write the database (and its WAL, as FILE-wal) to FILE
.dump ADDR [DB]       as the dqlite shell: DB (default: this one) from the node at ADDR into
                      the current directory, as DB and DB-wal
.tables               the tables and views
.schema [TABLE]       the CREATE statements (of one table)
.timer on|off         print how long each statement took
.format table|json|csv  output format (also .mode)
.help                 this text
.exit, .quit          leave (so does Ctrl-D)
SQL statements end with ';' and may span lines.
`;

const COMMANDS = ['.cluster', '.leader', '.describe', '.remove', '.weight', '.dump', '.tables', '.schema', '.timer', '.format', '.mode', '.help', '.exit', '.quit'];

/** A usage mistake in a dot command: printed as is, with a hint to see .help. */
class CommandError extends Error {}

/** Input lines in, results out: the dqlite shell without a terminal (see runtimes/node/shell.ts). */
export class Shell {
  private readonly host: ShellHost;
  private readonly options: ShellOptions;
  private readonly splitter = new StatementSplitter();
  private format: OutputFormat;
  private timer: boolean;
  private database: Promise<Database> | undefined;
  private cluster: Promise<Cluster> | undefined;

  constructor(host: ShellHost, options: ShellOptions) {
    this.host = host;
    this.options = options;
    this.format = options.format;
    this.timer = options.timer ?? false;
  }

  /** The prompt for the next line: the continuation prompt inside a statement. */
  get prompt(): string {
    return this.splitter.pending ? CONTINUATION_PROMPT : PROMPT;
  }

  /** Drops a half-typed statement (Ctrl-C). Returns whether there was one. */
  cancelPending(): boolean {
    const had = this.splitter.pending;
    this.splitter.reset();
    return had;
  }

  /**
   * One line of interactive input: a dot command (outside a statement), or SQL that may complete
   * statements, which run in order. Errors are printed; the result says whether all went well.
   */
  async line(input: string): Promise<{ ok: boolean; exit: boolean }> {
    if (!this.splitter.pending && input.trimStart().startsWith('.')) {
      const command = input.trim();
      if (command === '.exit' || command === '.quit') return { ok: true, exit: true };
      return { ok: await this.guard(() => this.command(command)), exit: false };
    }
    let ok = true;
    for (const statement of this.splitter.push(input + '\n')) {
      ok = (await this.guard(() => this.statement(statement))) && ok;
      if (!ok) break;
    }
    if (!ok) this.splitter.reset();
    return { ok, exit: false };
  }

  /**
   * Runs text given on the command line: its lines as typed, then a last statement that lacks
   * its `;`. Stops at the first error, as the dqlite shell does.
   */
  async run(text: string): Promise<boolean> {
    for (const input of text.split(/\r?\n/)) {
      const { ok, exit } = await this.line(input);
      if (!ok) return false;
      if (exit) return true;
    }
    const rest = this.splitter.flush();
    return rest === undefined ? true : this.guard(() => this.statement(rest));
  }

  /** What is left when input ends: an unfinished statement is reported, not run. Returns whether none was left. */
  endOfInput(): boolean {
    if (this.splitter.flush() === undefined) return true;
    this.host.stderr('Error: incomplete statement at the end of input (it needs a closing ;): not run\n');
    return false;
  }

  async close(): Promise<void> {
    const database = this.database;
    const cluster = this.cluster;
    this.database = undefined;
    this.cluster = undefined;
    await Promise.all([database?.then((d) => d.close(), () => undefined), cluster?.then((c) => c.close(), () => undefined)]);
  }

  private openDatabase(): Promise<Database> {
    if (!this.database) {
      this.database = this.host.connectDatabase();
      this.database.catch(() => (this.database = undefined));
    }
    return this.database;
  }

  private openCluster(): Promise<Cluster> {
    if (!this.cluster) {
      this.cluster = this.host.connectCluster();
      this.cluster.catch(() => (this.cluster = undefined));
    }
    return this.cluster;
  }

  private async guard(work: () => Promise<void>): Promise<boolean> {
    try {
      await work();
      return true;
    } catch (error) {
      if (error instanceof CommandError) {
        this.host.stderr(`Error: ${error.message}\n`);
        return false;
      }
      const advice = await adviseOn(error, async () => (await (await this.openCluster()).leader())?.address);
      this.host.stderr(`Error: ${advice.message}\n  ${advice.hint}\n`);
      return false;
    }
  }

  private print(result: ResultTable): void {
    this.host.stdout(formatResult(result, this.format));
  }

  /** Runs one statement; with .timer on, how long it took follows its result, as in sqlite3. */
  private async statement(sql: string): Promise<void> {
    const database = await this.openDatabase();
    const startMs = this.host.nowMs();
    if (returnsRows(sql)) this.print(await database.queryRaw(sql));
    else await database.exec(sql);
    if (this.timer) this.host.stderr(`Run Time: ${((this.host.nowMs() - startMs) / 1000).toFixed(3)} s\n`);
  }

  private async command(line: string): Promise<void> {
    const [name = '', ...args] = line.split(/\s+/);
    const command = name.toLowerCase();
    const arity = (min: number, max: number, usage: string): void => {
      if (args.length < min || args.length > max) throw new CommandError(`bad command format, should be: ${usage}`);
    };
    switch (command) {
      case '.help':
        this.host.stdout(HELP);
        return;
      case '.cluster': {
        arity(0, 0, '.cluster');
        const members = await (await this.openCluster()).members();
        this.print({ columns: ['id', 'address', 'role'], rows: members.map((m) => [m.id.toString(16), m.address, m.role]) });
        return;
      }
      case '.leader': {
        arity(0, 0, '.leader');
        const leader = await (await this.openCluster()).leader();
        if (leader) this.host.stdout(`${leader.address}\n`);
        return;
      }
      case '.describe': {
        arity(1, 1, '.describe <address>');
        const address = args[0]!;
        const metadata = await (await this.openCluster()).describe(address);
        this.print({ columns: ['address', 'failure_domain', 'weight'], rows: [[address, metadata.failureDomain, metadata.weight]] });
        return;
      }
      case '.remove': {
        arity(1, 1, '.remove <address>');
        const address = args[0]!;
        const cluster = await this.openCluster();
        const node = (await cluster.members()).find((m) => m.address === address);
        if (!node) throw new CommandError(`no node has address "${address}" (.cluster lists them)`);
        await cluster.remove(node.id);
        return;
      }
      case '.weight': {
        arity(2, 2, '.weight <address> <n>');
        const weight = Number(args[1]);
        if (!/^\d+$/.test(args[1]!) || !Number.isSafeInteger(weight)) throw new CommandError(`bad weight "${args[1]}": a whole number, 0 or more`);
        await (await this.openCluster()).weight(args[0]!, weight);
        return;
      }
      case '.dump':
        await this.dump(args);
        return;
      case '.tables': {
        arity(0, 0, '.tables');
        const result = await (await this.openDatabase()).queryRaw(
          "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name",
        );
        this.printList(result.rows.map((row) => String(row[0])));
        return;
      }
      case '.schema': {
        arity(0, 1, '.schema [table]');
        const filter = args[0] === undefined ? '' : ' AND tbl_name = ?';
        const result = await (await this.openDatabase()).queryRaw(
          `SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'${filter} ORDER BY type DESC, name`,
          args[0] === undefined ? [] : [args[0]],
        );
        this.printList(result.rows.map((row) => `${String(row[0])};`));
        return;
      }
      case '.timer': {
        arity(1, 1, '.timer on|off');
        const value = args[0]!.toLowerCase();
        if (value !== 'on' && value !== 'off') throw new CommandError(`.timer takes on or off, not "${args[0]}"`);
        this.timer = value === 'on';
        return;
      }
      case '.format':
      case '.mode': {
        arity(1, 1, `${command} ${OUTPUT_FORMATS.join('|')}`);
        const format = parseOutputFormat(args[0]!);
        if (!format) throw new CommandError(`unknown format "${args[0]}" (${OUTPUT_FORMATS.join(', ')})`);
        this.format = format;
        return;
      }
      default: {
        const near = closestName(command, COMMANDS);
        throw new CommandError(`unknown command "${name}"${near ? `: did you mean ${near}?` : ''} (.help lists the commands)`);
      }
    }
  }

  /** Names one per line (a JSON array in json format). */
  private printList(items: string[]): void {
    if (this.format === 'json') this.host.stdout(JSON.stringify(items, null, 2) + '\n');
    else if (items.length > 0) this.host.stdout(items.join('\n') + '\n');
  }

  private async dump(args: string[]): Promise<void> {
    if (args.length < 1 || args.length > 2) throw new CommandError('bad command format, should be: .dump FILE, or .dump <address> [<database>]');
    const target = args[0]!;
    let files: FileData[];
    let paths: string[];
    if (isAddress(target)) {
      // go-dqlite's form: the node's files into the current directory, under their own names.
      const database = args[1] ?? this.options.database;
      files = await (await this.openCluster()).dump(database, target);
      paths = files.map((file) => file.name);
    } else {
      if (args.length !== 1) throw new CommandError('bad command format, should be: .dump FILE');
      files = await (await this.openCluster()).dump(this.options.database);
      const main = files.find((file) => file.name === this.options.database);
      if (!main) throw new ClientError('protocol', `the leader sent no file named ${this.options.database}`);
      paths = files.map((file) => (file === main ? target : file.name.startsWith(`${this.options.database}-`) ? target + file.name.slice(this.options.database.length) : file.name));
    }
    // An empty WAL is written too: a stale FILE-wal from an earlier dump would otherwise be
    // applied to the new file by whoever opens it.
    for (let i = 0; i < files.length; i++) await this.host.writeFile(paths[i]!, files[i]!.data);
    this.host.stdout('OK\n');
  }
}

/** host:port (or [v6]:port): what .dump takes as a node rather than a file. */
function isAddress(text: string): boolean {
  return /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(text);
}


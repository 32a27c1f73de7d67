/**
 * `dqlite-wasm backup` and `dqlite-wasm import`: a database of the cluster to a standard SQLite
 * file and back, over the nodes' HTTP API (`GET /db/backup`, `POST /db/load`). Any node will do:
 * it forwards to the leader.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export const BACKUP_IMPORT_USAGE = `  dqlite-wasm backup -s ADDR[,ADDR...] DATABASE FILE
      Writes the committed state of DATABASE as a standard SQLite file (sqlite3 opens it).
  dqlite-wasm import -s ADDR[,ADDR...] DATABASE FILE [--replace]
      Loads the SQLite file FILE (rollback journal or WAL, any page size) into DATABASE as one
      replicated transaction; refused if DATABASE holds tables, unless --replace.
`;

class CommandError extends Error {
  /** A mistake in the command line (exit 2), not a refusal by the cluster (exit 1). */
  constructor(message: string, readonly usage = false) {
    super(message);
  }
}

interface Parsed {
  servers: string[];
  database: string;
  file: string;
  replace: boolean;
}

function parse(command: string, args: string[]): Parsed {
  const positional: string[] = [];
  let servers: string[] = [];
  let replace = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-s' || arg === '--servers') {
      const value = args[++i];
      if (!value) throw new CommandError(`${arg} needs a comma-separated list of addresses`, true);
      servers = value.split(',').map((s) => s.trim()).filter(Boolean);
    } else if (arg === '--replace' && command === 'import') replace = true;
    else if (arg.startsWith('-')) throw new CommandError(`unknown option ${arg}`, true);
    else positional.push(arg);
  }
  if (servers.length === 0) throw new CommandError(`${command} needs -s ADDR[,ADDR...]`, true);
  if (positional.length !== 2) throw new CommandError(`${command} needs DATABASE and FILE`, true);
  return { servers, database: positional[0]!, file: positional[1]!, replace };
}

/** Loads from this size on can stall the leader long enough for an election (see the hint). */
const LARGE_LOAD_BYTES = 64 * 2 ** 20;

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}


/**
 * Progress of a transfer on stderr: one line rewritten in place on a terminal (5 times a
 * second), else a line every few seconds; the first and the last are always printed.
 */
class TransferProgress {
  private readonly startMs = Date.now();
  private lastMs = 0;

  constructor(
    private readonly what: string,
    private readonly totalBytes: number | undefined,
  ) {}

  update(bytes: number): void {
    const now = Date.now();
    if (this.lastMs !== 0 && now - this.lastMs < (process.stderr.isTTY ? 200 : 5000)) return;
    this.lastMs = now;
    this.write(this.line(bytes), false);
  }

  /** The closing line of the transfer (100% when the size is known). */
  finish(bytes: number, after = ''): void {
    this.write(`${this.line(bytes)}${after}`, true);
  }

  /** A line about what comes after the transfer, printed as it is. */
  note(text: string, final = true): void {
    this.write(text, final);
  }

  private line(bytes: number): string {
    const seconds = Math.max((Date.now() - this.startMs) / 1000, 0.001);
    const of = this.totalBytes === undefined ? '' : ` of ${mib(this.totalBytes)}`;
    const percent = this.totalBytes === undefined ? '' : `${this.totalBytes === 0 ? 100 : Math.floor((100 * bytes) / this.totalBytes)}%, `;
    return `${this.what} ${mib(bytes)}${of} (${percent}${(bytes / 2 ** 20 / seconds).toFixed(1)} MiB/s)`;
  }

  private write(line: string, final: boolean): void {
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  }
}

async function errorText(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const parsed = JSON.parse(text) as { error?: string };
    return parsed.error ?? text;
  } catch {
    return text.trim();
  }
}

/** Tries each server until one answers; an answer that is an error ends it. */
async function firstAnswer(servers: string[], request: (address: string) => Promise<Response>): Promise<Response> {
  const problems: string[] = [];
  for (const address of servers) {
    try {
      return await request(address);
    } catch (error) {
      problems.push(`${address}: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`);
    }
  }
  throw new CommandError(`no node answered (${problems.join('; ')})`);
}

export async function backupCommand(args: string[]): Promise<void> {
  const { servers, database, file } = parse('backup', args);
  const response = await firstAnswer(servers, (address) => fetch(`http://${address}/db/backup?db=${encodeURIComponent(database)}`));
  if (!response.ok || !response.body) throw new CommandError(`backup refused (${response.status}): ${await errorText(response)}`);
  const partial = `${file}.partial`;
  const declared = Number(response.headers.get('content-length') ?? NaN);
  const progress = new TransferProgress(`backup: ${database} received`, Number.isFinite(declared) ? declared : undefined);
  let written = 0;
  const counted = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  counted.on('data', (chunk: Buffer) => {
    written += chunk.length;
    progress.update(written);
  });
  try {
    await pipeline(counted, createWriteStream(partial));
    await rename(partial, file);
  } catch (error) {
    await rm(partial, { force: true });
    throw new CommandError(`the backup broke off after ${mib(written)} (${(error as Error).message}); nothing was written to ${file}: run the backup again`);
  }
  progress.finish(written, `; ${database} written to ${file} (${written} bytes)`);
}

export async function importCommand(args: string[]): Promise<void> {
  const { servers, database, file, replace } = parse('import', args);
  const size = (await stat(file).catch(() => {
    throw new CommandError(`cannot read ${file}`);
  })).size;
  const query = `db=${encodeURIComponent(database)}${replace ? '&replace' : ''}`;
  let progress: TransferProgress | undefined;
  let waiting: ReturnType<typeof setInterval> | undefined;
  let uploadedMs = 0;
  let answeringAddress = '';
  let response: Response;
  try {
    response = await firstAnswer(servers, (address) => {
      answeringAddress = address;
      if (waiting) clearInterval(waiting);
      waiting = undefined;
      uploadedMs = 0;
      let sent = 0;
      progress = new TransferProgress(`import: sent`, size);
      const current = progress;
      const source = createReadStream(file, { highWaterMark: 1 << 20 });
      const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      // Read only as fetch sends (pull): an address that does not answer reads nothing, and the
      // bytes counted are the bytes handed to the connection.
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await chunks.next();
          if (next.done) {
            controller.close();
            current.finish(sent, '; the cluster is checking, replaying and replicating it');
            uploadedMs = Date.now();
            // A large load takes a while after the upload: say that it is still going.
            waiting = setInterval(() => current.note(`import: waiting for the cluster (${Math.round((Date.now() - uploadedMs) / 1000)} s)`, false), process.stderr.isTTY ? 1000 : 10_000);
            waiting.unref();
            return;
          }
          sent += next.value.length;
          current.update(sent);
          controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.byteLength));
        },
        cancel() {
          source.destroy();
        },
      });
      const init = {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body,
        duplex: 'half',
      };
      return fetch(`http://${address}/db/load?${query}`, init as RequestInit);
    });
  } finally {
    if (waiting) clearInterval(waiting);
  }
  if (uploadedMs !== 0 && process.stderr.isTTY) progress?.note(`import: the cluster answered after ${((Date.now() - uploadedMs) / 1000).toFixed(1)} s`);
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throw new CommandError(
      `the connection to ${answeringAddress} broke before it answered (${(error as Error).message}): the load may or may not have been applied; check ${database} (SELECT count(*) ...) before importing again`,
    );
  }
  if (!response.ok) {
    let message = text.trim();
    try {
      message = (JSON.parse(text) as { error?: string }).error ?? message;
    } catch {
      // not JSON: show it as it came
    }
    // A load of hundreds of MiB holds the leader's loop while its COMMIT is copied and sent;
    // on a busy machine that can outlast the election timeout.
    const hint =
      response.status === 503 && /leadership|commit/.test(message) && size >= LARGE_LOAD_BYTES
        ? `\nA load this large (${mib(size)}) can outlast the election timeout on a busy machine: check ${database}, then retry when the cluster is less busy, or run the nodes with a longer --tick-ms (election timeout = 10 ticks) and --commit-timeout-ms.`
        : '';
    throw new CommandError(`import refused (${response.status}): ${message}${hint}`);
  }
  const loaded = (JSON.parse(text) as { loaded: { tables: number; rows: number; indexes: number; views: number; triggers: number } }).loaded;
  console.log(
    `import: ${file} loaded into ${database}: ${loaded.tables} tables, ${loaded.rows} rows, ${loaded.indexes} indexes, ${loaded.views} views, ${loaded.triggers} triggers`,
  );
}

/** Runs `backup` or `import`; exits 1 with the reason on failure, 2 on bad usage. */
export async function runBackupImport(command: 'backup' | 'import', args: string[]): Promise<void> {
  try {
    if (command === 'backup') await backupCommand(args);
    else await importCommand(args);
  } catch (error) {
    if (error instanceof CommandError) {
      console.error(`dqlite-wasm ${command}: ${error.message}${error.usage ? `\n\nusage:\n${BACKUP_IMPORT_USAGE}` : ''}`);
      process.exit(error.usage ? 2 : 1);
    }
    console.error(`dqlite-wasm ${command}: ${(error as Error).message}`);
    process.exit(1);
  }
}

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

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** One line, rewritten in place on a terminal; printed every few seconds elsewhere. */
function progressPrinter(): (line: string, final?: boolean) => void {
  let lastMs = 0;
  return (line, final = false) => {
    const now = Date.now();
    if (!final && now - lastMs < (process.stderr.isTTY ? 200 : 5000)) return;
    lastMs = now;
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  };
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
  const progress = progressPrinter();
  let written = 0;
  const counted = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  counted.on('data', (chunk: Buffer) => {
    written += chunk.length;
    progress(`backup: ${mib(written)} of ${database} received`);
  });
  try {
    await pipeline(counted, createWriteStream(partial));
    await rename(partial, file);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
  progress(`backup: ${database} written to ${file} (${mib(written)}, ${written} bytes)`, true);
}

export async function importCommand(args: string[]): Promise<void> {
  const { servers, database, file, replace } = parse('import', args);
  const size = (await stat(file).catch(() => {
    throw new CommandError(`cannot read ${file}`);
  })).size;
  const progress = progressPrinter();
  const query = `db=${encodeURIComponent(database)}${replace ? '&replace' : ''}`;
  const response = await firstAnswer(servers, (address) => {
    let sent = 0;
    const source = createReadStream(file, { highWaterMark: 1 << 20 });
    source.on('data', (chunk) => {
      sent += chunk.length;
      progress(`import: sent ${mib(sent)} of ${mib(size)} (${size === 0 ? 100 : Math.floor((100 * sent) / size)}%)`);
      if (sent === size) progress(`import: sent ${mib(size)}; the cluster is checking and replicating it...`, true);
    });
    const init = {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: Readable.toWeb(source) as ReadableStream<Uint8Array>,
      duplex: 'half',
    };
    return fetch(`http://${address}/db/load?${query}`, init as RequestInit);
  });
  const text = await response.text();
  if (!response.ok) {
    let message = text.trim();
    try {
      message = (JSON.parse(text) as { error?: string }).error ?? message;
    } catch {
      // not JSON: show it as it came
    }
    throw new CommandError(`import refused (${response.status}): ${message}`);
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

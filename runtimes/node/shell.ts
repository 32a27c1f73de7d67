/**
 * `dqlite-wasm shell -s ADDR[,ADDR...] DATABASE [SQL]` on Node: flags, the terminal (readline
 * with history), files for .dump. The shell itself is src/shell/.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Shell, closestName, parseOutputFormat, OUTPUT_FORMATS } from '../../src/shell/index.ts';
import { connect, connectCluster } from './client.ts';

export const SHELL_USAGE = `usage: dqlite-wasm shell -s ADDR[,ADDR...] DATABASE [SQL]
  With SQL (statements separated by ';', or one dot command), runs it and prints the result;
  without, an interactive shell (.help lists the dot commands). Works with dqlite-wasm and
  real dqlite clusters.
  -s, --servers ADDR[,ADDR...]   cluster members to reach the leader through (repeatable)
  -f, --format table|json|csv    output format (default table; 'tabular' is accepted)
      --timer                    print how long each statement took
      --timeout-ms N             bound on finding the leader and on one statement (default 15000)
  -h, --help
  History is kept in ~/.dqlite_wasm_history (DQLITE_WASM_HISTORY names another file).
`;

const OPTIONS = {
  servers: { type: 'string', short: 's', multiple: true },
  format: { type: 'string', short: 'f' },
  timer: { type: 'boolean' },
  'timeout-ms': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const HISTORY_LINES_MAX = 1000;

/** A mistake on the command line: exit status 2 with the usage. */
export class ShellUsageError extends Error {}

interface ShellArgs {
  servers: string[];
  database: string;
  sql: string | undefined;
  format: (typeof OUTPUT_FORMATS)[number];
  timer: boolean;
  timeoutMs: number | undefined;
}

export function parseShellArgs(args: string[]): ShellArgs | 'help' {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; strict: true; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const unknown = /Unknown option '([^']+)'/.exec((error as Error).message)?.[1];
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
      const known = Object.entries(OPTIONS).flatMap(([name, option]) => ['--' + name, ...('short' in option ? ['-' + option.short] : [])]);
      const near = closestName(unknown, known.filter((k) => k.startsWith('--')));
      throw new ShellUsageError(`unknown option ${unknown}${near ? `: did you mean ${near}?` : ''}`);
    }
    throw new ShellUsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  const servers = (values.servers ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  if (servers.length === 0) throw new ShellUsageError('no servers: pass -s ADDR[,ADDR...]');
  const store = servers.find((s) => s.startsWith('file://'));
  if (store) throw new ShellUsageError(`node store files (${store}) are not supported: list the addresses, -s ADDR[,ADDR...]`);
  if (positionals.length < 1) throw new ShellUsageError('no database name');
  if (positionals.length > 2) throw new ShellUsageError(`too many arguments: quote the SQL as one argument (got ${positionals.length - 1})`);
  const format = parseOutputFormat(values.format ?? 'table');
  if (!format) throw new ShellUsageError(`unknown format "${values.format}" (${OUTPUT_FORMATS.join(', ')})`);
  let timeoutMs: number | undefined;
  if (values['timeout-ms'] !== undefined) {
    timeoutMs = Number(values['timeout-ms']);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new ShellUsageError(`--timeout-ms must be a positive whole number, got "${values['timeout-ms']}"`);
  }
  return { servers, database: positionals[0]!, sql: positionals[1], format, timer: values.timer ?? false, timeoutMs };
}

function loadHistory(path: string): string[] {
  try {
    // readline wants the newest entry first.
    return readFileSync(path, 'utf8').split('\n').filter(Boolean).slice(-HISTORY_LINES_MAX).reverse();
  } catch {
    return [];
  }
}

function saveHistory(path: string, history: string[]): void {
  try {
    writeFileSync(path, [...history].reverse().join('\n') + '\n', { mode: 0o600 });
  } catch {
    // A history that cannot be written is not worth failing the shell for.
  }
}

/**
 * The `shell` subcommand: runs the shell and exits the process with its status (2 for a usage
 * mistake, 1 when a statement failed in one-shot mode), once the output is flushed.
 */
export async function runShellCommand(args: string[]): Promise<never> {
  let status: number;
  try {
    status = await runShell(args);
  } catch (error) {
    if (!(error instanceof ShellUsageError)) throw error;
    process.stderr.write(`dqlite-wasm shell: ${error.message}\n\n${SHELL_USAGE}`);
    status = 2;
  }
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
  process.exit(status);
}

/** Runs the shell; resolves with the exit status. */
export async function runShell(args: string[]): Promise<number> {
  const parsed = parseShellArgs(args);
  if (parsed === 'help') {
    process.stdout.write(SHELL_USAGE);
    return 0;
  }
  const { servers, database, timeoutMs } = parsed;
  const common = { servers, ...(timeoutMs !== undefined && { timeoutMs }) };
  const shell = new Shell(
    {
      connectDatabase: () => connect({ ...common, database }),
      connectCluster: () => connectCluster(common),
      writeFile: (path, data) => writeFile(path, data, { mode: 0o600 }),
      nowMs: () => performance.now(),
      stdout: (text) => process.stdout.write(text),
      stderr: (text) => process.stderr.write(text),
    },
    { database, format: parsed.format, timer: parsed.timer },
  );
  try {
    if (parsed.sql !== undefined) return (await shell.run(parsed.sql)) ? 0 : 1;
    return (await interactive(shell)) ? 0 : 1;
  } finally {
    await shell.close();
  }
}

/**
 * Reads lines until Ctrl-D, .exit or the end of piped input. Resolves false when input was piped
 * and something failed, so scripts see the failure in the exit status (a terminal user saw it).
 */
async function interactive(shell: Shell): Promise<boolean> {
  const historyPath = process.env['DQLITE_WASM_HISTORY'] ?? join(homedir(), '.dqlite_wasm_history');
  const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal,
    history: loadHistory(historyPath),
    historySize: HISTORY_LINES_MAX,
    removeHistoryDuplicates: true,
  });
  if (terminal) {
    rl.on('history', (history: string[]) => saveHistory(historyPath, history));
  } else {
    // Piped input has no readline history: keep what was typed anyway, as a terminal would.
    rl.on('line', (line) => {
      if (line.trim() !== '') {
        try {
          appendFileSync(historyPath, line + '\n', { mode: 0o600 });
        } catch {
          // as above
        }
      }
    });
  }
  if (terminal) process.stdout.write('dqlite-wasm shell: statements end with ";", .help lists the commands, Ctrl-D leaves\n');
  // Prompts only on a terminal: piped input and output stay free of them, as in sqlite3.
  const prompt = (): void => {
    if (!terminal) return;
    rl.setPrompt(shell.prompt);
    rl.prompt();
  };
  rl.on('SIGINT', () => {
    if (!shell.cancelPending()) process.stdout.write('\n(.exit or Ctrl-D to leave)');
    process.stdout.write('\n');
    prompt();
  });
  prompt();
  // Lines are handled one after another, even when they arrive faster than statements run.
  let failed = false;
  for await (const line of rl) {
    const { ok, exit } = await shell.line(line);
    failed ||= !ok;
    if (exit) break;
    prompt();
  }
  if (!shell.endOfInput()) failed = true;
  rl.close();
  return terminal || !failed;
}

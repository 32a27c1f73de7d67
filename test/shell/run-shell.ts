/** Runs `dqlite-wasm shell` as a real process, as a user would from a checkout. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ShellRun {
  status: number;
  stdout: string;
  stderr: string;
}

export interface ShellRunOptions {
  cwd?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  /** Piped to the shell's standard input (which is otherwise closed). */
  input?: string;
  /** Run the compiled build (dist/bin/cli.js), as an installed package does. */
  compiled?: boolean;
}

export function runShell(args: string[], options: ShellRunOptions = {}): Promise<ShellRun> {
  const entry = options.compiled ? `${ROOT}/dist/bin/cli.js` : `${ROOT}/bin/dqlite-wasm`;
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build`);
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [entry, 'shell', ...args],
      { cwd: options.cwd ?? ROOT, timeout: options.timeoutMs ?? 30_000, env: { ...process.env, ...options.env } },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ status, stdout, stderr });
      },
    );
    child.stdin!.end(options.input ?? '');
  });
}

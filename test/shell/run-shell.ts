/** Runs `dqlite-wasm shell` as a real process, as a user would from a checkout. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ShellRun {
  status: number;
  stdout: string;
  stderr: string;
}

export function runShell(args: string[], options: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ShellRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [`${ROOT}/bin/dqlite-wasm`, 'shell', ...args],
      { cwd: options.cwd ?? ROOT, timeout: options.timeoutMs ?? 30_000, env: { ...process.env, ...options.env } },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ status, stdout, stderr });
      },
    );
  });
}

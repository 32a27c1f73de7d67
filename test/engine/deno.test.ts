import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const deno = `${root}node_modules/.bin/deno`;

// The engine must run unchanged in Deno (no Node-only APIs in wasm/): a real Deno process.
it.skipIf(!existsSync(deno))('runs under Deno with the default loader: capture, apply, checkpoint', async () => {
  const output = await new Promise<string>((resolve, reject) => {
    execFile(
      deno,
      ['run', '--allow-read', '--allow-env', '--node-modules-dir=manual', '--no-lock', 'test/engine/deno-smoke.ts'],
      { cwd: root, timeout: 60_000 },
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
  expect(JSON.parse(output.trim().split('\n').pop()!)).toEqual({ rows: [['from deno']], identical: true });
});

/**
 * What users get after `npm ci`: every `exports` entry imports with plain `node` (no loader),
 * and the command runs from the compiled build.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { exports: Record<string, unknown> };

describe('package entries (compiled; run `npm run build` if this fails after an edit)', () => {
  const names = Object.keys(pkg.exports).filter((k) => k !== './package.json');

  test.each(names)('%s imports with plain node', async (entry) => {
    const specifier = entry === '.' ? 'dqlite-wasm' : `dqlite-wasm/${entry.slice(2)}`;
    const { stdout } = await run(
      process.execPath,
      ['--input-type=module', '-e', `const m = await import('${specifier}'); console.log(Object.keys(m).length);`],
      { cwd: root },
    );
    expect(Number(stdout.trim())).toBeGreaterThan(0);
  });

  test('the compiled command prints its usage', async () => {
    const { stdout } = await run(process.execPath, ['dist/bin/cli.js', 'help'], { cwd: root });
    expect(stdout).toMatch(/dqlite-wasm start --address/);
  });

  test('the command in a checkout is itself the node process and rejects bad usage clearly', async () => {
    const error = await run(process.execPath, ['bin/dqlite-wasm', 'start'], { cwd: root }).catch((e: { code: number; stderr: string }) => e);
    expect((error as { code: number }).code).toBe(2);
    expect((error as { stderr: string }).stderr).toMatch(/start needs --address and --dir/);
  });
});

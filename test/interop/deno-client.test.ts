/**
 * The client in Deno against a real dqlite-demo node. Needs a `deno` binary: node_modules
 * (npm package `deno`) or PATH; skipped with a notice when there is none.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type DqliteDemoCluster, startDqliteDemoCluster } from '../helpers/dqlite-demo.ts';

function findDeno(): string | undefined {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  for (const candidate of [`${root}node_modules/.bin/deno`, `${root}node_modules/@deno/linux-x64-glibc/deno`]) {
    if (existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v deno'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const deno = findDeno();
let cluster: DqliteDemoCluster | undefined;
afterAll(async () => {
  await cluster?.stop();
});

describe.skipIf(!deno)(deno ? 'client in Deno' : 'client in Deno (skipped: no deno binary found)', () => {
  it('connects over node:net, writes and reads every kind of value', async () => {
    cluster = await startDqliteDemoCluster({ size: 1 });
    const script = fileURLToPath(new URL('./deno-client.ts', import.meta.url));
    const output = await new Promise<string>((resolve, reject) => {
      execFile(deno!, ['run', '--allow-net', '--allow-read', '--allow-env', script, cluster!.addresses.join(',')], { timeout: 60_000 }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
      );
    });
    expect(JSON.parse(output.trim().split('\n').at(-1)!)).toEqual({
      x: String(2n ** 62n),
      d: '1970-01-01T00:00:00.000Z',
      ok: true,
      b: [1, 2, 3],
      voters: 1,
    });
  });
});

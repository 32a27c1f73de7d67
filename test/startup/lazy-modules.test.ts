/**
 * What an idle node loads (docs/memory.md): a started node holds neither the HTTP API, the shell
 * nor joining until asked, and the API loads at its first request and answers it. Loaded modules
 * are read from a module hook in the node's real process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

const hookDir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-module-hook-'));
const hooks = join(hookDir, 'hooks.mjs');
const registrar = join(hookDir, 'register.mjs');
writeFileSync(hooks, `export async function load(url, context, next) {\n  process.stderr.write('LOADED ' + url + '\\n');\n  return next(url, context);\n}\n`);
writeFileSync(registrar, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);

let cluster: TestCluster;
beforeAll(async () => {
  // After the TypeScript loader: the hook registered last sees every module first.
  cluster = await TestCluster.start({ nodes: 1, entry: ['--import', './scripts/ts-loader.mjs', '--import', registrar, 'bin/cli.ts'] });
}, 60_000);
afterAll(async () => {
  await cluster?.destroy();
  rmSync(hookDir, { recursive: true, force: true });
});

function loaded(): string[] {
  return [...cluster.nodes[0]!.output.join('').matchAll(/^LOADED (\S+)$/gm)].map((match) => match[1]!);
}

test('a started node has loaded neither the HTTP API, the shell nor joining', () => {
  const modules = loaded();
  expect(modules.some((url) => url.endsWith('/src/server/node.ts'))).toBe(true);
  for (const lazy of ['/src/http/router.ts', '/src/http/cluster-node-host.ts', '/src/shell/shell.ts', '/runtimes/node/shell.ts', '/src/server/join.ts']) {
    expect(modules.filter((url) => url.endsWith(lazy))).toEqual([]);
  }
});

test('the HTTP API loads at its first request and answers it', async () => {
  const response = await fetch(`http://${cluster.addresses[0]}/db/execute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(['CREATE TABLE lazy (x INTEGER)']),
  });
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ results: [{}] });
  await waitFor('the API modules in the hook output', 5000, async () => (loaded().some((url) => url.endsWith('/src/http/router.ts')) ? true : undefined));
});

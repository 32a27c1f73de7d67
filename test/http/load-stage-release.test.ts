/**
 * A load's scratch SQLite instance (the stage the upload is checked and read in) goes with the
 * load: checking and reading a large file grows that instance's WebAssembly memory, which never
 * shrinks, and the node's memory report does not count it. (Before, one instance served every
 * load for the node's life and kept what the largest load grew it to: 20 MiB after a 100 MiB
 * file.) A real node in a child process run with --expose-gc loads a file made by Debian's
 * sqlite3 through `POST /db/load`; every SQLite module a stage was made with must be collectable
 * once the load answered.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-load-stage-release-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const moduleUrl = (path: string): string => JSON.stringify(pathToFileURL(join(ROOT, path)).href);

const SCRIPT = `
import { readFileSync } from 'node:fs';
const { SqliteFileStage } = await import(${moduleUrl('wasm/index.ts')});
const { startNode } = await import(${moduleUrl('runtimes/node/library.ts')});
const modules = [];
const create = SqliteFileStage.create.bind(SqliteFileStage);
SqliteFileStage.create = async (options) => {
  const stage = await create(options);
  modules.push(new WeakRef(stage.sqlite));
  return stage;
};
const node = await startNode({ dir: process.argv[2], tickMs: 20 });
for (let i = 0; i < 500 && node.status().state !== 'leader'; i++) await new Promise((r) => setTimeout(r, 20));
const load = async (database) => {
  const response = await fetch('http://' + node.address + '/db/load?db=' + database, { method: 'POST', body: readFileSync(process.argv[3]) });
  return { status: response.status, body: await response.text() };
};
const answers = [await load('one'), await load('two')];
for (let i = 0; i < 5; i++) {
  globalThis.gc();
  await new Promise((r) => setTimeout(r, 50));
}
console.log(JSON.stringify({ answers, made: modules.length, alive: modules.filter((ref) => ref.deref() !== undefined).length }));
await node.close();
`;

test('the SQLite instances two loads were checked and read in are gone once they answered', () => {
  const file = join(dir, 'upload.sqlite');
  execFileSync('sqlite3', [file, "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2000) INSERT INTO t SELECT n, randomblob(1000) FROM c;"]);
  const script = join(dir, 'load.mjs');
  writeFileSync(script, SCRIPT);
  const out = execFileSync(process.execPath, ['--expose-gc', '--import', './scripts/ts-loader.mjs', script, join(dir, 'node'), file], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const result = JSON.parse(out.trim().split('\n').at(-1)!) as { answers: { status: number; body: string }[]; made: number; alive: number };
  for (const answer of result.answers) {
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body).loaded.rows).toBe(2000);
  }
  expect(result.made).toBeGreaterThanOrEqual(1);
  expect(result.alive).toBe(0);
}, 90_000);

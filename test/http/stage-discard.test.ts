/**
 * A discarded staged file frees its bytes even while the StagedSqliteFile object lives on: a
 * load keeps that object until it answers, and frees the upload before its COMMIT, when the
 * leader holds the transaction several times over. (Before, the object kept the whole upload
 * referenced, so freeing it freed nothing.) Measured in a child process run with --expose-gc.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-stage-discard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SCRIPT = `
const { SqliteFileStage } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'wasm/index.ts')).href)});
const settle = async () => { for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); } };
const stage = await SqliteFileStage.create();
const staged = stage.begin();
const chunk = new Uint8Array(1 << 20).fill(1);
for (let i = 0; i < 64; i++) staged.append(chunk);
await settle();
const held = process.memoryUsage().arrayBuffers;
staged.discard();
await settle();
console.log(JSON.stringify({ held, after: process.memoryUsage().arrayBuffers, size: staged.sizeBytes }));
`;

test('discard() frees the staged bytes while the staged file object is still referenced', () => {
  const script = join(dir, 'discard.mjs');
  writeFileSync(script, SCRIPT);
  const out = execFileSync(process.execPath, ['--expose-gc', '--import', './scripts/ts-loader.mjs', script], { cwd: ROOT, encoding: 'utf8' });
  const { held, after, size } = JSON.parse(out.trim().split('\n').at(-1)!) as { held: number; after: number; size: number };
  expect(held).toBeGreaterThan(64 * 2 ** 20);
  expect(size).toBe(0);
  expect(held - after).toBeGreaterThan(60 * 2 ** 20);
}, 60_000);

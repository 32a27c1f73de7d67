#!/usr/bin/env node
// Builds the in-browser cluster demo into a static site: `node scripts/build-demo.mjs [outDir]`
// (default dist/demo). The page and the node worker are ES-module bundles; sqlite3.wasm sits
// next to the worker bundle, where the SQLite package looks for it (new URL(..., import.meta.url)).
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export async function buildDemo(outDir = join(root, 'dist', 'demo'), { minify = true } = {}) {
  const target = resolve(outDir);
  if (target === resolve('/') || root.startsWith(target + '/') || target === root) {
    throw new Error(`refusing to replace ${target} with the demo build: give a dedicated output directory`);
  }
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  await build({
    entryPoints: { main: join(root, 'demo', 'main.ts'), 'in-page-worker': join(root, 'demo', 'in-page-worker.ts') },
    outdir: target,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify,
    sourcemap: true,
    logLevel: 'warning',
    // The SQLite package has a Node entry too; the browser one must win.
    conditions: ['browser'],
  });
  const require = createRequire(import.meta.url);
  const sqliteDir = dirname(require.resolve('@sqlite.org/sqlite-wasm/sqlite3.wasm'));
  await copyFile(join(sqliteDir, 'sqlite3.wasm'), join(target, 'sqlite3.wasm'));
  for (const file of ['index.html', 'style.css']) await copyFile(join(root, 'demo', file), join(target, file));
  return target;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = await buildDemo(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(`demo built into ${outDir} (a static site: serve it over http(s), e.g. npm run demo)`);
}

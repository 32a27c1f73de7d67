// Builds the browser bundles into dist/browser/ (no CDN, no network):
//   worker.js   the node in a module Web Worker (SQLite WASM, OPFS/IndexedDB, WebSockets)
//   page.js     startWorkerNode() for the page, comlink included
//   sqlite3.wasm  next to worker.js: the package locates it with new URL(..., import.meta.url)
// Usage: node scripts/build-browser.mjs [--outdir DIR] [--watch]
import { build, context } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outdirIndex = args.indexOf('--outdir');
const outdir = resolve(root, outdirIndex >= 0 ? args[outdirIndex + 1] : 'dist/browser');
const watch = args.includes('--watch');

const options = {
  absWorkingDir: root,
  entryPoints: { worker: 'runtimes/browser/worker.ts', page: 'runtimes/browser/page.ts' },
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
  // The sqlite package's Node branch is never taken in a browser; keep esbuild from resolving it.
  conditions: ['browser', 'import'],
};

await mkdir(outdir, { recursive: true });
const require = createRequire(import.meta.url);
const wasm = join(dirname(require.resolve('@sqlite.org/sqlite-wasm/package.json')), 'dist', 'sqlite3.wasm');
await copyFile(wasm, join(outdir, 'sqlite3.wasm'));
if (watch) {
  const ctx = await context(options);
  await ctx.watch();
  console.log(`watching; bundles in ${outdir}`);
} else {
  await build(options);
  console.log(`browser bundles in ${outdir}`);
}

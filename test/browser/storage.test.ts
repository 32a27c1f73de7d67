/**
 * The browser storages (OPFS with sync access handles, IndexedDB) in a real Chromium worker:
 * the DurableStorage contract, reopening, and OPFS's recovery of an interrupted replace.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../helpers/cluster.ts';
import { CHROMIUM_PATH, chromiumAvailable } from './mixed-cluster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const chromium = chromiumAvailable();

describe.skipIf(!chromium)(chromium ? 'browser storage in Chromium' : 'browser storage (skipped: no /usr/bin/chromium)', () => {
  let dir: string;
  let server: Server;
  let origin: string;
  let browser: Browser;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-storage-'));
    await build({
      absWorkingDir: ROOT,
      entryPoints: ['test/browser/storage-check-worker.ts'],
      outfile: join(dir, 'worker.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      logLevel: 'warning',
    });
    await build({
      absWorkingDir: ROOT,
      entryPoints: ['test/browser/lock-check-worker.ts'],
      outfile: join(dir, 'lock-worker.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      logLevel: 'warning',
    });
    server = createServer((request, response) => {
      if (request.url === '/worker.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(join(dir, 'worker.js')));
      else if (request.url === '/lock-worker.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(join(dir, 'lock-worker.js')));
      else response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>storage</title>');
    });
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${port}`;
    const { chromium: launcher } = await import('playwright-core');
    browser = await launcher.launch({
      executablePath: CHROMIUM_PATH,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('OPFS and IndexedDB keep the DurableStorage contract; OPFS finishes an interrupted replace', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${origin}/`);
      const report = await page.evaluate(
        () =>
          new Promise((resolve, reject) => {
            const worker = new Worker('/worker.js', { type: 'module' });
            worker.onmessage = (event) => resolve(event.data);
            worker.onerror = (event) => reject(new Error(event.message));
          }),
      );
      const contract = {
        missing: null,
        appended: 'abcdef',
        truncated: 'abcdXY',
        replaced: 'two',
        listed: ['meta', 'seg'],
        afterRemove: ['seg'],
        beforeCommit: 'old',
        listedWhileWriting: ['big', 'seg'],
        replaceWhileWriting: 'rejected',
        committed: 'abCDef',
        afterAbort: 'abCDef',
        rangeSize: 10,
        range: '23456',
        rangePastEnd: '89',
        rangeMissing: true,
        badName: 'INVALID_NAME',
        reopened: 'abcdXY',
      };
      expect(report).toEqual({
        // A reader of a replaced file: OPFS cannot keep the old one and says so; IndexedDB holds it.
        opfs: { ...contract, rangeAfterReplace: 'rejected' },
        indexeddb: { ...contract, rangeAfterReplace: '012' },
        crash: { listed: ['meta'], meta: 'complete', other: null },
      });
    } finally {
      await context.close();
    }
  }, 60_000);

  test('OPFS waits for a terminated worker to release its files, and names a lock that outlasts the wait', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${origin}/`);
      const report = await page.evaluate(async () => {
        type Reply = { held?: boolean; firstCode?: string | null; text?: string | null; code?: string | null; message?: string };
        const replies = (worker: Worker): (() => Promise<Reply>) => {
          const queue: Reply[] = [];
          const waiting: ((reply: Reply) => void)[] = [];
          worker.onmessage = (event) => (waiting.length ? waiting.shift()!(event.data as Reply) : queue.push(event.data as Reply));
          return () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((resolve) => waiting.push(resolve)));
        };
        const dir = 'dqlite-wasm-lock-check';
        const holder = new Worker('/lock-worker.js', { type: 'module' });
        const fromHolder = replies(holder);
        holder.postMessage({ op: 'hold', dir });
        await fromHolder();
        // Held by a live worker: a short wait ends in a LOCKED error that says what to do.
        const impatient = new Worker('/lock-worker.js', { type: 'module' });
        const fromImpatient = replies(impatient);
        impatient.postMessage({ op: 'read', dir, lockWaitMs: 300 });
        const impatientFirst = await fromImpatient();
        const refused = await fromImpatient();
        impatient.terminate();
        // The next reader finds the file locked, and the holder is killed while it waits: it gets the file.
        const patient = new Worker('/lock-worker.js', { type: 'module' });
        const fromPatient = replies(patient);
        patient.postMessage({ op: 'read', dir, lockWaitMs: 10_000 });
        const patientFirst = await fromPatient();
        holder.terminate();
        const read = await fromPatient();
        patient.terminate();
        return { impatientFirst, refused, patientFirst, read };
      });
      expect(report.impatientFirst.firstCode).toBe('LOCKED');
      expect(report.patientFirst.firstCode).toBe('LOCKED');
      expect(report.refused.code).toBe('LOCKED');
      expect(report.refused.message).toMatch(/seg in OPFS dqlite-wasm-lock-check stayed locked for 300 ms: another tab or worker runs this node/);
      expect(report.read.code, report.read.message).toBeUndefined();
      expect(report.read.text).toBe('held');
    } finally {
      await context.close();
    }
  }, 60_000);
});

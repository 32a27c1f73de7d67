/**
 * The in-browser demo, end to end in the Debian Chromium: three nodes in Web Workers of one tab,
 * driven only through the page's UI. Saves screenshots under test/demo/screenshots/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo } from '../../scripts/build-demo.mjs';
import { serveDirectory } from '../../scripts/serve-demo.mjs';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), 'screenshots');
const WAIT_MS = 60_000;

interface CardState {
  node: number;
  state: string;
  alive: boolean;
  isolated: boolean;
  applied: number;
  commit: number;
  term: number;
  leaderId: number;
}

async function cards(page: Page): Promise<CardState[]> {
  return page.$$eval('[data-testid=node-card]', (elements) =>
    elements.map((e) => {
      const d = (e as HTMLElement).dataset;
      return {
        node: Number(d['node']),
        state: d['state'] ?? '',
        alive: d['alive'] === 'true',
        isolated: d['isolated'] === 'true',
        applied: Number(d['applied']),
        commit: Number(d['commit']),
        term: Number(d['term']),
        leaderId: Number(d['leaderId']),
      };
    }),
  );
}

/** Polls the cards (the page itself updates them from the workers) until `probe` returns a value. */
async function waitForCards<T>(page: Page, what: string, probe: (cards: CardState[]) => T | undefined, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: CardState[] = [];
  for (;;) {
    last = await cards(page);
    const result = probe(last);
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; cards: ${JSON.stringify(last)}`);
    await page.waitForTimeout(200);
  }
}

/** A leader that every live, connected node follows; `not` excludes a node. */
function agreedLeader(all: CardState[], not?: number): number | undefined {
  const connected = all.filter((c) => c.alive && !c.isolated && c.state !== 'starting');
  const leader = connected.find((c) => c.state === 'leader');
  if (!leader || leader.node === not) return undefined;
  return connected.every((c) => c.leaderId === leader.node) ? leader.node : undefined;
}

/** Every listed node is up, has applied all it committed, and all hold the same index ≥ `atLeast`. */
function converged(all: CardState[], count: number, atLeast: number): number | undefined {
  if (all.length !== count || !all.every((c) => c.alive && c.applied >= 0)) return undefined;
  const applied = all[0]!.applied;
  const same = all.every((c) => c.applied === applied && c.commit === applied);
  return same && applied >= atLeast ? applied : undefined;
}

/** Rows each card's live query panel shows now (-1 before its first result), by node. */
async function livePanelRows(page: Page): Promise<Map<number, number>> {
  const entries = await page.$$eval('[data-testid=node-card]', (elements) =>
    elements.map((e) => [Number((e as HTMLElement).dataset['node']), Number((e.querySelector('[data-testid=live-panel]') as HTMLElement | null)?.dataset['rows'] ?? -2)] as const),
  );
  return new Map(entries);
}

/** Waits until every card's live panel shows `rows` (each evaluates on its own replica). */
async function waitForLivePanels(page: Page, what: string, rows: number, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const shown = await livePanelRows(page);
    if (shown.size > 0 && [...shown.values()].every((n) => n === rows)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: panels show ${JSON.stringify([...shown])}, expected ${rows}`);
    await page.waitForTimeout(200);
  }
}

async function runSql(page: Page, sql: string, target = 'leader'): Promise<{ kind: string; text: string }> {
  await page.fill('[data-testid=sql-input]', sql);
  await page.selectOption('[data-testid=sql-target]', target);
  await page.$eval('[data-testid=sql-result]', (e) => ((e as HTMLElement).dataset['kind'] = ''));
  await page.click('[data-testid=sql-run]');
  await page.waitForFunction(
    () => {
      const kind = (document.querySelector('[data-testid=sql-result]') as HTMLElement | null)?.dataset['kind'];
      return kind !== undefined && kind !== '' && kind !== 'pending';
    },
    undefined,
    { timeout: WAIT_MS },
  );
  const box = page.locator('[data-testid=sql-result]');
  return { kind: (await box.getAttribute('data-kind')) ?? '', text: await box.innerText() };
}

async function countRows(page: Page): Promise<number> {
  const result = await runSql(page, 'SELECT count(*) AS n FROM notes');
  expect(result.kind, result.text).toBe('rows');
  return Number(await page.locator('[data-testid=sql-table] tbody td').first().innerText());
}

describe.skipIf(!existsSync(CHROMIUM))('in-browser cluster demo (Chromium)', () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let site: { url: string; close(): Promise<void> };
  let outDir: string;

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    outDir = await mkdtemp(join(tmpdir(), 'dqlite-demo-'));
    await buildDemo(outDir, { minify: false });
    site = await serveDirectory(outDir, { host: '127.0.0.1', port: 0 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    // A fresh context starts with empty OPFS; reloading within it keeps the nodes' storage.
    context = await browser.newContext({ viewport: { width: 1400, height: 1100 } });
    page = await context.newPage();
    page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  it('replicates, survives a leader crash and a partition, converges, and recovers after a reload', async () => {
    await page.goto(site.url);
    await page.waitForSelector('body[data-ready=true]', { timeout: 120_000 });
    const firstLeader = await waitForCards(page, 'a leader', (all) => (all.length === 3 ? agreedLeader(all) : undefined));

    // Writes through the console reach the leader and come back as results.
    expect((await runSql(page, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")).kind).toBe('exec');
    const insert = await runSql(page, "INSERT INTO notes (body) VALUES ('one'), ('two'), ('three')");
    expect(insert.kind, insert.text).toBe('exec');
    expect(insert.text).toContain('3 rows affected');
    expect(await countRows(page)).toBe(3);

    // A follower refuses writes with the not-leader code.
    const follower = (await cards(page)).find((c) => c.node !== firstLeader)!.node;
    const refused = await runSql(page, "INSERT INTO notes (body) VALUES ('refused')", `node-${follower}`);
    expect(refused.kind).toBe('error');
    expect(refused.text).toMatch(/10250|not leader/i);

    // A short write burst plots throughput and latency.
    await page.selectOption('[data-testid=burst-seconds]', '5');
    await page.click('[data-testid=burst-run]');
    // The follower's live panel (its own replica's live query) updates while the burst runs.
    const followerPanelUpdates = new Set<number>();
    const burstDone = (): Promise<boolean> => page.evaluate(() => /rows committed/.test(document.querySelector('[data-testid=burst-stats]')?.textContent ?? ''));
    while (!(await burstDone())) {
      const rows = (await livePanelRows(page)).get(follower)!;
      if (rows > 0) followerPanelUpdates.add(rows);
      await page.waitForTimeout(150);
    }
    const panelText = await page.locator(`[data-testid=node-card][data-node="${follower}"] [data-testid=live-panel]`).innerText();
    expect(followerPanelUpdates.size, `the follower's panel showed ${[...followerPanelUpdates].join(', ')} (now: ${panelText})`).toBeGreaterThan(1);
    await page.waitForFunction(() => /rows committed/.test(document.querySelector('[data-testid=burst-stats]')?.textContent ?? ''), undefined, {
      timeout: WAIT_MS,
    });
    const burstText = await page.locator('[data-testid=burst-stats]').innerText();
    expect(Number(/^(\d+) rows committed/.exec(burstText)?.[1] ?? 0), burstText).toBeGreaterThan(0);
    const afterBurst = await waitForCards(page, 'all nodes to apply the burst', (all) => converged(all, 3, 1));
    const burstRows = await runSql(page, 'SELECT count(*) AS n FROM burst');
    expect(burstRows.kind, burstRows.text).toBe('rows');
    const burstCount = Number(await page.locator('[data-testid=sql-table] tbody td').first().innerText());
    await waitForLivePanels(page, 'every live panel to show the burst', burstCount);
    // A card shows the node's memory only when its status reports it: one line, or nothing.
    const memoryLines = await page.$$eval('[data-testid=node-card] [data-testid=memory]', (elements) =>
      elements.map((e) => ({ hidden: (e as HTMLElement).hidden, text: e.textContent ?? '' })),
    );
    expect(memoryLines).toHaveLength(3);
    for (const line of memoryLines) {
      if (line.hidden) expect(line.text).toBe('');
      else expect(line.text).toMatch(/^mem \d+\.\d MiB \(log \d+\.\d, db \d+\.\d, (snap \d+\.\d, )?wasm \d+\.\d\)$/);
    }
    await page.screenshot({ path: join(SCREENSHOTS, '01-cluster-after-burst.png'), fullPage: true });

    // Kill the leader: another node takes over and has the rows.
    await page.click(`[data-testid=node-card][data-node="${firstLeader}"] [data-testid=kill]`);
    const secondLeader = await waitForCards(page, 'a new leader after the kill', (all) => agreedLeader(all, firstLeader));
    expect(secondLeader).not.toBe(firstLeader);
    expect(await countRows(page)).toBe(3);
    await page.screenshot({ path: join(SCREENSHOTS, '02-leader-killed.png'), fullPage: true });

    // Restart it from its OPFS storage: it catches up.
    await page.click(`[data-testid=node-card][data-node="${firstLeader}"] [data-testid=restart]`);
    const afterRestart = await waitForCards(page, 'the restarted node to catch up', (all) => converged(all, 3, afterBurst));
    // Its live panel follows the new worker: the same rows again, from its recovered replica.
    await waitForLivePanels(page, 'the restarted node\'s live panel', burstCount);

    // Isolate the leader: a write sent to it waits, then fails clearly; the majority elects anew.
    await page.click(`[data-testid=node-card][data-node="${secondLeader}"] [data-testid=isolate]`);
    const minorityWrite = await runSql(page, "INSERT INTO notes (body) VALUES ('lost in the minority')", `node-${secondLeader}`);
    expect(minorityWrite.kind).toBe('error');
    expect(minorityWrite.text).toMatch(/leadership|not leader|timed out|quorum|majority/i);
    await page.locator('.console').screenshot({ path: join(SCREENSHOTS, '03a-minority-write-failed.png') });
    const thirdLeader = await waitForCards(page, 'a leader on the majority side', (all) => agreedLeader(all, secondLeader));
    const more = await runSql(page, "INSERT INTO notes (body) VALUES ('four'), ('five')");
    expect(more.kind, more.text).toBe('exec');
    const isolatedCard = (await cards(page)).find((c) => c.node === secondLeader)!;
    const majorityApplied = Math.max(...(await cards(page)).map((c) => c.applied));
    expect(isolatedCard.applied).toBeLessThan(majorityApplied);
    await page.screenshot({ path: join(SCREENSHOTS, '03-partitioned.png'), fullPage: true });

    // Heal: every card converges on the same index, with one leader.
    await page.click(`[data-testid=node-card][data-node="${secondLeader}"] [data-testid=heal]`);
    await waitForCards(page, 'all nodes to converge after healing', (all) => converged(all, 3, Math.max(afterRestart, majorityApplied)));
    await waitForCards(page, 'one agreed leader after healing', (all) => agreedLeader(all));
    expect(thirdLeader).not.toBe(secondLeader);
    expect(await countRows(page)).toBe(5);
    await page.screenshot({ path: join(SCREENSHOTS, '04-healed.png'), fullPage: true });

    // Reload: the workers restart from OPFS and the data is still there.
    await page.reload();
    await page.waitForSelector('body[data-ready=true]', { timeout: 120_000 });
    await waitForCards(page, 'a leader after the reload', (all) => (all.length === 3 ? agreedLeader(all) : undefined));
    expect(await countRows(page)).toBe(5);
    const body = await runSql(page, 'SELECT body FROM notes ORDER BY id');
    expect(body.text).toContain('five');
    expect(body.text).not.toContain('lost in the minority');
    await waitForCards(page, 'all nodes to converge after the reload', (all) => converged(all, 3, 1));
    await page.screenshot({ path: join(SCREENSHOTS, '05-after-reload.png'), fullPage: true });
  }, 300_000);

  it('resets to a fresh cluster, grows it to five nodes, and slows a link', async () => {
    await page.selectOption('[data-testid=node-count]', '4');
    await page.click('[data-testid=reset]');
    await waitForCards(page, 'a fresh 4-node cluster', (all) => (all.length === 4 && all.every((c) => c.state !== 'starting') ? agreedLeader(all) : undefined), 120_000);
    const gone = await runSql(page, 'SELECT count(*) FROM notes');
    expect(gone.kind).toBe('error');
    expect(gone.text).toMatch(/no such table/);

    await page.click('[data-testid=add-node]');
    const leader = await waitForCards(page, 'a 5-node cluster', (all) => (all.length === 5 ? agreedLeader(all) : undefined), 120_000);
    const follower = (await cards(page)).find((c) => c.node !== leader)!.node;
    await page.selectOption('[data-testid=link-a]', String(leader));
    await page.selectOption('[data-testid=link-b]', String(follower));
    await page.selectOption('[data-testid=link-delay]', '500');
    await page.click('[data-testid=link-apply]');
    await expect.poll(() => page.locator('[data-testid=link-state]').innerText()).toContain(`500 ms`);

    // A write commits with a majority while the slow follower lags, then catches up.
    expect((await runSql(page, 'CREATE TABLE t (x)')).kind).toBe('exec');
    expect((await runSql(page, 'INSERT INTO t VALUES (1)')).kind).toBe('exec');
    const index = Math.max(...(await cards(page)).map((c) => c.commit));
    await waitForCards(page, 'all five nodes to converge over the slow link', (all) => converged(all, 5, index));
    const timeline = await page.locator('[data-testid=events]').innerText();
    expect(timeline).toMatch(/slowed to 500 ms/);
    expect(timeline).toMatch(/became leader/);
    await page.screenshot({ path: join(SCREENSHOTS, '06-five-nodes-slow-link.png'), fullPage: true });
    await page.click('[data-testid=heal-all]');
    await expect.poll(() => page.locator('[data-testid=link-state]').innerText()).toContain('full speed');
  }, 300_000);
});

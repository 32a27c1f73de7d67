/**
 * The live query panel of a node card: `SELECT count(*), max(id) FROM burst` as a live query on
 * that node's own replica (its `database().live()`, evaluated in its worker), so every card,
 * followers included, shows the rows its replica committed, updating as a write burst runs. The
 * panel re-subscribes when its node restarts, and retries while the table does not exist yet.
 */
import type { BrowserEmbeddedNode, Database } from '../runtimes/browser/library.ts';
import { DATABASE_NAME } from './sql-console.ts';

export const LIVE_PANEL_SQL = 'SELECT count(*) AS n, max(id) AS last_id FROM burst';
const RETRY_MS = 1_500;

export class LivePanel {
  readonly root: HTMLElement;
  private readonly value: HTMLElement;
  private readonly note: HTMLElement;
  /** Each attach gets a new generation: callbacks of an older node are ignored. */
  private generation = 0;
  private stop: (() => void) | undefined;
  private database: Database | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;

  constructor() {
    this.value = document.createElement('span');
    this.value.className = 'live-value';
    this.value.dataset['testid'] = 'live-value';
    this.value.textContent = '—';
    this.note = document.createElement('span');
    this.note.className = 'live-note';
    const title = document.createElement('div');
    title.className = 'live-title';
    title.textContent = 'live: count(*), max(id) FROM burst';
    title.title = `${LIVE_PANEL_SQL}, evaluated by this node on its own replica after every commit that changed the table`;
    this.root = document.createElement('div');
    this.root.className = 'live';
    this.root.dataset['testid'] = 'live-panel';
    this.root.dataset['rows'] = '-1';
    this.root.append(title, this.value, this.note);
  }

  /** Follows `node` from now on (a new node after a restart replaces the old one). */
  attach(node: BrowserEmbeddedNode): void {
    this.detach('');
    const generation = ++this.generation;
    this.note.textContent = 'subscribing…';
    void this.subscribe(node, generation);
  }

  /** Stops following (the node was killed or removed); `reason` is shown. */
  detach(reason: string): void {
    this.generation++;
    clearTimeout(this.retry);
    this.stop?.();
    this.stop = undefined;
    void this.database?.close();
    this.database = undefined;
    if (reason) this.note.textContent = reason;
  }

  private async subscribe(node: BrowserEmbeddedNode, generation: number): Promise<void> {
    const current = (): boolean => generation === this.generation;
    try {
      // readFrom 'any': opened on the worker's own node, which needs no leader (nor a way to reach one).
      this.database ??= await node.database(DATABASE_NAME, { consistency: 'session', readFrom: 'any', timeoutMs: 10_000 });
    } catch (error) {
      if (current()) this.later(node, generation, `cannot open ${DATABASE_NAME}: ${(error as Error).message}`);
      return;
    }
    if (!current()) return;
    this.stop = this.database.live(LIVE_PANEL_SQL, [], { consistency: 'session' }).onChange(
      (result) => {
        if (!current()) return;
        const row = result.rows[0] ?? {};
        const n = Number(row['n'] ?? 0);
        this.value.textContent = `${n} rows · max id ${row['last_id'] ?? '—'}`;
        this.note.textContent = `at index ${result.index}`;
        this.root.dataset['rows'] = String(n);
        this.root.dataset['index'] = String(result.index);
      },
      (error) => {
        if (!current()) return;
        this.stop = undefined;
        const waiting = /no such table/.test(error.message);
        this.later(node, generation, waiting ? 'waiting for the burst table (start a write burst)' : `ended: ${error.message}; retrying`);
      },
    );
  }

  private later(node: BrowserEmbeddedNode, generation: number, note: string): void {
    this.note.textContent = note;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      if (generation === this.generation) void this.subscribe(node, generation);
    }, RETRY_MS);
  }
}

/**
 * "Write burst": a few concurrent writers stream single-row inserts through the leader; every
 * `bucketMs` the committed rows and their commit latencies become one sample for the plot.
 */
import { Database } from '../src/client/index.ts';
import type { DialStream } from '../src/runtime.ts';
import { DATABASE_NAME } from './sql-console.ts';

export interface BurstSample {
  /** Wall time at the end of the bucket. */
  atMs: number;
  rowsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  errors: number;
}

export interface BurstOptions {
  dial: DialStream;
  servers: string[];
  writers: number;
  durationMs: number;
  bucketMs: number;
  onSample: (sample: BurstSample) => void;
  onError: (message: string) => void;
}

export const BURST_WRITERS_MAX = 16;
/** Latencies kept per bucket; beyond it samples are thinned. */
const LATENCIES_PER_BUCKET_MAX = 10_000;

export class WriteBurst {
  private running = false;
  private latencies: number[] = [];
  private errors = 0;
  private total = 0;
  private readonly databases: Database[] = [];

  get isRunning(): boolean {
    return this.running;
  }

  get rowsWritten(): number {
    return this.total;
  }

  async run(options: BurstOptions): Promise<number> {
    if (this.running) throw new Error('a write burst is already running');
    if (options.writers < 1 || options.writers > BURST_WRITERS_MAX) throw new RangeError(`writers must be 1 to ${BURST_WRITERS_MAX}`);
    this.running = true;
    this.total = 0;
    const setup = new Database({ servers: options.servers, dial: options.dial, database: DATABASE_NAME, timeoutMs: 10_000 });
    this.databases.push(setup);
    try {
      await setup.exec('CREATE TABLE IF NOT EXISTS burst (id INTEGER PRIMARY KEY, writer INTEGER, at_ms INTEGER, payload TEXT)');
    } catch (error) {
      options.onError(`could not create the burst table: ${(error as Error).message}`);
      this.stop();
      return 0;
    }
    const deadline = performance.now() + options.durationMs;
    let bucketStart = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      const sorted = this.latencies.sort((a, b) => a - b);
      const pick = (q: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
      options.onSample({
        atMs: Date.now(),
        rowsPerSecond: (sorted.length * 1000) / Math.max(1, now - bucketStart),
        latencyP50Ms: pick(0.5),
        latencyP99Ms: pick(0.99),
        errors: this.errors,
      });
      this.latencies = [];
      this.errors = 0;
      bucketStart = now;
    }, options.bucketMs);
    const payload = 'x'.repeat(64);
    const writer = async (id: number): Promise<void> => {
      const db = new Database({ servers: options.servers, dial: options.dial, database: DATABASE_NAME, timeoutMs: 10_000 });
      this.databases.push(db);
      while (this.running && performance.now() < deadline) {
        const started = performance.now();
        try {
          await db.exec('INSERT INTO burst (writer, at_ms, payload) VALUES (?, ?, ?)', [id, Date.now(), payload]);
          if (this.latencies.length < LATENCIES_PER_BUCKET_MAX) this.latencies.push(performance.now() - started);
          this.total++;
        } catch (error) {
          if (!this.running) break;
          this.errors++;
          options.onError(`writer ${id}: ${(error as Error).message}`);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: options.writers }, (_, i) => writer(i + 1)));
    } finally {
      clearInterval(ticker);
      this.stop();
    }
    return this.total;
  }

  stop(): void {
    this.running = false;
    for (const db of this.databases.splice(0)) db.close();
  }
}

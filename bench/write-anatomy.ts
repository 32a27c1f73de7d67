/**
 * The latency anatomy of a benchmark row: the leader's `dqlite_wasm_write_stage_seconds`
 * histograms (src/server/write-anatomy.ts) and its log-write histograms, scraped from /metrics
 * before and after the row, the difference printed as a table of mean, p50 and p99 per stage.
 */

const STAGES = ['execute', 'persist', 'quorum', 'apply', 'answer'] as const;

interface HistogramDelta {
  /** Upper bounds (seconds or entries) with cumulative counts, ascending; +Inf last. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

export type Scrape = Map<string, HistogramDelta>;

/** Histograms of a /metrics exposition, keyed by name and label set (`le` removed). */
export function parseHistograms(text: string, names: readonly string[]): Scrape {
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+?)_(bucket|sum|count)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || !names.includes(match[1]!)) continue;
    const [, name, part, labelText = '', value] = match;
    const le = /le="([^"]+)"/.exec(labelText)?.[1];
    const series = `${name}${labelText.replace(/,?le="[^"]+"/, '').replace('{}', '')}`;
    const h = out.get(series) ?? { buckets: [], sum: 0, count: 0 };
    out.set(series, h);
    if (part === 'bucket') h.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), count: Number(value) });
    else if (part === 'sum') h.sum = Number(value);
    else h.count = Number(value);
  }
  return out;
}

export const ANATOMY_METRICS = ['dqlite_wasm_write_stage_seconds', 'dqlite_wasm_raft_log_write_seconds', 'dqlite_wasm_raft_log_write_entries'];

export async function scrapeAnatomy(address: string): Promise<Scrape> {
  const response = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(5000) });
  return parseHistograms(await response.text(), ANATOMY_METRICS);
}

function subtract(after: HistogramDelta, before: HistogramDelta | undefined): HistogramDelta {
  if (!before) return after;
  return {
    buckets: after.buckets.map((b, i) => ({ le: b.le, count: b.count - (before.buckets[i]?.count ?? 0) })),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/** The p-th percentile, linearly interpolated inside its bucket (as Prometheus' histogram_quantile). */
function quantile(h: HistogramDelta, p: number): number {
  if (h.count === 0) return NaN;
  const rank = (p / 100) * h.count;
  let lower = 0;
  let below = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower;
      const inBucket = b.count - below;
      return inBucket === 0 ? b.le : lower + ((b.le - lower) * (rank - below)) / inBucket;
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}

/** The table of one row: per stage, mean / p50 / p99 in ms and its share of the mean total. */
export function anatomyTable(label: string, before: Scrape, after: Scrape): string {
  const lines = [`  latency anatomy on the leader, ${label}:`, `    ${'stage'.padEnd(28)}  mean ms   p50 ms   p99 ms   share`];
  const stages = STAGES.map((stage) => {
    const key = `dqlite_wasm_write_stage_seconds{stage="${stage}"}`;
    const after_ = after.get(key);
    return { stage, h: after_ ? subtract(after_, before.get(key)) : undefined };
  });
  const totalMean = stages.reduce((sum, s) => sum + (s.h && s.h.count > 0 ? s.h.sum / s.h.count : 0), 0);
  for (const { stage, h } of stages) {
    if (!h || h.count === 0) {
      lines.push(`    ${stage.padEnd(28)}  (no writes observed)`);
      continue;
    }
    const mean = h.sum / h.count;
    lines.push(
      `    ${stage.padEnd(28)} ${(mean * 1000).toFixed(3).padStart(8)} ${(quantile(h, 50) * 1000).toFixed(3).padStart(8)} ${(quantile(h, 99) * 1000).toFixed(3).padStart(8)} ${`${((100 * mean) / totalMean).toFixed(0)}%`.padStart(7)}`,
    );
  }
  lines.push(`    ${'sum of means'.padEnd(28)} ${(totalMean * 1000).toFixed(3).padStart(8)}`);
  const write = after.get('dqlite_wasm_raft_log_write_seconds');
  const entries = after.get('dqlite_wasm_raft_log_write_entries');
  if (write && entries) {
    const w = subtract(write, before.get('dqlite_wasm_raft_log_write_seconds'));
    const e = subtract(entries, before.get('dqlite_wasm_raft_log_write_entries'));
    if (w.count > 0) {
      lines.push(
        `    leader log writes: ${w.count}, mean ${((w.sum / w.count) * 1000).toFixed(3)} ms (p99 ${(quantile(w, 99) * 1000).toFixed(3)} ms), ${(e.sum / e.count).toFixed(1)} entries each`,
      );
    }
  }
  return lines.join('\n');
}

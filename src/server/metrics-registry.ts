/**
 * A small Prometheus metrics registry: counters, gauges and histograms with fixed buckets, and
 * the text exposition format (version 0.0.4) with HELP and TYPE lines. No dependency, no timers:
 * values change when the code counts, or are read from a callback when scraped.
 */

export type Labels = Readonly<Record<string, string>>;

/** The content type Prometheus expects for the text format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Bound on label combinations per metric: a label fed from input must not grow memory without end. */
export const SERIES_PER_METRIC_MAX = 1024;

const NAME_PATTERN = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_PATTERN = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Metric {
  readonly name: string;
  render(lines: string[]): void;
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.register(new Histogram(name, help, buckets, labelNames));
  }

  /** Every metric in registration order, in the text exposition format. */
  render(): string {
    const lines: string[] = [];
    for (const metric of this.metrics.values()) metric.render(lines);
    return lines.join('\n') + '\n';
  }

  private register<T extends Metric>(metric: T): T {
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} is registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }
}

abstract class LabelledMetric<Value> implements Metric {
  protected readonly series = new Map<string, { labels: Labels; value: Value }>();

  constructor(
    readonly name: string,
    private readonly help: string,
    protected readonly labelNames: readonly string[],
    private readonly type: 'counter' | 'gauge' | 'histogram',
  ) {
    if (!NAME_PATTERN.test(name)) throw new Error(`metric name "${name}" is not a valid Prometheus name`);
    for (const label of labelNames) {
      if (!LABEL_PATTERN.test(label) || label.startsWith('__') || label === 'le') {
        throw new Error(`label name "${label}" of ${name} is not allowed`);
      }
    }
  }

  protected abstract initial(): Value;
  protected abstract renderSeries(lines: string[], labels: Labels, value: Value): void;

  protected seriesFor(labels: Labels): { labels: Labels; value: Value } | undefined {
    // Runs for every observation of every write: checked and keyed without building arrays.
    let given = 0;
    for (const name in labels) if (Object.hasOwn(labels, name)) given++;
    let key = '';
    for (let i = 0; i < this.labelNames.length; i++) {
      const value = labels[this.labelNames[i]!];
      if (value === undefined) given = -1;
      key = i === 0 ? (value ?? '') : `${key}\u0000${value ?? ''}`;
    }
    if (given !== this.labelNames.length) {
      throw new Error(`${this.name} takes labels [${this.labelNames.join(', ')}], got [${Object.keys(labels).join(', ')}]`);
    }
    let entry = this.series.get(key);
    if (!entry) {
      // Past the bound new combinations are not recorded: the metric stays, memory does not grow.
      if (this.series.size >= SERIES_PER_METRIC_MAX) return undefined;
      entry = { labels: { ...labels }, value: this.initial() };
      this.series.set(key, entry);
    }
    return entry;
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${escapeHelp(this.help)}`);
    lines.push(`# TYPE ${this.name} ${this.type}`);
    for (const { labels, value } of this.series.values()) this.renderSeries(lines, labels, value);
  }
}

export class Counter extends LabelledMetric<{ count: number }> {
  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    super(name, help, labelNames, 'counter');
  }

  protected initial(): { count: number } {
    return { count: 0 };
  }

  inc(labels: Labels = {}, amount = 1): void {
    if (!(amount >= 0) || !Number.isFinite(amount)) throw new Error(`${this.name} cannot grow by ${amount}`);
    const entry = this.seriesFor(labels);
    if (entry) entry.value.count += amount;
  }

  /**
   * `inc` for one label combination, keyed once: for what counts at every write. Past the
   * series bound the combination is not recorded, as with `inc`.
   */
  bind(labels: Labels = {}): (amount?: number) => void {
    const fixed = { ...labels };
    // Found on first use, as `inc` would make it: an unused combination is not exposed.
    let series: { count: number } | undefined;
    return (amount = 1) => {
      if (!(amount >= 0) || !Number.isFinite(amount)) throw new Error(`${this.name} cannot grow by ${amount}`);
      series ??= this.seriesFor(fixed)?.value;
      if (series) series.count += amount;
    };
  }

  /** For totals kept elsewhere (a transport's byte counts): the counter follows them. */
  set(labels: Labels, total: number): void {
    const entry = this.seriesFor(labels);
    if (entry && total >= entry.value.count) entry.value.count = total;
  }

  protected renderSeries(lines: string[], labels: Labels, value: { count: number }): void {
    lines.push(`${this.name}${formatLabels(labels)} ${formatNumber(value.count)}`);
  }
}

export class Gauge extends LabelledMetric<{ value: number }> {
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames, 'gauge');
  }

  protected initial(): { value: number } {
    return { value: 0 };
  }

  set(labels: Labels, value: number): void {
    const entry = this.seriesFor(labels);
    if (entry) entry.value.value = value;
  }

  /** Drops every series: for gauges re-read whole at each scrape (one series per database). */
  reset(): void {
    this.series.clear();
  }

  protected renderSeries(lines: string[], labels: Labels, value: { value: number }): void {
    lines.push(`${this.name}${formatLabels(labels)} ${formatNumber(value.value)}`);
  }
}

interface HistogramValue {
  /** Observations per bucket, not cumulative (index buckets.length: above the last bound); summed when rendered. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends LabelledMetric<HistogramValue> {
  private readonly buckets: readonly number[];

  constructor(name: string, help: string, buckets: readonly number[], labelNames: readonly string[]) {
    super(name, help, labelNames, 'histogram');
    if (buckets.length === 0) throw new Error(`histogram ${name} needs at least one bucket`);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`histogram ${name}: buckets must increase`);
    }
    this.buckets = [...buckets];
  }

  protected initial(): HistogramValue {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }

  observe(labels: Labels, value: number): void {
    if (!Number.isFinite(value)) return;
    const entry = this.seriesFor(labels);
    if (entry) this.record(entry.value, value);
  }

  /** `observe` for one label combination, keyed once: for what is timed at every write. */
  bind(labels: Labels = {}): (value: number) => void {
    const fixed = { ...labels };
    // Found on first use, as `observe` would make it: an unused combination is not exposed.
    let series: HistogramValue | undefined;
    return (value) => {
      if (!Number.isFinite(value)) return;
      series ??= this.seriesFor(fixed)?.value;
      if (series) this.record(series, value);
    };
  }

  private record(series: HistogramValue, value: number): void {
    // Only the bucket it falls in: the cumulative counts Prometheus wants are summed when scraped.
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]!) i++;
    series.counts[i]!++;
    series.sum += value;
    series.count++;
  }

  protected renderSeries(lines: string[], labels: Labels, value: HistogramValue): void {
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += value.counts[i]!;
      lines.push(`${this.name}_bucket${formatLabels({ ...labels, le: formatNumber(this.buckets[i]!) })} ${cumulative}`);
    }
    lines.push(`${this.name}_bucket${formatLabels({ ...labels, le: '+Inf' })} ${value.count}`);
    lines.push(`${this.name}_sum${formatLabels(labels)} ${formatNumber(value.sum)}`);
    lines.push(`${this.name}_count${formatLabels(labels)} ${value.count}`);
  }
}

function formatLabels(labels: Labels): string {
  const names = Object.keys(labels);
  if (names.length === 0) return '';
  return `{${names.map((name) => `${name}="${escapeLabelValue(labels[name]!)}"`).join(',')}}`;
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

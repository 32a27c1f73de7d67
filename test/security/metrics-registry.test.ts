import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { MetricsRegistry, SERIES_PER_METRIC_MAX } from '../../src/server/metrics-registry.ts';

describe('metrics registry', () => {
  test('renders counters, gauges and histograms with HELP and TYPE, escaped, that promtool accepts', () => {
    const registry = new MetricsRegistry();
    const requests = registry.counter('app_requests_total', 'Requests.\nBy kind \\ result.', ['kind']);
    const depth = registry.gauge('app_queue_depth', 'Queue depth.');
    const latency = registry.histogram('app_latency_seconds', 'Latency.', [0.1, 1], ['kind']);
    requests.inc({ kind: 'a"b\\c\nd' });
    requests.inc({ kind: 'plain' }, 2);
    depth.set({}, -3);
    latency.observe({ kind: 'x' }, 0.05);
    latency.observe({ kind: 'x' }, 0.5);
    latency.observe({ kind: 'x' }, 5);
    const text = registry.render();
    expect(text).toBe(
      [
        '# HELP app_requests_total Requests.\\nBy kind \\\\ result.',
        '# TYPE app_requests_total counter',
        'app_requests_total{kind="a\\"b\\\\c\\nd"} 1',
        'app_requests_total{kind="plain"} 2',
        '# HELP app_queue_depth Queue depth.',
        '# TYPE app_queue_depth gauge',
        'app_queue_depth -3',
        '# HELP app_latency_seconds Latency.',
        '# TYPE app_latency_seconds histogram',
        'app_latency_seconds_bucket{kind="x",le="0.1"} 1',
        'app_latency_seconds_bucket{kind="x",le="1"} 2',
        'app_latency_seconds_bucket{kind="x",le="+Inf"} 3',
        'app_latency_seconds_sum{kind="x"} 5.55',
        'app_latency_seconds_count{kind="x"} 3',
        '',
      ].join('\n'),
    );
    const checked = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(checked.stdout + checked.stderr).toBe('');
    expect(checked.status).toBe(0);
  });

  test('refuses bad names, wrong labels, shrinking counters and unordered buckets', () => {
    const registry = new MetricsRegistry();
    expect(() => registry.counter('bad-name_total', 'x')).toThrow(/not a valid Prometheus name/);
    expect(() => registry.counter('no_suffix', 'x')).toThrow(/_total/);
    expect(() => registry.histogram('h_seconds', 'x', [1, 1])).toThrow(/increase/);
    expect(() => registry.gauge('g', 'x', ['le'])).toThrow(/not allowed/);
    const counter = registry.counter('c_total', 'x', ['a']);
    expect(() => counter.inc({ b: '1' })).toThrow(/takes labels \[a\]/);
    expect(() => counter.inc({ a: '1' }, -1)).toThrow(/cannot grow/);
    expect(() => registry.counter('c_total', 'again')).toThrow(/registered twice/);
  });

  test('bound series count like inc and observe, appear only once used, and put a value on a bound in that bucket', () => {
    const registry = new MetricsRegistry();
    const counter = registry.counter('b_total', 'x', ['kind']);
    const histogram = registry.histogram('b_seconds', 'x', [0.1, 1, 10], ['kind']);
    const countA = counter.bind({ kind: 'a' });
    const countUnused = counter.bind({ kind: 'unused' });
    const observeA = histogram.bind({ kind: 'a' });
    histogram.bind({ kind: 'unused' });
    expect(registry.render()).not.toContain('kind=');
    countA();
    countA(2);
    counter.inc({ kind: 'a' });
    for (const value of [0.125, 0.5, 1, 10, 11, NaN]) observeA(value);
    histogram.observe({ kind: 'a' }, 0.1);
    const lines = registry.render().split('\n');
    expect(lines).toContain('b_total{kind="a"} 4');
    expect(lines.filter((line) => line.startsWith('b_seconds'))).toEqual([
      'b_seconds_bucket{kind="a",le="0.1"} 1',
      'b_seconds_bucket{kind="a",le="1"} 4',
      'b_seconds_bucket{kind="a",le="10"} 5',
      'b_seconds_bucket{kind="a",le="+Inf"} 6',
      'b_seconds_sum{kind="a"} 22.725',
      'b_seconds_count{kind="a"} 6',
    ]);
    expect(() => countUnused(-1)).toThrow(/cannot grow/);
    expect(() => counter.bind({ wrong: 'x' })()).toThrow(/takes labels \[kind\]/);
  });

  test('label combinations are bounded', () => {
    const registry = new MetricsRegistry();
    const counter = registry.counter('many_total', 'x', ['id']);
    for (let i = 0; i < SERIES_PER_METRIC_MAX + 50; i++) counter.inc({ id: String(i) });
    expect(registry.render().split('\n').filter((line) => line.startsWith('many_total{')).length).toBe(SERIES_PER_METRIC_MAX);
  });
});

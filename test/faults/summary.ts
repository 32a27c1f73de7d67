/** The summary table printed after fault-injection runs. */
import type { RunResult } from './run.ts';

export function verdictCell(ok: boolean | 'unknown' | undefined): string {
  if (ok === undefined) return '-';
  if (ok === 'unknown') return 'unknown';
  return ok ? 'ok' : 'VIOLATION';
}

export function formatSummary(results: readonly RunResult[]): string {
  const header = ['run', 'seed', 'nodes', 'ops', 'ok', 'fail', 'info', 'faults', 'register', 'list-append', 'bank', 'replicas', 'result'];
  const rows = results.map((r, i) => [
    String(i + 1),
    String(r.seed),
    String(r.nodes),
    String(r.ops),
    String(r.ok),
    String(r.fail),
    String(r.info),
    String(r.faults.length),
    verdictCell(r.verdicts.register?.ok),
    verdictCell(r.verdicts['list-append']?.ok),
    verdictCell(r.verdicts.bank?.ok),
    verdictCell(r.replicas?.ok),
    r.passed ? 'pass' : r.error ? 'ERROR' : 'FAIL',
  ]);
  const totals = results.reduce(
    (t, r) => ({ ops: t.ops + r.ops, ok: t.ok + r.ok, fail: t.fail + r.fail, info: t.info + r.info, faults: t.faults + r.faults.length }),
    { ops: 0, ok: 0, fail: 0, info: 0, faults: 0 },
  );
  rows.push(['total', '', '', String(totals.ops), String(totals.ok), String(totals.fail), String(totals.info), String(totals.faults), '', '', '', '', '']);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: string[]): string => cells.map((cell, c) => cell.padStart(widths[c]!)).join('  ');
  const kinds = new Map<string, number>();
  for (const r of results) for (const f of r.faults) kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
  const faultLine = `faults injected: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`;
  return [line(header), ...rows.map(line), faultLine].join('\n');
}

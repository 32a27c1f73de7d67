/**
 * Checks a list-append history. Each key holds a list that transactions only ever append to, and
 * every appended value is unique, so every state a read can see is a prefix of the final list.
 * - no acknowledged append is missing from the final list (lost write);
 * - no value appears twice in a read (duplicated append);
 * - no read sees a value from an append that certainly failed (aborted read), and no such
 *   append is in the final list;
 * - every read is a prefix of the final list (it never saw something that later vanished, and
 *   all reads agree with one order);
 * - real time: a read invoked after an append was acknowledged contains it, and a read invoked
 *   after another read of the same key completed is at least as long (no stale reads).
 */
import type { Op } from './history.ts';

export interface ListAppendReport {
  ok: boolean;
  keys: number;
  reads: number;
  problems: string[];
}

/** Bound on reported problems of one kind: the first ones explain a failure, thousands do not. */
const PROBLEMS_PER_KIND_MAX = 5;

type TxnOp = Op & { workload: 'list-append'; f: 'txn' };

/** `finalLists` maps each key to its list as read after the cluster healed. */
export function checkListAppend(ops: readonly Op[], finalLists: ReadonlyMap<number, readonly number[]>): ListAppendReport {
  // Per kind of problem, the first few and a count: a lost write must not hide behind stale reads.
  const byKind = new Map<string, { shown: string[]; count: number }>();
  const report = (kind: string, problem: string): void => {
    const entry = byKind.get(kind) ?? { shown: [], count: 0 };
    entry.count++;
    if (entry.shown.length < PROBLEMS_PER_KIND_MAX) entry.shown.push(problem);
    byKind.set(kind, entry);
  };
  const txns = ops.filter((op): op is TxnOp => op.workload === 'list-append' && op.f === 'txn');
  const appendStatus = new Map<string, { status: Op['status']; op: TxnOp }>();
  const reads: { op: TxnOp; key: number; value: number[] }[] = [];
  for (const op of txns) {
    for (const micro of op.micro) {
      if (micro.f === 'append') appendStatus.set(`${micro.key}:${micro.value}`, { status: op.status, op });
      else if (op.status === 'ok' && micro.value) reads.push({ op, key: micro.key, value: micro.value });
    }
  }

  for (const { op, key, value } of reads) {
    const seen = new Set<number>();
    for (const v of value) {
      if (seen.has(v)) report('duplicate', `key ${key}: read in txn #${op.index} holds ${v} twice: [${value.join(',')}]`);
      seen.add(v);
      const append = appendStatus.get(`${key}:${v}`);
      if (!append) report('phantom', `key ${key}: read in txn #${op.index} holds ${v}, which no transaction appended`);
      else if (append.status === 'fail') report('aborted read', `key ${key}: read in txn #${op.index} holds ${v} from txn #${append.op.index}, which failed (${append.op.error ?? ''})`);
    }
    const final = finalLists.get(key) ?? [];
    if (!isPrefix(value, final)) {
      report('not a prefix', `key ${key}: read in txn #${op.index} [${value.join(',')}] is not a prefix of the final list [${final.join(',')}]: it saw writes that vanished or another order`);
    }
  }

  for (const [id, append] of appendStatus) {
    const [key, value] = id.split(':').map(Number) as [number, number];
    const inFinal = (finalLists.get(key) ?? []).includes(value);
    if (append.status === 'fail' && inFinal) {
      report('failed write applied', `key ${key}: append of ${value} by txn #${append.op.index} failed (${append.op.error ?? ''}) but is in the final list`);
    }
    if (append.status !== 'ok') continue;
    if (!inFinal) {
      report('lost write', `key ${key}: append of ${value} by txn #${append.op.index} was acknowledged at ${append.op.completeMs.toFixed(1)} ms but is missing from the final list (lost write)`);
    }
  }

  // Real time: for each key, acknowledged appends and completed reads, by completion time.
  const keys = new Set(reads.map((r) => r.key));
  for (const key of keys) {
    const keyReads = reads.filter((r) => r.key === key);
    const acked = [...appendStatus]
      .filter(([id, a]) => a.status === 'ok' && id.startsWith(`${key}:`))
      .map(([id, a]) => ({ value: Number(id.split(':')[1]), completeMs: a.op.completeMs }));
    for (const read of keyReads) {
      for (const append of acked) {
        if (append.completeMs < read.op.invokeMs && !read.value.includes(append.value)) {
          report('stale read', `key ${key}: read in txn #${read.op.index} (invoked ${read.op.invokeMs.toFixed(1)} ms) misses ${append.value}, acknowledged at ${append.completeMs.toFixed(1)} ms (stale read)`);
          break;
        }
      }
      for (const earlier of keyReads) {
        if (earlier.op.completeMs < read.op.invokeMs && earlier.value.length > read.value.length) {
          report('stale read', `key ${key}: read in txn #${read.op.index} sees ${read.value.length} values after read in txn #${earlier.op.index} completed with ${earlier.value.length} (stale read)`);
          break;
        }
      }
    }
  }
  const order = ['lost write', 'failed write applied', 'aborted read', 'phantom', 'duplicate', 'not a prefix', 'stale read'];
  const problems: string[] = [];
  for (const kind of order) {
    const entry = byKind.get(kind);
    if (!entry) continue;
    problems.push(...entry.shown);
    if (entry.count > entry.shown.length) problems.push(`... ${entry.count - entry.shown.length} more ${kind} problems`);
  }
  return { ok: problems.length === 0, keys: new Set([...appendStatus.keys()].map((id) => id.split(':')[0])).size, reads: reads.length, problems };
}

function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Parses the list column ("1,5,9"; empty or null for an empty list). */
export function parseList(text: unknown): number[] {
  if (text === null || text === undefined || text === '') return [];
  return String(text).split(',').map(Number);
}


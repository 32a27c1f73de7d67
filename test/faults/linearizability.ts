/**
 * Linearizability of a register history: the WGL search (Wing & Gong, with Lowe's memoization,
 * as in porcupine), run per key since a register per key is independent (P-compositionality).
 *
 * Events are sorted by time into a linked list of calls and returns. The search linearizes a
 * call whose model step accepts its recorded output, lifts it out of the list and backtracks
 * when it reaches a return whose call is not linearized yet. A cache of (linearized set, state)
 * pairs already explored keeps the search polynomial on typical histories. Indeterminate
 * operations return at +Infinity: they may take effect at any point after their call, or never.
 */
import type { Op } from './history.ts';

/** The register operations the model understands, with what the client observed. */
export type RegisterInput =
  | { f: 'read'; value: number | null }
  | { f: 'write'; value: number }
  | { f: 'cas'; expected: number; value: number; applied: boolean | undefined };

export interface TimedOp {
  id: number;
  input: RegisterInput;
  invokeMs: number;
  /** Infinity for an operation whose outcome is unknown. */
  completeMs: number;
}

export type SearchVerdict = { ok: true } | { ok: false; reason: string } | { ok: 'unknown'; reason: string };

type State = number | null;

/** The register model: whether `op` may take effect on `state`, and the state after it. */
function step(state: State, input: RegisterInput, unknownOutcome: boolean): { ok: boolean; next: State } {
  switch (input.f) {
    case 'read':
      return { ok: unknownOutcome || input.value === state, next: state };
    case 'write':
      return { ok: true, next: input.value };
    case 'cas':
      if (unknownOutcome || input.applied === undefined) return { ok: true, next: state === input.expected ? input.value : state };
      if (input.applied) return { ok: state === input.expected, next: input.value };
      return { ok: state !== input.expected, next: state };
  }
}

interface Entry {
  op: TimedOp;
  isCall: boolean;
  timeMs: number;
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

/** Checks one key's history from `initial`. `stepsMax` bounds the search (verdict 'unknown'). */
export function checkRegister(ops: readonly TimedOp[], initial: State, stepsMax = 2_000_000): SearchVerdict {
  if (ops.length === 0) return { ok: true };
  const events: Entry[] = [];
  for (const op of ops) {
    const call: Entry = { op, isCall: true, timeMs: op.invokeMs, match: undefined, prev: undefined, next: undefined };
    const ret: Entry = { op, isCall: false, timeMs: op.completeMs, match: undefined, prev: undefined, next: undefined };
    call.match = ret;
    events.push(call, ret);
  }
  // Calls before returns at equal times: overlapping is the permissive reading of a tie.
  events.sort((a, b) => a.timeMs - b.timeMs || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Entry = { op: ops[0]!, isCall: false, timeMs: -Infinity, match: undefined, prev: undefined, next: undefined };
  let previous = head;
  for (const event of events) {
    previous.next = event;
    event.prev = previous;
    previous = event;
  }
  const idToBit = new Map<number, number>();
  ops.forEach((op, i) => idToBit.set(op.id, i));
  const words = new Uint32Array(Math.ceil(ops.length / 32));
  const cache = new Set<string>();
  const stack: { entry: Entry; state: State }[] = [];
  let state: State = initial;
  let entry: Entry | undefined = head.next;
  let steps = 0;
  const lift = (e: Entry): void => {
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const m = e.match!;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (e: Entry): void => {
    const m = e.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  };
  // Where the longest linearized prefix got stuck: the best pointer to the culprit.
  let stuck: { depth: number; op: TimedOp } | undefined;
  while (head.next) {
    if (++steps > stepsMax) return { ok: 'unknown', reason: `search gave up after ${stepsMax} steps (${ops.length} operations)` };
    if (!entry) return { ok: 'unknown', reason: 'search ran off the end of the history' };
    if (entry.isCall) {
      const unknownOutcome = !Number.isFinite(entry.op.completeMs);
      const result = step(state, entry.op.input, unknownOutcome);
      if (result.ok) {
        const bit = idToBit.get(entry.op.id)!;
        words[bit >>> 5]! |= 1 << (bit & 31);
        const key = `${words.join(',')}|${result.next}`;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ entry, state });
          state = result.next;
          lift(entry);
          entry = head.next;
          continue;
        }
        words[bit >>> 5]! &= ~(1 << (bit & 31));
      }
      entry = entry.next;
    } else {
      if (!stuck || stack.length > stuck.depth) stuck = { depth: stack.length, op: entry.op };
      const top = stack.pop();
      if (!top) {
        const at = stuck ?? { depth: 0, op: entry.op };
        return {
          ok: false,
          reason: `no linearization: after ${at.depth} of ${ops.length} operations linearized, ${describe(at.op)} cannot be placed`,
        };
      }
      state = top.state;
      const bit = idToBit.get(top.entry.op.id)!;
      words[bit >>> 5]! &= ~(1 << (bit & 31));
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return { ok: true };
}

function describe(op: TimedOp): string {
  const when = `[${op.invokeMs.toFixed(1)} ms, ${Number.isFinite(op.completeMs) ? `${op.completeMs.toFixed(1)} ms` : 'unknown'}]`;
  const input = op.input;
  if (input.f === 'read') return `#${op.id} read → ${input.value} ${when}`;
  if (input.f === 'write') return `#${op.id} write ${input.value} ${when}`;
  return `#${op.id} cas ${input.expected}→${input.value} (${input.applied === undefined ? 'unknown' : input.applied ? 'applied' : 'not applied'}) ${when}`;
}

export interface RegisterReport {
  ok: boolean | 'unknown';
  keys: number;
  problems: string[];
}

/** Checks every key of the register workload in a history. */
export function checkRegisterHistory(ops: readonly Op[], stepsMax?: number): RegisterReport {
  const byKey = new Map<number, TimedOp[]>();
  for (const op of ops) {
    if (op.workload !== 'register' || op.status === 'fail' || op.status === 'pending') {
      if (op.workload === 'register' && op.status === 'pending') throw new Error(`operation #${op.index} is still pending at check time`);
      continue;
    }
    let input: RegisterInput;
    if (op.f === 'read') {
      if (op.status !== 'ok') continue; // an unanswered read constrains nothing
      input = { f: 'read', value: op.value ?? null };
    } else if (op.f === 'write') {
      input = { f: 'write', value: op.value };
    } else {
      input = { f: 'cas', expected: op.expected, value: op.value, applied: op.status === 'ok' ? op.applied : undefined };
    }
    const list = byKey.get(op.key) ?? [];
    list.push({ id: op.index, input, invokeMs: op.invokeMs, completeMs: op.status === 'ok' ? op.completeMs : Infinity });
    byKey.set(op.key, list);
  }
  const problems: string[] = [];
  let unknown = false;
  for (const [key, list] of byKey) {
    const verdict = checkRegister(list, null, stepsMax);
    if (verdict.ok === false) problems.push(`register key ${key}: ${verdict.reason}`);
    else if (verdict.ok === 'unknown') {
      unknown = true;
      problems.push(`register key ${key}: ${verdict.reason}`);
    }
  }
  const ok = problems.length === 0 ? true : unknown && problems.every((p) => p.includes('gave up')) ? 'unknown' : false;
  return { ok, keys: byKey.size, problems };
}

/**
 * Strict command-line flags through `node:util` `parseArgs` (the same on Node and Deno): an
 * unknown or misspelled flag is an error naming the closest known one, never silently ignored.
 */
import { parseArgs } from 'node:util';

export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'usage';
}

export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;
export type ParsedFlags = Record<string, string | boolean | undefined>;

/** Edit distance between two flag names (insertions, deletions, substitutions, transpositions). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

export function closestFlag(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = candidate.startsWith(name) || name.startsWith(candidate) ? 1 : editDistance(name, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  // Farther than this is a different word, not a typo.
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

export function parseFlags(command: string, args: readonly string[], spec: FlagSpec): ParsedFlags {
  const known = Object.keys(spec);
  for (const arg of args) {
    if (arg === '--') break;
    if (!arg.startsWith('--')) continue;
    const name = arg.slice(2).split('=')[0]!;
    if (!known.includes(name)) {
      const near = closestFlag(name, known);
      throw new UsageError(`${command}: unknown flag --${name}${near ? `: did you mean --${near}?` : ''} (dqlite-wasm ${command} --help lists the flags)`);
    }
  }
  try {
    const { values } = parseArgs({ args: [...args], options: spec, strict: true, allowPositionals: false });
    return values as ParsedFlags;
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message}`);
  }
}

export function stringFlag(flags: ParsedFlags, name: string): string | undefined {
  const value = flags[name];
  return typeof value === 'string' ? value : undefined;
}

/** A flag holding a whole number, or undefined when absent. */
export function wholeNumberFlag(flags: ParsedFlags, name: string): number | undefined {
  const raw = stringFlag(flags, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(value) || value < 0) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
  return value;
}

/** A flag holding on or off, or undefined when absent. */
export function onOffFlag(flags: ParsedFlags, name: string): boolean | undefined {
  const raw = stringFlag(flags, name);
  if (raw === undefined) return undefined;
  if (raw === 'on' || raw === 'off') return raw === 'on';
  throw new UsageError(`--${name} must be on or off, got "${raw}"`);
}

export function listFlag(flags: ParsedFlags, name: string): string[] {
  return (stringFlag(flags, name) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

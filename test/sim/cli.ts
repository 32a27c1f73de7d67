/**
 * npm run sim -- --seeds N [--seed S] [--steps K] [--bug NAME]
 * Runs seeds S .. S+N-1; prints each failure (seed, invariant, short trace); the last line is
 * "N passed, M failed"; exits non-zero on any failure. Without --seed the base seed is fresh
 * (random) and printed first, so every run explores new schedules and any failure replays.
 */
import { randomInt } from 'node:crypto';
import type { RaftTestBug } from '../../src/raft/index.ts';
import { runSimulation } from './simulation.ts';

/** Fresh base seeds stay below 2^31 so that S..S+N-1 fit the 32 bits the PRNG takes. */
const FRESH_SEED_MAX = 2 ** 31;

function parseArgs(argv: string[]): { seeds: number; seed: number; steps: number; bug: RaftTestBug | undefined; verbose: boolean } {
  const out = { seeds: 100, seed: randomInt(1, FRESH_SEED_MAX), steps: 3000, bug: undefined as RaftTestBug | undefined, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--seeds' && v) out.seeds = Number(v), i++;
    else if (a === '--seed' && v) {
      out.seed = Number(v);
      if (!argv.includes('--seeds')) out.seeds = 1;
      i++;
    } else if (a === '--steps' && v) out.steps = Number(v), i++;
    else if (a === '--bug' && v) out.bug = v as RaftTestBug, i++;
    else if (a === '--verbose') out.verbose = true;
    else {
      console.error(`unknown argument ${a}\nusage: npm run sim -- --seeds N [--seed S] [--steps K] [--bug NAME] [--verbose]`);
      process.exit(2);
    }
  }
  for (const [k, v] of Object.entries({ seeds: out.seeds, seed: out.seed, steps: out.steps })) {
    if (!Number.isSafeInteger(v) || v < 0) {
      console.error(`--${k} must be a non-negative integer`);
      process.exit(2);
    }
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
console.log(`base seed ${args.seed}: seeds ${args.seed}..${args.seed + args.seeds - 1} x ${args.steps} steps (rerun: npm run sim -- --seeds ${args.seeds} --seed ${args.seed} --steps ${args.steps}${args.bug ? ` --bug ${args.bug}` : ''})`);
let passed = 0;
let failed = 0;
const started = Date.now();
for (let seed = args.seed; seed < args.seed + args.seeds; seed++) {
  const r = runSimulation({ seed, steps: args.steps, ...(args.bug ? { bugs: new Set([args.bug]) } : {}) });
  if (r.ok) {
    passed++;
    if (args.verbose) console.log(`seed ${seed}: ok ${JSON.stringify(r.stats)}`);
  } else {
    failed++;
    console.log(`FAIL seed ${seed} at step ${r.step}: ${r.invariant}: ${r.message}`);
    console.log(`  replay: npm run sim -- --seed ${seed} --steps ${args.steps}${args.bug ? ` --bug ${args.bug}` : ''}`);
    for (const line of r.trace.slice(-15)) console.log(`  ${line}`);
  }
}
console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);

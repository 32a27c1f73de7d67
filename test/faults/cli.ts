/**
 * npm run faults -- --runs N --seconds S [--seed X] [--nodes 3|5|mixed] [--faults kind,...]
 *                   [--clients N] [--unsafe ack-before-commit|reads-without-barrier|follower-reads-without-read-index] [--out DIR] [--keep]
 *
 * Run k uses seed X+k and, with --nodes mixed (the default), 3 nodes for even k and 5 for odd k.
 * Prints one line per run, a summary table, and on a violation the folder with the history and
 * node logs plus the command that replays the seed. The last line is `N passed, M failed`.
 */
import { resolve } from 'node:path';
import { killAllNodesNow } from './fault-cluster.ts';
import { FAULT_KINDS, type FaultKind } from './nemesis.ts';
import { runFaults, type RunResult } from './run.ts';
import { formatSummary, verdictCell } from './summary.ts';

const USAGE = `usage: npm run faults -- --runs N --seconds S [--seed X] [--nodes 3|5|mixed] [--faults kind,...]
       [--clients N] [--unsafe ack-before-commit|reads-without-barrier|follower-reads-without-read-index] [--out DIR] [--keep] [--verbose]
  fault kinds: ${FAULT_KINDS.join(', ')}`;

class UsageError extends Error {}

function parse(argv: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    const name = arg.slice(2);
    if (name === 'keep' || name === 'verbose' || name === 'help') {
      flags.set(name, 'true');
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new UsageError(`${arg} needs a value`);
    flags.set(name, value);
  }
  return flags;
}

function wholeNumber(flags: Map<string, string>, name: string, fallback: number, min: number, max: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  return value;
}

async function main(): Promise<number> {
  const flags = parse(process.argv.slice(2));
  if (flags.has('help')) {
    console.log(USAGE);
    return 0;
  }
  const runs = wholeNumber(flags, 'runs', 1, 1, 10_000);
  const seconds = wholeNumber(flags, 'seconds', 30, 1, 86_400);
  const baseSeed = wholeNumber(flags, 'seed', Math.floor(Math.random() * 1_000_000), 0, 2 ** 31 - 1);
  const clients = wholeNumber(flags, 'clients', 2, 1, 16);
  const nodesFlag = flags.get('nodes') ?? 'mixed';
  if (!['3', '5', 'mixed'].includes(nodesFlag)) throw new UsageError(`--nodes must be 3, 5 or mixed, got "${nodesFlag}"`);
  const faults = (flags.get('faults')?.split(',') ?? [...FAULT_KINDS]) as FaultKind[];
  for (const kind of faults) if (!FAULT_KINDS.includes(kind)) throw new UsageError(`unknown fault kind "${kind}"`);
  const unsafe = flags.get('unsafe');
  const outRoot = resolve(flags.get('out') ?? '.data/faults');
  const verbose = flags.has('verbose');

  console.log(`fault injection: ${runs} run(s) × ${seconds} s, seeds ${baseSeed}..${baseSeed + runs - 1}, faults ${faults.join(',')}${unsafe ? `, UNSAFE ${unsafe}` : ''}`);
  const results: RunResult[] = [];
  for (let k = 0; k < runs; k++) {
    const seed = baseSeed + k;
    const nodes = nodesFlag === 'mixed' ? (k % 2 === 0 ? 3 : 5) : Number(nodesFlag);
    const result = await runFaults({
      seed,
      nodes,
      seconds,
      outRoot,
      faults,
      clientsPerWorkload: clients,
      ...(unsafe && { extraArgs: ['--unsafe-for-testing', unsafe] }),
      keep: flags.has('keep'),
      ...(verbose && { log: (line: string) => console.log(`  [seed ${seed}] ${line}`) }),
    });
    results.push(result);
    const verdicts = [...Object.entries(result.verdicts), ...(result.replicas ? [['replicas', result.replicas] as const] : [])]
      .map(([name, v]) => `${name} ${verdictCell(v.ok)}`)
      .join(', ');
    console.log(
      `run ${k + 1}/${runs} seed ${seed} nodes ${nodes}: ${result.passed ? 'PASS' : 'FAIL'}, ${result.ops} ops, ${result.faults.length} faults${verdicts ? `, ${verdicts}` : ''}`,
    );
    if (!result.passed) {
      if (result.error) console.log(`  error: ${result.error}`);
      for (const alert of result.logAlerts.slice(0, 5)) console.log(`  node log: ${alert}`);
      for (const problem of result.replicas?.problems.slice(0, 5) ?? []) console.log(`  replicas: ${problem}`);
      for (const [name, verdict] of Object.entries(result.verdicts)) {
        for (const problem of verdict.problems.slice(0, 5)) console.log(`  ${name}: ${problem}`);
      }
      console.log(`  history, fault schedule and node logs: ${result.folder}`);
      console.log(`  replay: npm run faults -- --runs 1 --seconds ${seconds} --seed ${seed} --nodes ${nodes} --faults ${faults.join(',')}${unsafe ? ` --unsafe ${unsafe}` : ''}`);
    }
  }
  console.log('');
  console.log(formatSummary(results));
  const passed = results.filter((r) => r.passed).length;
  console.log(`${passed} passed, ${results.length - passed} failed`);
  return passed === results.length ? 0 : 1;
}

// A SIGSTOPped node would outlive an interrupted command: kill every node before leaving.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllNodesNow();
    console.error(`${signal}: killed the nodes of the current run; its folder stays under --out`);
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n${USAGE}`);
      process.exit(2);
    }
    console.error(error);
    process.exit(1);
  },
);

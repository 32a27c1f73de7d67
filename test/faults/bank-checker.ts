/**
 * Checks a bank history: transfers move money between accounts inside transactions, so every
 * read (one SELECT of all accounts, or the final read) sees every account, no negative balance,
 * and the same total.
 */
import type { Op } from './history.ts';

export interface BankReport {
  ok: boolean;
  reads: number;
  problems: string[];
}

const PROBLEMS_MAX = 20;

export function checkBank(ops: readonly Op[], accounts: number, total: number, finalBalances: readonly number[] | undefined): BankReport {
  const problems: string[] = [];
  const checkOne = (what: string, balances: readonly number[]): void => {
    if (problems.length >= PROBLEMS_MAX) return;
    const sum = balances.reduce((a, b) => a + b, 0);
    if (balances.length !== accounts) problems.push(`${what} saw ${balances.length} accounts, expected ${accounts}: [${balances.join(',')}]`);
    else if (sum !== total) problems.push(`${what} saw a total of ${sum}, expected ${total}: [${balances.join(',')}]`);
    else if (balances.some((b) => b < 0)) problems.push(`${what} saw a negative balance: [${balances.join(',')}]`);
  };
  let reads = 0;
  for (const op of ops) {
    if (op.workload !== 'bank' || op.f !== 'read' || op.status !== 'ok' || !op.balances) continue;
    reads++;
    checkOne(`read #${op.index} at ${op.completeMs.toFixed(1)} ms`, op.balances);
  }
  if (finalBalances) {
    reads++;
    checkOne('the final read', finalBalances);
  } else {
    problems.push('no final read of the accounts');
  }
  return { ok: problems.length === 0, reads, problems };
}

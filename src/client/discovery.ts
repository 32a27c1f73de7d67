import type { DialStream } from '../runtime.ts';
import { Connection, type ConnectionOptions } from './connection.ts';
import { ConnectionError, DqliteError, NoLeaderError } from './errors.ts';

export interface DiscoveryOptions extends ConnectionOptions {
  /** Give up finding a leader after this long. */
  timeoutMs: number;
  /** First pause between rounds over all servers; doubles up to `backoffMaxMs`. */
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export function sleep(delayMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, delayMs));
}

export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
}

/**
 * Finds the leader like go-dqlite's connector: ask each server who leads; a server naming
 * itself becomes the connection (after registering with Client); one redirect hop is allowed.
 * Rounds repeat with exponential backoff until `timeoutMs`.
 */
export async function connectToLeader(
  dial: DialStream,
  servers: readonly string[],
  options: DiscoveryOptions,
): Promise<Connection> {
  const deadlineMs = Date.now() + options.timeoutMs;
  const problems: string[] = [];
  for (let round = 0; ; round++) {
    for (const address of servers) {
      if (round > 0 && Date.now() >= deadlineMs) break;
      try {
        const connection = await tryServer(dial, address, options);
        if (connection) return connection;
        problems.push(`${address}: no leader known`);
      } catch (error) {
        problems.push(error instanceof Error ? error.message : String(error));
      }
    }
    const pauseMs = backoffMs(round, options.backoffBaseMs, options.backoffMaxMs);
    if (Date.now() + pauseMs >= deadlineMs) break;
    await sleep(pauseMs);
  }
  const recent = problems.slice(-servers.length).join('; ');
  throw new NoLeaderError(`no leader found among ${servers.join(', ')} within ${options.timeoutMs} ms (last: ${recent || 'no servers'})`);
}

async function tryServer(dial: DialStream, address: string, options: ConnectionOptions): Promise<Connection | undefined> {
  const first = await Connection.open(dial, address, options);
  let leaderAddress: string;
  try {
    leaderAddress = (await first.call({ type: 'leader' }, 'node')).address;
  } catch (error) {
    first.close();
    throw error;
  }
  if (leaderAddress === '') {
    first.close();
    return undefined;
  }
  if (leaderAddress === address) return register(first);
  first.close();
  const second = await Connection.open(dial, leaderAddress, options);
  try {
    const confirmed = (await second.call({ type: 'leader' }, 'node')).address;
    if (confirmed !== leaderAddress) {
      second.close();
      return undefined;
    }
  } catch (error) {
    second.close();
    throw error;
  }
  return register(second);
}

async function register(connection: Connection): Promise<Connection> {
  try {
    await connection.call({ type: 'client', id: 0n }, 'welcome');
    return connection;
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** Errors after which another leader may answer: the call was rejected before it ran. */
export function isRetryableBeforeRun(error: unknown): boolean {
  if (error instanceof ConnectionError) return !error.sent;
  if (error instanceof DqliteError) return error.isNotLeader;
  return error instanceof NoLeaderError;
}

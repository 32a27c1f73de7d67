/**
 * Joining an existing cluster, as go-dqlite's app does it: find the leader through any known
 * member, add this node (it starts as a spare), then give it the role the cluster lacks most:
 * voter while there are fewer than `votersMax`, then standby, else it stays a spare.
 */
import { Connection } from '../client/connection.ts';
import { CONNECTION_DEFAULTS } from '../client/connection.ts';
import { connectToLeader } from '../client/discovery.ts';
import type { Clock, DialStream } from '../runtime.ts';

export interface JoinOptions {
  dial: DialStream;
  clock: Clock;
  servers: readonly string[];
  id: number;
  address: string;
  votersMax: number;
  standbysMax: number;
  /** Give up after this long; the error says what to check. */
  timeoutMs: number;
  log: (line: string) => void;
}

/** Retries within this long after the start of a join are expected and not logged. */
const JOIN_QUIET_MS = 5000;

const ROLE_VOTER = 0;
const ROLE_STANDBY = 1;
const ROLE_SPARE = 2;

export async function joinCluster(options: JoinOptions): Promise<void> {
  const startedMs = options.clock.nowMs();
  const deadline = startedMs + options.timeoutMs;
  let lastError = '';
  for (let attempt = 1; options.clock.nowMs() < deadline; attempt++) {
    let connection: Connection | undefined;
    try {
      connection = await connectToLeader(options.dial, options.servers, {
        ...CONNECTION_DEFAULTS,
        timeoutMs: Math.max(1000, Math.min(10_000, deadline - options.clock.nowMs())),
        backoffBaseMs: 100,
        backoffMaxMs: 1000,
      });
      await addAndAssign(connection, options);
      return;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
      // While a cluster starts, the first attempts meet an election or a configuration change
      // still being committed; those heal by themselves, so only a retry that goes on long
      // enough to matter is worth a line.
      const waitedMs = options.clock.nowMs() - startedMs;
      if (waitedMs >= JOIN_QUIET_MS) {
        options.log(
          `still joining through ${options.servers.join(', ')} after ${Math.round(waitedMs / 1000)} s ` +
            `(attempt ${attempt}: ${lastError}); retrying. If this goes on, check that those nodes run, ` +
            `that a majority of voters is up, and that the cluster key matches.`,
        );
      }
      await new Promise<void>((resolve) => options.clock.setTimeout(resolve, Math.min(2000, 200 * attempt)));
    } finally {
      connection?.close();
    }
  }
  throw new Error(
    `could not join the cluster through ${options.servers.join(', ')} within ${options.timeoutMs} ms ` +
      `(last error: ${lastError}). Check that those nodes run, that a majority of voters is up, and that the cluster key matches.`,
  );
}

async function addAndAssign(connection: Connection, options: JoinOptions): Promise<void> {
  const { nodes } = await connection.call({ type: 'cluster', format: 1 }, 'nodes');
  const self = nodes.find((n) => n.id === BigInt(options.id));
  if (self && self.address !== options.address) {
    throw new Error(`node id ${options.id} is already a member with address ${self.address}`);
  }
  if (!self) {
    await connection.call({ type: 'add', id: BigInt(options.id), address: options.address }, 'empty');
    options.log(`added to the cluster as a spare (id ${options.id})`);
  } else if (self.role !== ROLE_SPARE) {
    return;
  }
  const voters = nodes.filter((n) => n.role === ROLE_VOTER && n.id !== BigInt(options.id)).length;
  const standbys = nodes.filter((n) => n.role === ROLE_STANDBY && n.id !== BigInt(options.id)).length;
  const role = voters < options.votersMax ? ROLE_VOTER : standbys < options.standbysMax ? ROLE_STANDBY : ROLE_SPARE;
  if (role === ROLE_SPARE) return;
  await connection.call({ type: 'assign', id: BigInt(options.id), role }, 'empty');
  options.log(`promoted to ${role === ROLE_VOTER ? 'voter' : 'standby'}`);
}

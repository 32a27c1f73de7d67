/**
 * Joining an existing cluster, as go-dqlite's app does it: find the leader through any known
 * member, add this node (it starts as a spare), then give it the role the cluster lacks most:
 * voter while there are fewer than `votersMax`, then standby, else it stays a spare.
 *
 * Hosts dial with the cluster's credentials where they can (the `/dqlite` WebSocket with the
 * cluster key), and the leader checks that this node holds the key before it adds it. A refusal
 * of the credentials ends the join at once with a `JoinRefusedError`: retrying cannot fix a
 * wrong key, and the cluster is left exactly as it was.
 */
import { Connection } from '../client/connection.ts';
import { CONNECTION_DEFAULTS } from '../client/connection.ts';
import { connectToLeader } from '../client/discovery.ts';
import { DqliteError } from '../client/errors.ts';
import type { Clock, DialStream } from '../runtime.ts';
import { SQLITE_AUTH } from './admin-policy.ts';

/** The cluster refused this node's credentials; nothing was changed. */
export class JoinRefusedError extends Error {
  override readonly name = 'JoinRefusedError';
  readonly code = 'join_refused';
}

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
  let refusal: string | undefined;
  const dial: DialStream = async (address, dialOptions) => {
    try {
      return await options.dial(address, dialOptions);
    } catch (error) {
      if (isCredentialRefusal(error)) refusal = `${address} refused this node's cluster key: ${(error as Error).message}`;
      throw error;
    }
  };
  for (let attempt = 1; options.clock.nowMs() < deadline; attempt++) {
    let connection: Connection | undefined;
    try {
      await checkCredentials(dial, options.servers);
      if (refusal) throw new JoinRefusedError(refusedMessage(refusal));
      connection = await connectToLeader(dial, options.servers, {
        ...CONNECTION_DEFAULTS,
        timeoutMs: Math.max(1000, Math.min(10_000, deadline - options.clock.nowMs())),
        backoffBaseMs: 100,
        backoffMaxMs: 1000,
      });
      await addAndAssign(connection, options);
      return;
    } catch (error) {
      if (error instanceof JoinRefusedError) throw error;
      if (refusal) throw new JoinRefusedError(refusedMessage(refusal));
      if (error instanceof DqliteError && error.code === SQLITE_AUTH) throw new JoinRefusedError(refusedMessage(error.message));
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

/**
 * One dial to the first server that answers, so a wrong key is reported at once instead of
 * after every leader-discovery retry. Other failures (a member down) are left to discovery.
 */
async function checkCredentials(dial: DialStream, servers: readonly string[]): Promise<void> {
  for (const address of servers) {
    try {
      (await dial(address, { timeoutMs: 5000 })).close();
      return;
    } catch {
      // The wrapper noted a refusal of the credentials; any other failure: try the next server.
    }
  }
}

/** A WebSocket upgrade answered 401 or 403: the node does not accept the credentials we sent. */
function isCredentialRefusal(error: unknown): boolean {
  const status = (error as { httpStatus?: unknown } | undefined)?.httpStatus;
  if (status === 401 || status === 403) return true;
  return error instanceof Error && /\bHTTP 40[13]\b/.test(error.message);
}

function refusedMessage(reason: string): string {
  return (
    `the cluster refused to add this node: ${reason}. Nothing was changed in the cluster. ` +
    'Start this node with the cluster\'s key (--cluster-key or --cluster-key-file, the cluster-key file in the first node\'s data directory)'
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

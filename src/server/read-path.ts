/**
 * When a read may run on this node's committed state, at the consistency its client asked for
 * (docs/reads.md). Reads never enter a database's execution loop: once admitted they run on the
 * engine's read view, which holds only Raft-committed frames, so they wait for no writer, no
 * pending group commit and no other client's open transaction.
 *
 * - linearizable: the leader confirms with a ReadIndex round and has applied its index; a
 *   follower asks the leader for that index and waits until it applied that far.
 * - lease: the leader answers without a round while its lease holds; otherwise linearizable.
 * - session: any replica, once it applied the client's bookmark.
 * - stale: any replica that heard from a leader within `maxStalenessMs`.
 */
import { NodeError, SQLITE_ERROR } from '../fsm/errors.ts';

/** SQLite's generic I/O error: a stale read refused for its bound (not retried by clients). */
const SQLITE_IOERR = 10;

export const READ_CONSISTENCIES = ['linearizable', 'lease', 'session', 'stale'] as const;
export type ReadConsistency = (typeof READ_CONSISTENCIES)[number];

/** What a read asks for. `bookmark` counts for session, `maxStalenessMs` for stale. */
export interface ReadLevel {
  readonly consistency: ReadConsistency;
  readonly bookmark: number;
  readonly maxStalenessMs: number;
}

/** A node's default for clients that cannot choose (go-dqlite, the dqlite shell). */
export const DEFAULT_READ_LEVEL: ReadLevel = { consistency: 'linearizable', bookmark: 0, maxStalenessMs: 0 };

/** Default `maxStalenessMs` of a stale level given without a bound. */
export const STALENESS_DEFAULT_MS = 5_000;

/** Parses `linearizable`, `lease`, `session`, `stale` or `stale:<ms>` (the command line's form). */
export function parseReadLevel(text: string): ReadLevel {
  const [name, bound, ...rest] = text.trim().split(':');
  if (!READ_CONSISTENCIES.includes(name as ReadConsistency) || rest.length > 0 || (bound !== undefined && name !== 'stale')) {
    throw new Error(`unknown read consistency "${text}" (linearizable, lease, session, stale or stale:<maxStalenessMs>)`);
  }
  const maxStalenessMs = bound === undefined ? STALENESS_DEFAULT_MS : Number(bound);
  if (!Number.isSafeInteger(maxStalenessMs) || maxStalenessMs < 0) {
    throw new Error(`stale:<maxStalenessMs> needs a whole number of milliseconds, got "${bound}"`);
  }
  return { consistency: name as ReadConsistency, bookmark: 0, maxStalenessMs };
}

export interface ReadPathHost {
  isLeader(): boolean;
  /** Leader: waits until it applied the entries of earlier terms. */
  leaderReady(): Promise<void>;
  /** Leader: a ReadIndex round that started after the call; resolves once applied that far. */
  leaderReadIndex(): Promise<number>;
  /** Leader: whether its lease (check-quorum, less the clock-drift margin) holds now. */
  leaseHolds(): boolean;
  /** Leader: starts a round in the background when the lease is past half its life. */
  renewLease(): void;
  /** Follower: the read index the leader confirmed, asked for after the call. */
  readIndexFromLeader(): Promise<number>;
  appliedIndex(): number;
  /** Resolves once this node applied `index`; bounded. */
  applied(index: number, what: string): Promise<void>;
  /** Milliseconds since this node last heard from a leader; 0 on a leader; undefined if never. */
  leaderContactAgeMs(): number | undefined;
  /** Test-only: follower reads at linearizable skip the read index (the fault suite must catch it). */
  readonly followerReadsWithoutReadIndex: boolean;
  /** Test-only: reads skip every confirmation. */
  readonly readsWithoutBarrier: boolean;
}

export class ReadPath {
  constructor(private readonly host: ReadPathHost) {}

  /** Resolves when a read at `level` may run on this node's committed state now. */
  async admit(level: ReadLevel): Promise<void> {
    const host = this.host;
    switch (level.consistency) {
      case 'linearizable':
        return this.linearizable();
      case 'lease':
        if (host.isLeader()) {
          await host.leaderReady();
          if (host.leaseHolds()) {
            // Lease readers keep it alive, so a steady stream of them never waits for a round.
            host.renewLease();
            return;
          }
        }
        return this.linearizable();
      case 'session': {
        if (level.bookmark > host.appliedIndex()) {
          await host.applied(level.bookmark, `applying up to the session's bookmark ${level.bookmark}`);
        }
        return;
      }
      case 'stale': {
        const ageMs = host.leaderContactAgeMs();
        if (ageMs === undefined || ageMs > level.maxStalenessMs) {
          throw new NodeError(
            SQLITE_IOERR,
            `stale read refused: this node ${ageMs === undefined ? 'has not heard from a leader' : `last heard from a leader ${Math.round(ageMs)} ms ago`}, beyond maxStalenessMs=${level.maxStalenessMs}; retry on another node or with a larger bound`,
          );
        }
        return;
      }
      default:
        throw new NodeError(SQLITE_ERROR, `unknown read consistency ${String(level.consistency)}`);
    }
  }

  private async linearizable(): Promise<void> {
    const host = this.host;
    if (host.readsWithoutBarrier) return;
    if (host.isLeader()) {
      await host.leaderReady();
      await host.leaderReadIndex();
      return;
    }
    if (host.followerReadsWithoutReadIndex) return;
    const index = await host.readIndexFromLeader();
    if (index > host.appliedIndex()) await host.applied(index, `applying up to the leader's read index ${index}`);
  }
}

/**
 * rqlite's read consistency parameters (`?level=`, `?freshness=`) mapped onto the node's read
 * levels (docs/reads.md): which node answers, and at which of our levels.
 *
 * | rqlite        | here                                                                    |
 * |---------------|-------------------------------------------------------------------------|
 * | `weak` (default) | the leader, at `lease`: no round while the leader's lease holds      |
 * | `strong`      | the leader, at `linearizable` (a ReadIndex round, no log entry)          |
 * | `linearizable`| this node, at `linearizable`: a follower asks the leader for the read index and answers locally |
 * | `none`        | this node, at `stale`, bounded by `freshness` when given                 |
 * | `auto`        | `none` on a non-voter, `weak` on a voter                                  |
 */
import { ReadConsistencyCode } from '../protocol/constants.ts';
import { HttpApiError, type QueryParams } from './request.ts';

export const HTTP_READ_LEVELS = ['none', 'weak', 'strong', 'linearizable', 'auto'] as const;
export type HttpReadLevel = (typeof HTTP_READ_LEVELS)[number];

export interface ReadPlan {
  /** Whether the node the request reached answers (otherwise the leader does). */
  readonly local: boolean;
  /** A ReadConsistencyCode for the read extension request. */
  readonly consistency: number;
  /** For `stale`: the longest time since this node heard from a leader. */
  readonly maxStalenessMs: number;
}

/** rqlite's default, `weak`: the leader at `lease`. */
export const LEADER_READS: ReadPlan = { local: false, consistency: ReadConsistencyCode.Lease, maxStalenessMs: 0 };

/** `none` without `freshness` has no bound, as in rqlite (a node that never heard from a leader still refuses). */
const UNBOUNDED_MS = Number.MAX_SAFE_INTEGER;
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The plan for reads of a request; 400 for an unknown level or a malformed `freshness`. */
export function readPlan(params: QueryParams, selfRole: string | undefined): ReadPlan {
  const given = params.get('level');
  if (given !== undefined && !HTTP_READ_LEVELS.includes(given as HttpReadLevel)) {
    throw new HttpApiError(400, `level=${given} is not a read consistency level: use none, weak, strong, linearizable or auto`);
  }
  const freshness = params.get('freshness');
  const freshnessMs = freshness === undefined ? undefined : parseGoDurationMs(freshness);
  let level = (given ?? 'weak') as HttpReadLevel;
  if (level === 'auto') level = selfRole === undefined || selfRole === 'voter' ? 'weak' : 'none';
  switch (level) {
    case 'none':
      return { local: true, consistency: ReadConsistencyCode.Stale, maxStalenessMs: freshnessMs ?? UNBOUNDED_MS };
    case 'linearizable':
      return { local: true, consistency: ReadConsistencyCode.Linearizable, maxStalenessMs: 0 };
    case 'strong':
      return { local: false, consistency: ReadConsistencyCode.Linearizable, maxStalenessMs: 0 };
    default:
      return LEADER_READS;
  }
}

/** A Go duration (`500ms`, `1s`, `1m30s`) in whole milliseconds, rounded up. */
export function parseGoDurationMs(text: string): number {
  if (!GO_DURATION.test(text)) throw new HttpApiError(400, `freshness=${text} is not a duration such as 1s, 500ms or 1m30s`);
  let totalMs = 0;
  for (const part of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) totalMs += Number(part[1]) * UNIT_MS[part[2]!]!;
  return Math.ceil(totalMs);
}

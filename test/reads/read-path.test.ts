// The read levels' pure parts: the command line's level syntax and the lease's length.
import { describe, expect, it } from 'vitest';
import { leaseDurationMs } from '../../src/server/leader-lease.ts';
import { parseReadLevel } from '../../src/server/read-path.ts';
import { parseUnsafeSwitches } from '../../src/server/node-options.ts';

describe('read levels', () => {
  it('parses every level, with a staleness bound for stale only', () => {
    expect(parseReadLevel('linearizable')).toEqual({ consistency: 'linearizable', bookmark: 0, maxStalenessMs: 5000 });
    expect(parseReadLevel('session').consistency).toBe('session');
    expect(parseReadLevel('lease').consistency).toBe('lease');
    expect(parseReadLevel('stale:250')).toEqual({ consistency: 'stale', bookmark: 0, maxStalenessMs: 250 });
    expect(() => parseReadLevel('eventual')).toThrow(/unknown read consistency "eventual"/);
    expect(() => parseReadLevel('session:5')).toThrow(/unknown read consistency/);
    expect(() => parseReadLevel('stale:-1')).toThrow(/whole number of milliseconds/);
  });

  it('the lease is the vote-refusal window less the drift margin', () => {
    expect(leaseDurationMs({ tickMs: 100, electionTimeoutTicks: 10, clockDriftMax: 0.1 })).toBeCloseTo(810);
    expect(leaseDurationMs({ tickMs: 100, electionTimeoutTicks: 10, clockDriftMax: 0 })).toBe(900);
    expect(() => leaseDurationMs({ tickMs: 100, electionTimeoutTicks: 10, clockDriftMax: 1 })).toThrow(/clockDriftMax/);
  });

  it('names the follower-read switch on the command line', () => {
    expect(parseUnsafeSwitches('follower-reads-without-read-index')).toEqual({ followerReadsWithoutReadIndex: true });
  });
});

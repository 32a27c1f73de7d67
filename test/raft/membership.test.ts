import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quorumMatchIndex } from '../../src/raft/membership.ts';
import type { Configuration, Role } from '../../src/raft/index.ts';

/** The definition: sort the voters' matches, descending, and take the one a quorum reaches. */
function byDefinition(c: Configuration, matches: Map<number, number>, offByOne: boolean): number {
  const sorted = c.members.filter((m) => m.role === 'voter').map((m) => matches.get(m.id)!).sort((a, b) => b - a);
  if (sorted.length === 0) return 0;
  const needed = offByOne ? Math.max(1, Math.floor(sorted.length / 2)) : Math.floor(sorted.length / 2) + 1;
  return sorted[needed - 1]!;
}

describe('quorumMatchIndex', () => {
  it('is the largest index a quorum of voters has, for small and large voter sets', () => {
    const role = fc.constantFrom<Role>('voter', 'voter', 'standby', 'spare');
    fc.assert(
      fc.property(
        fc.array(fc.record({ role, match: fc.integer({ min: 0, max: 20 }) }), { maxLength: 14 }),
        fc.boolean(),
        (members, offByOne) => {
          const c: Configuration = { members: members.map((m, i) => ({ id: i + 1, address: `n${i + 1}`, role: m.role })) };
          const matches = new Map(members.map((m, i) => [i + 1, m.match]));
          expect(quorumMatchIndex(c, (id) => matches.get(id)!, offByOne)).toBe(byDefinition(c, matches, offByOne));
        },
      ),
      { numRuns: 3000 },
    );
  });
});

/**
 * Membership: configurations, dqlite roles, quorums and single-server changes.
 *
 * We change membership one server at a time (Raft dissertation §4.1), not by joint consensus:
 * each ConfChange adds, removes or re-roles exactly one server, so the voter sets before and
 * after differ by at most one voter and any majority of the old set overlaps any majority of the
 * new one. That keeps a single configuration in effect at any time (simpler code, simpler
 * status, same as dqlite's C raft) at the cost of needing several steps for bigger changes,
 * which dqlite's API (add, assign, remove) never needs anyway.
 *
 * A configuration takes effect on every node as soon as its entry is appended to the node's log,
 * committed or not (dissertation rule), and is undone if that entry is truncated. The leader
 * accepts a new change only once the previous one is committed and once it has committed an
 * entry of its own term (which fixes the known single-server-change bug on leader changes).
 *
 * Taking effect on append means a node can hold, uncommitted, the entry that demotes or removes
 * it. Until that entry commits the cluster may still need it, so it may still campaign (but
 * counts only the new voters, not itself), and a leader that is not a voter of its own
 * configuration steps down once that configuration commits (Raft dissertation §4.2.2; see
 * RaftNode.promotable and stepDownIfNotVoter). etcd-raft sidesteps this by taking a
 * configuration into effect only when it is applied; we keep the dissertation's rule, which
 * dqlite's C raft also follows.
 */
import { RaftError } from './errors.ts';
import { cloneConfiguration } from './storage.ts';
import type { ConfChange, Configuration, Member, NodeId, Role } from './types.ts';

export const MEMBERS_MAX = 4096;
export const ADDRESS_BYTES_MAX = 1024;

export function findMember(c: Configuration, id: NodeId): Member | undefined {
  return c.members.find((m) => m.id === id);
}

export function roleOf(c: Configuration, id: NodeId): Role | undefined {
  return findMember(c, id)?.role;
}

export function isVoter(c: Configuration, id: NodeId): boolean {
  return roleOf(c, id) === 'voter';
}

export function voterIds(c: Configuration): NodeId[] {
  return c.members.filter((m) => m.role === 'voter').map((m) => m.id);
}

/** Voters and standbys: the servers a leader replicates to. Spares receive nothing. */
export function replicaIds(c: Configuration): NodeId[] {
  return c.members.filter((m) => m.role !== 'spare').map((m) => m.id);
}

export function isValidNodeId(id: number): boolean {
  return Number.isSafeInteger(id) && id >= 1;
}

/** True if the voters `acked` says yes for form a majority of the configuration's voters. */
export function hasQuorum(c: Configuration, acked: (id: NodeId) => boolean, quorumOffByOne = false): boolean {
  const voters = voterIds(c);
  if (voters.length === 0) return false;
  let yes = 0;
  for (const id of voters) if (acked(id)) yes++;
  const needed = quorumOffByOne ? Math.floor(voters.length / 2) : Math.floor(voters.length / 2) + 1;
  return yes >= needed;
}

/** True once a majority of voters has definitely said no (the election is lost). */
export function hasQuorumAgainst(c: Configuration, rejected: (id: NodeId) => boolean): boolean {
  const voters = voterIds(c);
  let no = 0;
  for (const id of voters) if (rejected(id)) no++;
  return no >= Math.floor(voters.length / 2) + 1;
}

/** The largest index that a majority of voters has (per `matchOf`). 0 without voters. */
export function quorumMatchIndex(c: Configuration, matchOf: (id: NodeId) => number, quorumOffByOne = false): number {
  let voters = 0;
  for (const m of c.members) if (m.role === 'voter') voters++;
  if (voters === 0) return 0;
  const needed = quorumOffByOne ? Math.max(1, Math.floor(voters / 2)) : Math.floor(voters / 2) + 1;
  if (voters > SMALL_QUORUM_VOTERS_MAX) {
    const matches = voterIds(c).map(matchOf).sort((a, b) => b - a);
    return matches[needed - 1]!;
  }
  // The leader asks on every acknowledgement: for the usual handful of voters, the largest match
  // that `needed` voters reach, without building and sorting arrays.
  let best = 0;
  for (const candidate of c.members) {
    if (candidate.role !== 'voter') continue;
    const match = matchOf(candidate.id);
    if (match <= best) continue;
    let reached = 0;
    for (const other of c.members) if (other.role === 'voter' && matchOf(other.id) >= match) reached++;
    if (reached >= needed) best = match;
  }
  return best;
}

/** Up to this many voters quorumMatchIndex compares pairs (n² calls of matchOf) rather than sorting. */
const SMALL_QUORUM_VOTERS_MAX = 9;

/**
 * The configuration after `change`, or an error saying why the change is not allowed.
 * Deterministic, so every node applying the same entry to the same base gets the same result.
 */
export function applyConfChange(base: Configuration, change: ConfChange): Configuration | RaftError {
  if (!isValidNodeId(change.id)) return new RaftError('INVALID_CONF_CHANGE', `node id ${change.id} is not an integer in 1..2^53-1`);
  const existing = findMember(base, change.id);
  const next = cloneConfiguration(base);
  switch (change.type) {
    case 'add': {
      if (existing) return new RaftError('INVALID_CONF_CHANGE', `node ${change.id} is already a member (${existing.role}); use assign to change its role`);
      // '' is the address of a node that cannot listen (a browser node); any number may share it.
      if (change.address !== '' && base.members.some((m) => m.address === change.address)) {
        return new RaftError('INVALID_CONF_CHANGE', `address ${change.address} is already used by another member`);
      }
      if (change.address.length > ADDRESS_BYTES_MAX) {
        return new RaftError('INVALID_CONF_CHANGE', `address must be at most ${ADDRESS_BYTES_MAX} characters ('' for a node that cannot listen)`);
      }
      if (base.members.length >= MEMBERS_MAX) return new RaftError('INVALID_CONF_CHANGE', `configuration already has ${MEMBERS_MAX} members`);
      next.members.push({ id: change.id, address: change.address, role: change.role });
      return next;
    }
    case 'assign': {
      if (!existing) return new RaftError('INVALID_CONF_CHANGE', `node ${change.id} is not a member; add it first`);
      if (existing.role === change.role) return new RaftError('INVALID_CONF_CHANGE', `node ${change.id} already has role ${change.role}`);
      if (existing.role === 'voter' && voterIds(base).length === 1) {
        return new RaftError('INVALID_CONF_CHANGE', `node ${change.id} is the only voter; promote another node first`);
      }
      const m = findMember(next, change.id)!;
      m.role = change.role;
      return next;
    }
    case 'remove': {
      if (!existing) return new RaftError('INVALID_CONF_CHANGE', `node ${change.id} is not a member`);
      if (existing.role === 'voter' && voterIds(base).length === 1) {
        return new RaftError('INVALID_CONF_CHANGE', `node ${change.id} is the only voter and cannot be removed`);
      }
      next.members = next.members.filter((m) => m.id !== change.id);
      return next;
    }
  }
}

/**
 * The configurations in the log after the snapshot, newest last, so that truncating the log can
 * roll the configuration back. Entry 0 is the snapshot's configuration.
 */
export class ConfigurationHistory {
  private items: { index: number; configuration: Configuration }[];

  constructor(snapshotIndex: number, configuration: Configuration) {
    this.items = [{ index: snapshotIndex, configuration: cloneConfiguration(configuration) }];
  }

  current(): Configuration {
    return this.items[this.items.length - 1]!.configuration;
  }

  /** Index of the entry that set the current configuration. */
  currentIndex(): number {
    return this.items[this.items.length - 1]!.index;
  }

  /**
   * The configuration the current one replaced, if the history still holds it. While the current
   * one is uncommitted this is the one the cluster may still be running on: a leader appends a
   * change only after the previous one has committed.
   */
  previous(): Configuration | undefined {
    return this.items[this.items.length - 2]?.configuration;
  }

  /** The configuration in effect at `index` (as far back as the history reaches). */
  at(index: number): Configuration {
    for (let i = this.items.length - 1; i >= 0; i--) if (this.items[i]!.index <= index) return this.items[i]!.configuration;
    return this.items[0]!.configuration;
  }

  push(index: number, configuration: Configuration): void {
    this.items.push({ index, configuration });
  }

  /** Forgets configurations from entries at or after `index` (they were truncated). */
  truncateFrom(index: number): boolean {
    const before = this.items.length;
    while (this.items.length > 1 && this.items[this.items.length - 1]!.index >= index) this.items.pop();
    return this.items.length !== before;
  }

  /** Drops history made irrelevant by a compaction up to `index`, keeping the one in effect there. */
  compactTo(index: number): void {
    let keepFrom = 0;
    for (let i = 0; i < this.items.length; i++) if (this.items[i]!.index <= index) keepFrom = i;
    if (keepFrom > 0) this.items = this.items.slice(keepFrom);
  }

  reset(index: number, configuration: Configuration): void {
    this.items = [{ index, configuration: cloneConfiguration(configuration) }];
  }
}

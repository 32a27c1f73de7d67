/**
 * The nemesis: a seeded schedule of faults against a FaultCluster. It alternates a quiet period
 * and one fault held for a while, then heals it before the next, so a majority of the voters is
 * whole between faults. Membership changes run during another fault (a partition or a kill).
 * Timing is real (processes and sockets), so a seed fixes the choices, not the interleaving.
 */
import { connectCluster, type Cluster } from '../../runtimes/node/client.ts';
import type { Prng } from '../sim/prng.ts';
import type { FaultCluster } from './fault-cluster.ts';

export const FAULT_KINDS = [
  'kill',
  'kill-leader',
  'pause',
  'pause-leader',
  'partition-halves',
  'partition-leader',
  'partition-bridge',
  'partition-asymmetric',
  'slow',
  'lossy',
  'membership',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultEvent {
  kind: FaultKind;
  detail: string;
  startMs: number;
  healedMs?: number;
}

export interface NemesisOptions {
  kinds: readonly FaultKind[];
  faultMsMin: number;
  faultMsMax: number;
  quietMsMin: number;
  quietMsMax: number;
  nowMs: () => number;
  log?: (line: string) => void;
}

type Heal = () => Promise<void>;

export class Nemesis {
  readonly events: FaultEvent[] = [];
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly cluster: FaultCluster,
    private readonly rng: Prng,
    private readonly options: NemesisOptions,
  ) {
    if (options.kinds.length === 0) throw new Error('the nemesis needs at least one fault kind');
  }

  /** Runs faults until `stop()`; the last fault is healed before it resolves. */
  async run(): Promise<void> {
    while (!this.stopped) {
      await this.waitUnlessStopped(this.between(this.options.quietMsMin, this.options.quietMsMax));
      if (this.stopped) break;
      const kind = this.rng.pick(this.options.kinds);
      const event: FaultEvent = { kind, detail: '', startMs: this.options.nowMs() };
      this.events.push(event);
      let heal: Heal;
      try {
        heal = await this.inject(kind, event);
      } catch (error) {
        event.detail += ` (injection failed: ${(error as Error).message})`;
        continue;
      }
      this.note(`${kind}: ${event.detail}`);
      await this.waitUnlessStopped(this.between(this.options.faultMsMin, this.options.faultMsMax));
      await heal();
      event.healedMs = this.options.nowMs();
      this.note(`healed ${kind}`);
    }
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private note(line: string): void {
    this.cluster.mark(line);
    this.options.log?.(line);
  }

  private between(minMs: number, maxMs: number): number {
    return minMs + this.rng.int(Math.max(1, maxMs - minMs));
  }

  /** Waits `ms`, or less when stopped. */
  private waitUnlessStopped(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async leaderOrRandom(): Promise<number> {
    return (await this.cluster.leader()) ?? this.rng.int(this.cluster.nodes.length);
  }

  private idsOf(indexes: readonly number[]): number[] {
    return indexes.map((i) => this.cluster.nodes[i]!.id);
  }

  private shuffled(): number[] {
    const order = this.cluster.nodes.map((n) => n.index);
    for (let i = order.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order;
  }

  private async inject(kind: FaultKind, event: FaultEvent): Promise<Heal> {
    const cluster = this.cluster;
    const network = cluster.network;
    const n = cluster.nodes.length;
    const healNetwork: Heal = async () => network.heal();
    switch (kind) {
      case 'kill':
      case 'kill-leader': {
        const index = kind === 'kill' ? this.rng.int(n) : await this.leaderOrRandom();
        event.detail = `kill -9 node ${index + 1}`;
        await cluster.kill(index);
        return async () => {
          if (!cluster.isRunning(index)) cluster.spawn(index);
        };
      }
      case 'pause':
      case 'pause-leader': {
        const index = kind === 'pause' ? this.rng.int(n) : await this.leaderOrRandom();
        event.detail = `SIGSTOP node ${index + 1}`;
        cluster.pause(index);
        return async () => cluster.resume(index);
      }
      case 'partition-halves': {
        const order = this.shuffled();
        const minority = 1 + this.rng.int(Math.floor((n - 1) / 2));
        const a = order.slice(0, minority);
        const b = order.slice(minority);
        event.detail = `partition [${a.map((i) => i + 1)}] | [${b.map((i) => i + 1)}]`;
        network.partition(this.idsOf(a), this.idsOf(b));
        return healNetwork;
      }
      case 'partition-leader': {
        const leader = await this.leaderOrRandom();
        const others = cluster.nodes.map((x) => x.index).filter((i) => i !== leader);
        event.detail = `isolate leader node ${leader + 1}`;
        network.partition(this.idsOf([leader]), this.idsOf(others));
        return healNetwork;
      }
      case 'partition-bridge': {
        const order = this.shuffled();
        const half = Math.floor((n - 1) / 2);
        const a = order.slice(0, half);
        const bridge = order[half]!;
        const b = order.slice(half + 1);
        event.detail = `bridge: [${a.map((i) => i + 1)}] <-> ${bridge + 1} <-> [${b.map((i) => i + 1)}]`;
        network.partition(this.idsOf(a), this.idsOf(b));
        return healNetwork;
      }
      case 'partition-asymmetric': {
        const leader = await this.leaderOrRandom();
        const leaderId = cluster.nodes[leader]!.id;
        const inbound = this.rng.chance(0.5);
        for (const id of this.idsOf(cluster.nodes.map((x) => x.index).filter((i) => i !== leader))) {
          if (inbound) network.block(id, leaderId);
          else network.block(leaderId, id);
        }
        event.detail = `node ${leader + 1} (leader) ${inbound ? 'hears no one' : 'reaches no one'}`;
        return healNetwork;
      }
      case 'slow': {
        const links: string[] = [];
        for (let k = 0; k < 1 + this.rng.int(n); k++) {
          const [x, y] = this.shuffled();
          const delayMs = 20 + this.rng.int(230);
          network.slow(cluster.nodes[x!]!.id, cluster.nodes[y!]!.id, delayMs);
          network.slow(cluster.nodes[y!]!.id, cluster.nodes[x!]!.id, delayMs);
          links.push(`${x! + 1}<->${y! + 1} ${delayMs} ms`);
        }
        event.detail = `slow links ${links.join(', ')}`;
        return healNetwork;
      }
      case 'lossy': {
        const links: string[] = [];
        for (let k = 0; k < 1 + this.rng.int(n); k++) {
          const [x, y] = this.shuffled();
          network.makeLossy(cluster.nodes[x!]!.id, cluster.nodes[y!]!.id);
          links.push(`${x! + 1}<->${y! + 1}`);
        }
        const cutter = this.rng.fork();
        const timer = setInterval(() => network.cutLossyLinks(0.3, () => cutter.next()), 300);
        event.detail = `lossy links ${links.join(', ')}`;
        return async () => {
          clearInterval(timer);
          network.heal();
        };
      }
      case 'membership':
        return this.membershipDuringFault(event);
    }
  }

  /** A role change while another fault (a partition or a kill) is in force. */
  private async membershipDuringFault(event: FaultEvent): Promise<Heal> {
    const base = this.rng.pick(['partition-halves', 'partition-leader', 'kill'] as const);
    const inner: FaultEvent = { kind: base, detail: '', startMs: event.startMs };
    const healBase = await this.inject(base, inner);
    const change = await this.changeRoles();
    event.detail = `${change.detail} during ${base} (${inner.detail})`;
    return async () => {
      await healBase();
      event.detail += `; ${await change.revert()}`;
    };
  }

  private async changeRoles(): Promise<{ detail: string; revert: () => Promise<string> }> {
    let admin: Cluster | undefined;
    try {
      admin = await connectCluster({ servers: this.cluster.addresses, timeoutMs: 5000, requestTimeoutMs: 4000, dialTimeoutMs: 1000 });
      const members = await admin.members();
      const leader = await admin.leader();
      const voters = members.filter((m) => m.role === 'voter' && m.id !== leader?.id);
      const standbys = members.filter((m) => m.role === 'stand-by');
      if (voters.length === 0) return { detail: 'no voter to demote', revert: async () => 'nothing to revert' };
      const demoted = this.rng.pick(voters);
      const promoted = standbys.length > 0 ? this.rng.pick(standbys) : undefined;
      const steps: string[] = [];
      if (promoted) steps.push(await this.tryAssign(admin, promoted.id, 'voter'));
      steps.push(await this.tryAssign(admin, demoted.id, 'stand-by'));
      return {
        detail: steps.join(', '),
        revert: async () => {
          if (promoted) return 'roles kept';
          return this.withAdmin((a) => this.tryAssign(a, demoted.id, 'voter'));
        },
      };
    } catch (error) {
      return { detail: `membership change failed: ${(error as Error).message}`, revert: async () => 'nothing to revert' };
    } finally {
      await admin?.close();
    }
  }

  private async tryAssign(admin: Cluster, id: bigint, role: 'voter' | 'stand-by'): Promise<string> {
    const index = this.cluster.indexOfId(Number(id));
    try {
      await admin.assign(id, role);
      return `node ${index + 1} → ${role}`;
    } catch (error) {
      return `node ${index + 1} → ${role} failed (${(error as Error).message})`;
    }
  }

  private async withAdmin(work: (admin: Cluster) => Promise<string>): Promise<string> {
    let admin: Cluster | undefined;
    try {
      admin = await connectCluster({ servers: this.cluster.addresses, timeoutMs: 10_000, requestTimeoutMs: 4000, dialTimeoutMs: 1000 });
      return await work(admin);
    } catch (error) {
      return `failed: ${(error as Error).message}`;
    } finally {
      await admin?.close();
    }
  }
}

/** After a run: make sure `votersWanted` members vote again (a revert may have failed mid-fault). */
export async function restoreVoters(cluster: FaultCluster, votersWanted: number): Promise<string> {
  const admin = await connectCluster({ servers: cluster.addresses, timeoutMs: 20_000, requestTimeoutMs: 5000, dialTimeoutMs: 1000 });
  try {
    const members = await admin.members();
    let voters = members.filter((m) => m.role === 'voter').length;
    const promoted: number[] = [];
    for (const member of members) {
      if (voters >= votersWanted) break;
      if (member.role === 'voter') continue;
      await admin.assign(member.id, 'voter');
      voters++;
      promoted.push(cluster.indexOfId(Number(member.id)) + 1);
    }
    return promoted.length ? `promoted node(s) ${promoted.join(', ')} back to voter` : 'voters whole';
  } finally {
    await admin.close();
  }
}

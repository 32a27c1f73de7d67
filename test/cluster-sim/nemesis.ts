/**
 * The fault schedule: at each step, with some probability, one fault from a weighted menu —
 * crashes (the leader or any node, with torn writes), partitions (isolate a node or the leader,
 * split, one-way), connection resets, slow hosts, leadership transfers, and a voter removed and
 * added back. Every fault heals on its own after a drawn time; `healAll` ends them all.
 */
import type { Prng } from '../sim/prng.ts';
import { damageMiddleOfLog } from './log-corruption.ts';
import type { SimSession } from './sim-client.ts';
import type { NodeSlot, SimCluster } from './sim-cluster.ts';
import type { Scheduler } from './scheduler.ts';

export interface NemesisStats {
  crashes: number;
  leaderCrashes: number;
  tornWrites: number;
  partitions: number;
  resets: number;
  slowdowns: number;
  transfers: number;
  membershipChanges: number;
  /** Logs damaged in the middle while their node was down. */
  logsDamaged: number;
  /** Nodes that refused their damaged log, rebuilt empty and added back as new members. */
  rebuilds: number;
}

type FaultName =
  | 'crash-leader'
  | 'crash-node'
  | 'crash-mid-write'
  | 'failover-slow-follower'
  | 'isolate-leader'
  | 'isolate-node'
  | 'split'
  | 'one-way'
  | 'reset'
  | 'slow'
  | 'transfer'
  | 'transfer-unreachable'
  | 'remove-add'
  | 'corrupt-log';

const MENU: [FaultName, number][] = [
  ['crash-leader', 3],
  ['crash-node', 1],
  ['crash-mid-write', 2],
  ['failover-slow-follower', 3],
  ['isolate-leader', 5],
  ['isolate-node', 1],
  ['split', 1],
  ['one-way', 1],
  ['reset', 2],
  ['slow', 2],
  ['transfer', 2],
  ['transfer-unreachable', 2],
  ['remove-add', 1],
  ['corrupt-log', 2],
];

export class Nemesis {
  readonly stats: NemesisStats = { crashes: 0, leaderCrashes: 0, tornWrites: 0, partitions: 0, resets: 0, slowdowns: 0, transfers: 0, membershipChanges: 0, logsDamaged: 0, rebuilds: 0 };
  private partitioned = false;
  private membershipBusy = false;
  /** At most one log is damaged per run: its node stays out, and the rest must keep a quorum. */
  private logDamageDone = false;
  private logDamageArmed = false;
  /** Whether the node that refused its damaged log is rebuilt (drawn once it refused). */
  private rebuildDrawn: boolean | undefined;
  private readonly slow = new Set<string>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly cluster: SimCluster,
    private readonly rng: Prng,
    private readonly admin: SimSession,
    private readonly trace: (line: string) => void,
    private readonly faultProbability: number,
    /** Client hosts: a partition puts each on one side, so some keep talking to a deposed leader. */
    private readonly clientHosts: { readers: readonly string[]; writers: readonly string[] },
  ) {}

  step(): void {
    // Drawn once, a log's damage waits for a moment every node is up.
    if (this.logDamageArmed) this.inject('corrupt-log');
    this.maybeRebuild();
    if (!this.rng.chance(this.faultProbability)) return;
    const total = MENU.reduce((sum, [, w]) => sum + w, 0);
    let roll = this.rng.int(total);
    let fault: FaultName = MENU[0]![0];
    for (const [name, weight] of MENU) {
      if (roll < weight) {
        fault = name;
        break;
      }
      roll -= weight;
    }
    this.inject(fault);
  }

  /** A fail-over as the leader commits, with a slow follower: how every run ends its faults. */
  finalFailover(): void {
    this.inject('failover-slow-follower');
  }

  /** Ends every fault: the network heals, slow hosts speed up, every node runs again. */
  healAll(): void {
    this.cluster.network.heal();
    this.partitioned = false;
    for (const host of this.slow) this.cluster.network.setSlow(host, 0);
    this.slow.clear();
    for (const slot of this.cluster.slots) if (!slot.incarnation && !this.cluster.isOut(slot)) void this.cluster.start(slot);
  }

  private inject(fault: FaultName): void {
    const slots = this.cluster.slots;
    const leader = this.cluster.leader();
    const down = slots.filter((s) => !s.incarnation).length;
    const downMax = Math.floor((slots.length - 1) / 2);
    switch (fault) {
      case 'crash-leader':
      case 'crash-node': {
        const target = fault === 'crash-leader' ? leader : this.pickRunning();
        // Now and then more than a minority goes down: the cluster must stall, not break.
        if (!target || (down >= downMax && !this.rng.chance(0.1))) return;
        this.crash(target, target === leader ? 'leader' : 'follower');
        return;
      }
      case 'crash-mid-write': {
        // The process dies between a write and its fsync: the tail may be torn.
        const target = leader && this.rng.chance(0.6) ? leader : this.pickRunning();
        if (!target || down >= downMax) return;
        const incarnation = target.incarnation;
        target.disk.crashOnNextAppend(() =>
          this.scheduler.after(0, () => {
            if (target.incarnation === incarnation) this.crash(target, 'mid-write');
          }),
        );
        return;
      }
      case 'failover-slow-follower': {
        // The leader dies as it commits, its answers to clients out, its news of the commit to
        // the followers lost, while a follower is slow: the next leader takes a while to commit its first entry, and
        // clients reach it meanwhile.
        if (!leader || down > 0) return;
        const followers = this.cluster.running().filter((s) => s !== leader);
        if (followers.length === 0) return;
        const slow = this.rng.pick(followers);
        this.slowDown(slow, 100 + this.rng.int(400), 2500 + this.rng.int(3500));
        const incarnation = leader.incarnation;
        this.cluster.network.crashOnNextCommit(leader.address, () => {
          // It stays down while the others fail over, so the slow one takes part.
          if (leader.incarnation === incarnation) this.crash(leader, 'leader, as it commits', 4000 + this.rng.int(3000));
        });
        return;
      }
      case 'isolate-leader':
      case 'isolate-node':
      case 'split':
      case 'one-way': {
        if (this.partitioned) return;
        const addresses = slots.map((s) => s.address);
        let side: string[];
        if (fault === 'isolate-leader') {
          if (!leader) return;
          side = [leader.address];
        } else if (fault === 'isolate-node' || fault === 'one-way') {
          side = [this.rng.pick(addresses)];
        } else {
          const shuffled = addresses.map((a) => ({ a, r: this.rng.next() })).sort((x, y) => x.r - y.r).map((x) => x.a);
          side = shuffled.slice(0, 1 + this.rng.int(Math.floor(slots.length / 2)));
        }
        const rest = addresses.filter((a) => !side.includes(a));
        // An isolated leader mostly keeps the readers and loses the writers: the readers go on
        // asking it while the writers move to the next leader, the case a deposed leader's
        // reads must survive.
        const isolatingLeader = fault === 'isolate-leader';
        const clientsWithSide = [
          ...this.clientHosts.readers.filter(() => this.rng.chance(isolatingLeader ? 0.8 : 0.4)),
          ...this.clientHosts.writers.filter(() => this.rng.chance(isolatingLeader ? 0.2 : 0.4)),
        ];
        const clientsWithRest = [...this.clientHosts.readers, ...this.clientHosts.writers].filter((c) => !clientsWithSide.includes(c));
        // A firewall that rejects sends the clients on the majority side to the new leader at
        // once, while those on the deposed leader's side may still read from it.
        const reject = this.rng.chance(fault === 'isolate-leader' ? 0.8 : 0.5);
        this.cluster.network.block([...side, ...clientsWithSide], [...rest, ...clientsWithRest], reject);
        if (fault !== 'one-way') this.cluster.network.block([...rest, ...clientsWithRest], [...side, ...clientsWithSide], reject);
        this.partitioned = true;
        this.stats.partitions++;
        // Long enough, often, for the isolated side to lose its leader and the rest to elect one.
        const healMs = fault === 'isolate-leader' ? 1500 + this.rng.int(5000) : 300 + this.rng.int(4000);
        this.trace(`nemesis: ${fault}${reject ? ' (rejecting)' : ''} [${[...side, ...clientsWithSide].join(',')}] from [${rest.join(',')}] for ${healMs} ms`);
        this.scheduler.after(healMs, () => {
          if (!this.partitioned) return;
          this.cluster.network.heal();
          this.partitioned = false;
          this.trace('nemesis: partition healed');
        });
        return;
      }
      case 'reset': {
        const target = this.rng.pick(slots);
        const count = this.cluster.network.resetConnections(target.address);
        this.stats.resets++;
        this.trace(`nemesis: reset ${count} connections of node ${target.id}`);
        return;
      }
      case 'slow': {
        this.slowDown(this.rng.pick(slots), 20 + this.rng.int(300), 500 + this.rng.int(4000));
        return;
      }
      case 'transfer': {
        if (!leader) return;
        const others = this.cluster.running().filter((s) => s !== leader);
        if (others.length === 0) return;
        const target = this.rng.pick(others);
        // A slow target takes a while to catch up: proposals are refused meanwhile.
        if (this.rng.chance(0.5)) this.slowDown(target, 50 + this.rng.int(300), 500 + this.rng.int(2000));
        this.transfer(leader, target);
        return;
      }
      case 'transfer-unreachable': {
        // A transfer to a node that cannot take over: it times out, and the leader goes on
        // leading after refusing every proposal in between.
        if (!leader) return;
        const others = slots.filter((s) => s !== leader);
        const target = this.rng.pick(others);
        if (target.incarnation && !this.partitioned) {
          const healMs = 1000 + this.rng.int(2500);
          this.cluster.network.block([target.address], others.filter((s) => s !== target).map((s) => s.address).concat(leader.address));
          this.cluster.network.block([leader.address, ...others.filter((s) => s !== target).map((s) => s.address)], [target.address]);
          this.partitioned = true;
          this.stats.partitions++;
          this.trace(`nemesis: isolate node ${target.id} for ${healMs} ms, then transfer leadership to it`);
          this.scheduler.after(healMs, () => {
            if (!this.partitioned) return;
            this.cluster.network.heal();
            this.partitioned = false;
            this.trace('nemesis: partition healed');
          });
        }
        this.transfer(leader, target);
        return;
      }
      case 'remove-add': {
        if (this.membershipBusy || !leader) return;
        const followers = this.cluster.running().filter((s) => s !== leader);
        if (followers.length === 0 || down > 0) return;
        this.membershipBusy = true;
        this.stats.membershipChanges++;
        void this.removeAndAdd(this.rng.pick(followers)).finally(() => {
          this.membershipBusy = false;
        });
        return;
      }
      case 'corrupt-log': {
        // Only with every node up: the damaged one stays out, and the rest keep a quorum.
        if (this.logDamageDone) return;
        this.logDamageArmed = true;
        if (!leader || down > 0 || this.partitioned || this.membershipBusy) return;
        // A node left a spare by a membership change that did not finish would leave two voters:
        // with the damaged one out, no quorum, and nothing an operator could do but rebuild.
        const voters = new Set((this.cluster.status(leader)?.members ?? []).filter((m) => m.role === 'voter').map((m) => m.id));
        if (slots.some((s) => !voters.has(s.id))) return;
        this.logDamageDone = true;
        this.logDamageArmed = false;
        const followers = this.cluster.running().filter((s) => s !== leader);
        if (followers.length === 0) return;
        const damaged = this.rng.pick(followers);
        const others = followers.filter((s) => s !== damaged);
        if (others.length > 0 && this.rng.chance(0.7)) void this.protocolAwareRecoveryCase(leader, damaged, this.rng.pick(others));
        else this.crashAndDamage(damaged, 200 + this.rng.int(3000));
        return;
      }
    }
  }

  /**
   * The case of Alagappan et al. (FAST 2018) that lost acknowledged writes on real processes: a
   * follower `lagging` is down while `leader` and `damaged` acknowledge writes; both then crash,
   * `damaged`'s log is hit in the middle (in those writes, when it can), and it restarts with
   * `lagging` while the leader stays down. A loader that took the damage for a torn tail would
   * let the two elect a leader without those writes, and overwrite them on the old leader.
   */
  private async protocolAwareRecoveryCase(leader: NodeSlot, damaged: NodeSlot, lagging: NodeSlot): Promise<void> {
    this.trace(`nemesis: protocol-aware recovery case: node ${lagging.id} down, writes on nodes ${leader.id} and ${damaged.id}, then node ${damaged.id}'s log damaged`);
    const laggingIndex = this.cluster.status(lagging)?.lastIndex ?? 0;
    this.crash(lagging, 'follower, before a log is damaged', 'caller');
    await this.scheduler.sleep(500 + this.rng.int(2500));
    this.crash(leader, 'leader, before a log is damaged', 4000 + this.rng.int(3000));
    this.crashAndDamage(damaged, 200 + this.rng.int(600), laggingIndex);
    this.scheduler.after(this.rng.int(400), () => {
      if (!lagging.incarnation && !this.cluster.isOut(lagging)) void this.cluster.start(lagging);
    });
  }

  /**
   * As an operator would, now and then: the node that refused its damaged log loses its old
   * member, gets an empty data directory and joins again as a new voter, copying everything from
   * the others. Left out otherwise, until the end of the run.
   */
  private maybeRebuild(): void {
    const out = this.cluster.slots.find((s) => this.cluster.isOut(s));
    if (!out || this.membershipBusy || !this.cluster.leader()) return;
    this.rebuildDrawn ??= this.rng.chance(0.7);
    if (!this.rebuildDrawn) return;
    this.membershipBusy = true;
    this.stats.rebuilds++;
    void this.rebuild(out).finally(() => {
      this.membershipBusy = false;
    });
  }

  private async rebuild(slot: NodeSlot): Promise<void> {
    this.trace(`nemesis: rebuild node ${slot.id}, which refused its damaged log`);
    if (!(await this.adminStep(`remove node ${slot.id}`, { type: 'remove', id: BigInt(slot.id) }))) {
      this.rebuildDrawn = undefined;
      return;
    }
    await this.cluster.rebuild(slot);
    if (!(await this.adminStep(`add node ${slot.id}`, { type: 'add', id: BigInt(slot.id), address: slot.address }))) return;
    await this.adminStep(`promote node ${slot.id}`, { type: 'assign', id: BigInt(slot.id), role: 0 });
  }

  /** Crashes `target` (if it runs), damages its log in the middle and restarts it after `restartMs`. */
  private crashAndDamage(target: NodeSlot, restartMs: number, preferAboveIndex = 0): void {
    if (target.incarnation) this.crash(target, 'before its log is damaged', 'caller');
    if (target.incarnation || this.cluster.isOut(target)) return;
    const damage = damageMiddleOfLog(target.disk, this.rng, preferAboveIndex);
    if (!damage) {
      this.trace(`nemesis: node ${target.id}'s log has no record before a later append to damage`);
    } else {
      target.logDamage = { ...damage, refused: false };
      this.stats.logsDamaged++;
      this.trace(`nemesis: damaged entry ${damage.index}'s record at byte ${damage.recordOffset} of node ${target.id}'s ${damage.file} (${damage.bytes} of its bytes changed)`);
    }
    this.scheduler.after(restartMs, () => {
      if (!target.incarnation && !this.cluster.isOut(target)) void this.cluster.start(target);
    });
  }

  /** A running node, or undefined while every node is down (the log-damage case crashes them all). */
  private pickRunning(): NodeSlot | undefined {
    const running = this.cluster.running();
    return running.length === 0 ? undefined : this.rng.pick(running);
  }

  /** Kills `target`; it restarts after `restartMs`, or only when the caller says so ('caller'). */
  private crash(target: NodeSlot, why: string, restartMs: number | 'caller' = 200 + this.rng.int(3000)): void {
    const report = this.cluster.crash(target);
    if (!report) return;
    this.stats.crashes++;
    if (why.startsWith('leader')) this.stats.leaderCrashes++;
    this.stats.tornWrites += report.torn.length;
    this.trace(`nemesis: crash node ${target.id} (${why}); torn ${report.torn.join(',') || 'none'}${restartMs === 'caller' ? '' : `; restart in ${restartMs} ms`}`);
    if (restartMs === 'caller') return;
    this.scheduler.after(restartMs, () => {
      if (!target.incarnation && !this.cluster.isOut(target)) void this.cluster.start(target);
    });
  }

  private slowDown(target: NodeSlot, extraMs: number, forMs: number): void {
    this.cluster.network.setSlow(target.address, extraMs);
    this.slow.add(target.address);
    this.stats.slowdowns++;
    this.trace(`nemesis: node ${target.id} slow by up to ${extraMs} ms for ${forMs} ms`);
    this.scheduler.after(forMs, () => {
      this.cluster.network.setSlow(target.address, 0);
      this.slow.delete(target.address);
    });
  }

  private transfer(leader: NodeSlot, target: NodeSlot): void {
    this.stats.transfers++;
    this.trace(`nemesis: transfer leadership from node ${leader.id} to node ${target.id}`);
    this.admin.admin({ type: 'transfer', id: BigInt(target.id) }, 'empty').then(
      () => this.trace(`nemesis: transfer to node ${target.id} done`),
      (error: unknown) => this.trace(`nemesis: transfer to node ${target.id} failed: ${(error as Error).message}`),
    );
  }

  /** A voter leaves and comes back with its data; its log catches up (or a snapshot does). */
  /** One admin request, retried for a while; false when it kept failing. */
  private async adminStep(what: string, request: Parameters<SimSession['admin']>[0]): Promise<boolean> {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await this.admin.admin(request, 'empty');
        this.trace(`nemesis: ${what} done`);
        return true;
      } catch (error) {
        // An add whose answer was lost was applied: the retry finds the node a member already.
        if (request.type === 'add' && /is already a member/.test((error as Error).message)) {
          this.trace(`nemesis: ${what} done (an earlier attempt was applied)`);
          return true;
        }
        this.trace(`nemesis: ${what} failed: ${(error as Error).message}`);
        await this.scheduler.sleep(200 + this.rng.int(500));
      }
    }
    return false;
  }

  private async removeAndAdd(slot: NodeSlot): Promise<void> {
    this.trace(`nemesis: remove node ${slot.id} and add it back`);
    if (!(await this.adminStep(`remove node ${slot.id}`, { type: 'remove', id: BigInt(slot.id) }))) return;
    await this.scheduler.sleep(this.rng.int(2000));
    if (!(await this.adminStep(`add node ${slot.id}`, { type: 'add', id: BigInt(slot.id), address: slot.address }))) return;
    await this.adminStep(`promote node ${slot.id}`, { type: 'assign', id: BigInt(slot.id), role: 0 });
  }

  /** Membership work still under way: the run must let it finish before the final checks. */
  get busy(): boolean {
    return this.membershipBusy;
  }
}

/**
 * npm run bench:raft — committed entries per second of the Raft core alone: a 3-node cluster in
 * memory (MemoryStorage, messages handed over directly, no I/O, no codec), 1 KiB entries,
 * proposals in batches so appends pipeline. Also reports the same with every message going
 * through encodeMessage/decodeMessage, as it would on a network.
 */
import { decodeMessage, encodeMessage, MemoryStorage, RaftNode } from '../src/raft/index.ts';
import type { Configuration, Message } from '../src/raft/index.ts';

const ENTRY_BYTES = 1024;
const ENTRIES_TOTAL = Number(process.env.RAFT_BENCH_ENTRIES ?? 200_000);
const BATCH_ENTRIES = 64;
const COMPACT_EVERY_ENTRIES = 10_000;

interface BenchNode {
  id: number;
  storage: MemoryStorage;
  raft: RaftNode;
  applied: number;
}

function run(throughCodec: boolean): { entriesPerSecond: number; microsPerEntry: number; messages: number } {
  const config: Configuration = { members: [1, 2, 3].map((id) => ({ id, address: `127.0.0.1:${9000 + id}`, role: 'voter' as const })) };
  const nodes = new Map<number, BenchNode>();
  let seed = 1;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (const id of [1, 2, 3]) {
    const storage = new MemoryStorage();
    RaftNode.bootstrap(storage, config);
    const raft = new RaftNode({ id, storage, electionTimeoutTicks: 10, heartbeatTicks: 1, random, maxInflightAppends: 256 });
    nodes.set(id, { id, storage, raft, applied: 0 });
  }
  const queue: Message[] = [];
  let messages = 0;
  const processReady = (n: BenchNode) => {
    while (n.raft.hasReady()) {
      const rd = n.raft.ready();
      if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
      n.storage.append(rd.entries);
      if (rd.hardState) n.storage.setHardState(rd.hardState);
      for (const m of rd.messages) queue.push(throughCodec ? decodeMessage(encodeMessage(m)) : m);
      const last = rd.committedEntries[rd.committedEntries.length - 1];
      if (last) n.applied = last.index;
      n.raft.advance(rd);
    }
  };
  const deliver = () => {
    while (queue.length > 0) {
      const m = queue.shift()!;
      messages++;
      const n = nodes.get(m.to)!;
      n.raft.step(m);
      processReady(n);
    }
  };
  const n1 = nodes.get(1)!;
  n1.raft.campaign();
  processReady(n1);
  deliver();
  if (n1.raft.status().state !== 'leader') throw new Error('node 1 did not become leader');

  const payload = new Uint8Array(ENTRY_BYTES).map((_, i) => i & 0xff);
  const firstIndex = n1.raft.status().lastIndex;
  let proposed = 0;
  let nextCompact = COMPACT_EVERY_ENTRIES;
  const started = process.hrtime.bigint();
  while (proposed < ENTRIES_TOTAL) {
    for (let i = 0; i < BATCH_ENTRIES && proposed < ENTRIES_TOTAL; i++, proposed++) {
      const r = n1.raft.propose(payload);
      if (!r.ok) throw r.error;
    }
    processReady(n1);
    deliver();
    if (n1.applied >= nextCompact) {
      nextCompact += COMPACT_EVERY_ENTRIES;
      for (const n of nodes.values()) {
        n.storage.createSnapshot(n.applied, n.raft.configurationAt(n.applied), new Uint8Array(0));
        n.storage.compact(Math.max(0, n.applied - 8192));
      }
    }
  }
  // Heartbeats let followers learn the final commit; the leader's commit is what we time.
  const elapsedNs = Number(process.hrtime.bigint() - started);
  const committed = n1.applied - firstIndex;
  if (committed !== ENTRIES_TOTAL) throw new Error(`only ${committed} of ${ENTRIES_TOTAL} entries committed`);
  const seconds = elapsedNs / 1e9;
  return { entriesPerSecond: committed / seconds, microsPerEntry: (elapsedNs / 1000) / committed, messages };
}

run(false); // warm-up
const direct = run(false);
const codec = run(true);
console.log(`raft core, 3 nodes in memory, ${ENTRY_BYTES}-byte entries, ${ENTRIES_TOTAL} entries, batches of ${BATCH_ENTRIES}`);
console.log(`  direct messages: ${Math.round(direct.entriesPerSecond).toLocaleString('en-US')} committed entries/s, ${direct.microsPerEntry.toFixed(2)} µs per entry (${direct.messages} messages)`);
console.log(`  through codec:   ${Math.round(codec.entriesPerSecond).toLocaleString('en-US')} committed entries/s, ${codec.microsPerEntry.toFixed(2)} µs per entry (${codec.messages} messages)`);

/**
 * What the HTTP API needs from the node it runs on, and nothing more: a way to talk to it as a
 * dqlite client, a way to dial other members, and what it knows of the cluster. Everything SQL
 * goes through the node's own gateway, so leader checks, transactions and errors are the same
 * as for any dqlite client.
 */
import type { ChangeLogSource } from '../live/change-feed.ts';
import type { ByteStream, DialStream } from '../runtime.ts';

export interface HttpApiMember {
  id: number;
  address: string;
  role: string;
}

export interface HttpApiClusterView {
  id: number;
  /** This node's address ("host:port"), as members and clients reach it. */
  address: string;
  state: string;
  /** 0 when no leader is known. */
  leaderId: number;
  leaderAddress: string;
  members: HttpApiMember[];
  reachablePeers: number[];
  /** Databases this node holds (opened here, or written to and replicated here). */
  databases: { name: string }[];
}

export interface HttpApiHost {
  /** A new dqlite client connection to this node, in process. */
  openClientStream(): ByteStream;
  /** Dials another member's dqlite port; undefined where the host cannot dial (then no forwarding). */
  readonly dialStream: DialStream | undefined;
  cluster(): HttpApiClusterView;
  /**
   * This node's copy of a database: its main file and the committed part of its WAL, taken at
   * once (one applied log index); undefined when the node does not hold it.
   */
  snapshotDatabase(name: string): { main: Uint8Array; wal: Uint8Array } | undefined;
  /** The node's log (long operations report progress there); absent where there is none. */
  log?(line: string): void;
  /** This node's applied log and commit events, for `/db/changes` (absent: not served). */
  changeLog?(): ChangeLogSource;
  /**
   * A full garbage collection now, where the host offers one: a load drops its copy of a whole
   * uploaded file before its COMMIT, which would otherwise stay resident beside the WAL and the
   * parts until the collector happens to run.
   */
  collectGarbage?(): void;
}

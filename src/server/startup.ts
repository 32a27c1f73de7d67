/**
 * Starting a cluster member, the same way on every host: lock the directory, open its storage,
 * read or create the node's identity, choose the cluster key (kept in the directory), listen,
 * start the node, bootstrap or join, and stop with a hand-over. Hosts supply only primitives
 * (`MemberHost`); nothing here exits a process: a node that stops itself releases its port and
 * directory and rejects `closed` with the original error.
 */
import type { ReadLevel } from './read-path.ts';
import { Engine } from '../../wasm/index.ts';
import { dialOverWebSocket } from '../client/message-stream.ts';
import { resolveLimits, type Limits } from '../limits.ts';
import type { ByteStream, DialStream, DialWebSocket, DurableStorage, MessageChannel, Runtime, TimerHandle } from '../runtime.ts';
import { CLUSTER_KEY_HEADER } from '../transport/index.ts';
import { AdminPolicy } from './admin-policy.ts';
import { chooseClusterKey, CLUSTER_KEY_FILE, clusterKeyBytes, type WriteSecret } from './cluster-key-file.ts';
import { ClientAccess } from './client-access.ts';
import {
  acceptWebSocket,
  CLIENT_WEBSOCKET_PATH,
  createIdentity,
  httpResponse,
  IDENTITY_FILE,
  markAuthenticated,
  readIdentity,
  upgradeRefusal,
} from './host.ts';
import type { HttpApiRequest, HttpApiResponse } from '../http/request.ts';
import { ClusterNode } from './node.ts';
import { NODE_DEFAULTS, type UnsafeSwitches } from './node-options.ts';

/** How long a new member keeps trying to join before it gives up with an error. */
export const JOIN_TIMEOUT_MS_DEFAULT = 60_000;

/**
 * How often a member looks whether it has gone quiet. V8 gives back the young generation that
 * start-up or a write load grew (to 2 × 16 MiB on Node.js 20; 7–10 MiB of an idle node's RSS)
 * only in a collection that finds little allocated lately, which an idle node never triggers by
 * itself. So once the applied index has stood still for a whole period after it moved (start-up
 * counts as moving), the member asks its host for one full collection (docs/memory.md).
 */
export const QUIET_COLLECTION_PERIOD_MS = 10_000;

/**
 * Asks `collect` for a collection each time `appliedIndex` stops moving for `periodMs`: once
 * after start-up, then once after each spell of writes. Cancel it when the node stops.
 */
export function collectWhenQuiet(clock: Runtime['clock'], appliedIndex: () => number, collect: () => void, periodMs = QUIET_COLLECTION_PERIOD_MS): TimerHandle {
  let last = appliedIndex();
  let moved = true;
  return clock.setInterval(() => {
    const now = appliedIndex();
    if (now !== last) {
      last = now;
      moved = true;
    } else if (moved) {
      moved = false;
      collect();
    }
  }, periodMs);
}

export interface MemberOptions {
  /** Where to listen, host:port (port 0: any free port; the bound one is advertised). */
  address: string;
  /** The address peers and clients are told to use, when it differs (a proxy in front). */
  advertise?: string;
  dir: string;
  /** Members to join through; only used by a directory that belongs to no cluster yet. */
  join?: readonly string[];
  /**
   * The cluster's key. Optional for a directory that already belongs to a cluster (its key is
   * kept in `DIR/cluster-key`) and for a new cluster (one is generated and kept there).
   */
  clusterKey?: string;
  /** `--admin-allow`: addresses allowed to change the membership without credentials. Default loopback. */
  adminAllow?: string;
  /** `--allow-origin`: browser page origins allowed on `/dqlite` without a client token. Default loopback. */
  allowOrigin?: string;
  tickMs?: number;
  walFramesMax?: number;
  /** `--page-size`: page size of the databases this node creates (default 4096); existing ones keep theirs, followers take the creator's. */
  pageSize?: number;
  snapshotThresholdEntries?: number;
  snapshotTrailingEntries?: number;
  commitTimeoutMs?: number;
  busyTimeoutMs?: number;
  joinTimeoutMs?: number;
  /** Overrides of the limits table (src/limits.ts). */
  limits?: Partial<Limits>;
  /** Read level of clients that cannot choose one (go-dqlite, the dqlite shell). */
  defaultReadLevel?: ReadLevel;
  /**
   * `--change-capture off`: entries this node writes as leader carry no row changes, so change
   * feeds and live queries see `rowsOmitted` transactions. Default on (docs/live-queries.md).
   */
  changeCapture?: boolean;
  unsafeForTesting?: UnsafeSwitches;
  log?: (line: string) => void;
  /** The node stopped itself (its port and directory are released by then), with the original error. */
  onFatal?: (error: Error) => void;
}

/** How a connection reached the listener, as far as the node cares. */
export interface ConnectionSecurity {
  /** It came through mutual TLS: the other side presented a certificate of the cluster's CA. */
  readonly secure: boolean;
}

/** What a listener hands the node; the same on every host. */
export interface UpgradeInfo {
  readonly path: string;
  readonly query?: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly remoteAddress?: string;
  /** Absent on hosts without TLS: the same as not secure. */
  readonly connection?: ConnectionSecurity;
}

export interface ListenHandlers {
  onStream(stream: ByteStream, connection?: ConnectionSecurity): void;
  checkUpgrade(request: UpgradeInfo): { status: number; reason: string } | undefined;
  onWebSocket(channel: MessageChannel, request: UpgradeInfo): void;
  /** Status pages and the HTTP API (src/http/); `body` is read by the API's writes. */
  onHttp(request: HttpApiRequest & { readonly connection?: ConnectionSecurity }): Promise<HttpApiResponse>;
}

/** The mutual TLS a host's listener and dialers use. */
export interface HostTls {
  /** The subject of our certificate, for the start-up line. */
  readonly subject: string;
  /**
   * Browsers without a client certificate may open WebSockets: connections without one are
   * then judged as on a cluster without TLS (by `--admin-allow`).
   */
  readonly webSocketsWithoutCertificate: boolean;
}

export interface HostListener {
  /** host:port actually bound. */
  readonly address: string;
  close(): Promise<void>;
}

export interface HostStorage extends DurableStorage {
  close?(): Promise<void>;
}

/** The primitives a host gives a member: files, lock, listen, dial, clock and randomness. */
export interface MemberHost {
  /** Clock, randomness and dialing; `dialStream` is required. */
  runtime: Runtime & { dialStream: DialStream };
  makeDirectory(dir: string): Promise<void>;
  lockDirectory(dir: string): Promise<{ release(): Promise<void> }>;
  openStorage(dir: string): Promise<HostStorage>;
  /** Writes `name` in `dir` readable by its owner only. */
  writeSecret(dir: string, name: string, bytes: Uint8Array): Promise<void>;
  listen(
    where: { host: string; port: number; webSocketMessageBytesMax: number },
    handlers: ListenHandlers,
  ): Promise<HostListener>;
  /**
   * How a new member reaches the cluster to join. Default: the `/dqlite` WebSocket with the
   * cluster key in the upgrade, so the leader knows the request comes from a holder of the key.
   */
  joinDial?(clusterKey: string): DialStream;
  /** Set when the host serves and dials with mutual TLS (`--tls-*`). */
  readonly tls?: HostTls;
  /** Names the host in the start-up line ("node", "deno node"). */
  readonly label?: string;
}

export interface RunningMember {
  node: ClusterNode;
  /** host:port actually bound. */
  address: string;
  /** The address peers and clients use. */
  advertised: string;
  clusterKey: string;
  /** Resolves once stopped; rejects with the original error when the node stopped itself. */
  closed: Promise<void>;
  stop(options?: { handOver?: boolean }): Promise<void>;
}

export function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const portText = address.slice(colon + 1);
  const port = Number(portText);
  if (colon <= 0 || portText === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--address must be host:port with a port from 0 to 65535, got "${address}"`);
  }
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port };
}

export function authenticatedDial(dialWebSocket: DialWebSocket, clusterKey: string, secure = false): DialStream {
  return dialOverWebSocket(
    (url, dialOptions) => dialWebSocket(url, { ...dialOptions, headers: { ...dialOptions?.headers, [CLUSTER_KEY_HEADER]: clusterKey } }),
    (address) => `${secure ? 'wss' : 'ws'}://${address}${CLIENT_WEBSOCKET_PATH}`,
  );
}

/** Runs `steps` of clean-up in order, each even when an earlier one failed. */
async function cleanUp(steps: (() => Promise<void> | void)[]): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch {
      // Releasing what is left matters more than the reason one release failed.
    }
  }
}

async function storedPort(storage: DurableStorage): Promise<number | undefined> {
  const stored = await storage.read(IDENTITY_FILE);
  if (!stored) return undefined;
  try {
    const { address } = JSON.parse(new TextDecoder().decode(stored)) as { address?: unknown };
    return typeof address === 'string' ? splitAddress(address).port || undefined : undefined;
  } catch {
    // readIdentity reports a damaged identity file, naming it.
    return undefined;
  }
}

export async function startMember(options: MemberOptions, host: MemberHost): Promise<RunningMember> {
  const log = options.log ?? ((line: string) => console.log(line));
  const { host: listenHost, port } = splitAddress(options.address);
  const join = (options.join ?? []).map((a) => a.trim()).filter((a) => a.length > 0);
  const limits = resolveLimits(options.limits);
  const runtime = host.runtime;
  const tls = host.tls;
  await host.makeDirectory(options.dir);
  const lock = await host.lockDirectory(options.dir);
  const releases: (() => Promise<void> | void)[] = [() => lock.release()];
  const abandon = (): Promise<void> => cleanUp([...releases].reverse());
  try {
    const storage = await host.openStorage(options.dir);
    releases.push(() => storage.close?.());
    let node: ClusterNode | undefined;
    let access: ClientAccess | undefined;
    // A member on "any free port" comes back on the port its identity names: its peers know it there.
    const listenPort = port === 0 && options.advertise === undefined ? ((await storedPort(storage)) ?? 0) : port;
    const listener = await host.listen(
      { host: listenHost, port: listenPort, webSocketMessageBytesMax: limits.peerMessageBytesMax },
      {
        // A client certificate of the cluster CA authenticates a connection as the cluster key does.
        onStream: (stream, connection) => (node ? node.acceptClient(connection?.secure ? markAuthenticated(stream) : stream) : stream.close()),
        checkUpgrade: (request) => (request.connection?.secure ? upgradeRefusal(request.path) : upgradeRefusal(request.path, request, access)),
        onWebSocket: (channel, request) =>
          acceptWebSocket(node, channel, request.path, request.headers, {
            ...(request.connection?.secure ? { certificateVerified: true } : access && { access }),
            ...(request.query !== undefined && { query: request.query }),
          }),
        onHttp: (request) => httpResponse(node, request, runtime.dialStream, access),
      },
    );
    releases.push(() => listener.close());
    const advertised = options.advertise ?? (port === 0 ? listener.address : options.address);

    const existing = await readIdentity(storage, advertised, options.dir);
    const fresh = existing === undefined;
    const joining = fresh && join.length > 0;
    const key = await chooseClusterKey({
      storage,
      where: options.dir,
      given: options.clusterKey,
      member: !fresh,
      joining,
      randomBytes: runtime.randomBytes,
    });
    const storeKey = async (): Promise<void> => {
      if (!key.store) return;
      await host.writeSecret(options.dir, CLUSTER_KEY_FILE, clusterKeyBytes(key.key));
      if (key.generated) log(`generated a cluster key in ${options.dir}/${CLUSTER_KEY_FILE}; give it to joining nodes with --cluster-key-file`);
    };
    // A new cluster's directory holds its key before it holds anything else of the cluster.
    if (!joining) await storeKey();
    const identity = existing ?? (await createIdentity(storage, advertised, runtime.randomBytes));
    access = await ClientAccess.create({
      clusterKey: key.key,
      ...(options.allowOrigin !== undefined && { allowOrigin: options.allowOrigin }),
    });
    // With certificate-less browsers admitted (websocket-optional), connections without a
    // certificate are judged as on a cluster without TLS: by the --admin-allow list.
    const adminPolicy = new AdminPolicy({
      ...(options.adminAllow !== undefined && { allow: options.adminAllow }),
      tls: tls !== undefined && !tls.webSocketsWithoutCertificate,
    });
    const engine = await Engine.create({ fileBytesMax: limits.databaseBytesMax, ...(options.pageSize !== undefined && { pageSize: options.pageSize }) });

    node = await ClusterNode.start({
      id: identity.id,
      address: advertised,
      runtime,
      storage,
      engine,
      clusterKey: key.key,
      adminPolicy,
      secure: tls !== undefined,
      bootstrap: fresh && !joining,
      ...(options.tickMs !== undefined && { tickMs: options.tickMs }),
      ...(options.walFramesMax !== undefined && { walFramesMax: options.walFramesMax }),
      ...(options.snapshotThresholdEntries !== undefined && { snapshotThresholdEntries: options.snapshotThresholdEntries }),
      ...(options.snapshotTrailingEntries !== undefined && { snapshotTrailingEntries: options.snapshotTrailingEntries }),
      ...(options.commitTimeoutMs !== undefined && { commitTimeoutMs: options.commitTimeoutMs }),
      ...(options.busyTimeoutMs !== undefined && { busyTimeoutMs: options.busyTimeoutMs }),
      ...(options.limits && { limits: options.limits }),
      ...(options.defaultReadLevel && { defaultReadLevel: options.defaultReadLevel }),
      ...(options.changeCapture !== undefined && { changeCapture: options.changeCapture }),
      ...(options.unsafeForTesting && { unsafeForTesting: options.unsafeForTesting }),
      log: (line) => log(`[node ${identity.id} ${advertised}] ${line}`),
    });
    const started = node;
    releases.push(() => started.stop());
    log(`${host.label ?? 'node'} ${identity.id} listening on ${listener.address}${tls ? ` with mutual TLS as "${tls.subject}"` : ''} (data in ${options.dir})`);

    if (joining) {
      // Joining (and the client it dials with) loads only for a new member that joins.
      const { joinCluster, JoinRefusedError } = await import('./join.ts');
      try {
        await joinCluster({
          dial: host.joinDial ? host.joinDial(key.key) : authenticatedDial(runtime.dialWebSocket, key.key, tls !== undefined),
          clock: runtime.clock,
          servers: join.filter((a) => a !== advertised),
          id: identity.id,
          address: advertised,
          votersMax: NODE_DEFAULTS.votersMax,
          standbysMax: NODE_DEFAULTS.standbysMax,
          timeoutMs: options.joinTimeoutMs ?? JOIN_TIMEOUT_MS_DEFAULT,
          log: (line) => log(`[node ${identity.id}] ${line}`),
        });
      } catch (error) {
        // Never a member: forget the identity, so a restart with the right key joins afresh.
        if (error instanceof JoinRefusedError) releases.push(() => storage.remove(IDENTITY_FILE));
        throw error;
      }
      await storeKey();
    }
    const collect = runtime.collectGarbage;
    const quietCollection = collect && collectWhenQuiet(runtime.clock, () => started.appliedIndex(), () => collect.call(runtime));
    if (quietCollection) {
      const cancel = (): void => quietCollection.cancel();
      started.closed.then(cancel, cancel);
    }

    let stopping: Promise<void> | undefined;
    const stop = (stopOptions: { handOver?: boolean } = {}): Promise<void> => {
      stopping ??= (async () => {
        await started.stop(stopOptions);
        await listener.close();
        await storage.close?.();
        await lock.release();
      })();
      return stopping;
    };
    // A node that stopped itself gives its port and directory back, so a supervisor (or the
    // caller) can restart it at once; a restart rebuilds the databases from the snapshot and the log.
    const closed = started.closed.catch(async (error: unknown) => {
      await stop().catch(() => undefined);
      options.onFatal?.(error as Error);
      throw error;
    });
    closed.catch(() => undefined);
    return { node: started, address: listener.address, advertised, clusterKey: key.key, closed, stop };
  } catch (error) {
    await abandon();
    throw error;
  }
}

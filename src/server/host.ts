/**
 * What every host (Node, Deno, browser) does the same way around a node: its identity file, the
 * WebSocket paths it serves, and its HTTP status answers. Host-neutral: only `src/` types.
 */
import type { HttpApiRequest, HttpApiResponse } from '../http/index.ts';
import { isHttpApiPath } from '../http/paths.ts';
import type { ByteStream, DialStream, DurableStorage, MessageChannel } from '../runtime.ts';
import { PEER_WEBSOCKET_PATH } from '../transport/index.ts';
import { crc32 } from '../util/crc32.ts';
import { byteStreamFromChannel } from './channel-stream.ts';
import { header, type ClientAccess } from './client-access.ts';
import type { ConnectionSecurity } from './startup.ts';
import { PROMETHEUS_CONTENT_TYPE } from './metrics-registry.ts';
import type { ClusterNode } from './node.ts';
import { RaftLogCorruptError } from './raft-log.ts';

/** WebSocket path of the dqlite client protocol (browsers cannot open raw TCP). */
export const CLIENT_WEBSOCKET_PATH = '/dqlite';

/** Same file and format on every host, so a data directory moves between them. */
export const IDENTITY_FILE = 'node.json';

export interface NodeIdentity {
  id: number;
  address: string;
}

/** A random node id; 0 and 1 are reserved (0: none; 1: go-dqlite's bootstrap id). */
export function randomNodeId(randomBytes: (length: number) => Uint8Array): number {
  let id = 0;
  for (const byte of randomBytes(7)) id = id * 256 + byte;
  return (id % (Number.MAX_SAFE_INTEGER - 1)) + 2;
}

/**
 * The identity stored in `storage`, or undefined for a new data directory. A directory that
 * belongs to a node at another address is refused: `where` names it in the error.
 */
export async function readIdentity(storage: DurableStorage, address: string, where: string): Promise<NodeIdentity | undefined> {
  const stored = await storage.read(IDENTITY_FILE);
  if (!stored) return undefined;
  const identity = decodeIdentity(stored);
  // Replaced atomically, so never torn: a file that does not read back is damaged, and a node
  // with another id would vote and answer as someone else.
  if (typeof identity === 'string') throw new RaftLogCorruptError(IDENTITY_FILE, 0, `the node's id cannot be read: ${identity}`);
  if (identity.address !== address) {
    throw new Error(
      `${where} belongs to the node at ${identity.address}, not ${address}: start it with --address ${identity.address}, or use a new --dir`,
    );
  }
  return identity;
}

export async function createIdentity(
  storage: DurableStorage,
  address: string,
  randomBytes: (length: number) => Uint8Array,
): Promise<NodeIdentity> {
  const identity = { id: randomNodeId(randomBytes), address };
  const file = { ...identity, crc32: identityChecksum(identity) };
  await storage.writeAtomic(IDENTITY_FILE, new TextEncoder().encode(JSON.stringify(file) + '\n'));
  return identity;
}

function identityChecksum(identity: NodeIdentity): number {
  return crc32(new TextEncoder().encode(`${identity.id}\n${identity.address}`));
}

/** The identity, or a sentence saying why the bytes are not one (files without `crc32` predate it). */
function decodeIdentity(bytes: Uint8Array): NodeIdentity | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    return `it is not JSON (${(error as Error).message})`;
  }
  const { id, address, crc32: checksum } = (parsed ?? {}) as { id?: unknown; address?: unknown; crc32?: unknown };
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 2 || typeof address !== 'string') return 'it lacks a valid id or address';
  if (checksum !== undefined && checksum !== identityChecksum({ id, address })) return 'it fails its checksum';
  return { id, address };
}

/** What a host knows of an upgrade besides its path. */
export interface UpgradeDetails {
  headers: Record<string, string | string[] | undefined>;
  /** The URL's query string without `?` (carries a browser's client token). */
  query?: string;
}

/**
 * Refuses upgrades before they complete: paths a node does not serve, and, given the host's
 * `access`, `/dqlite` upgrades without a client token, an allowed origin or the cluster key.
 */
export function upgradeRefusal(
  path: string,
  upgrade?: UpgradeDetails,
  access?: ClientAccess,
): { status: number; reason: string } | undefined {
  if (path === PEER_WEBSOCKET_PATH) return undefined;
  if (path === CLIENT_WEBSOCKET_PATH) return access && upgrade ? access.refusal(upgrade) : undefined;
  return { status: 404, reason: `unknown WebSocket path ${path}: use ${PEER_WEBSOCKET_PATH} or ${CLIENT_WEBSOCKET_PATH}` };
}

export interface AcceptOptions {
  /** The host's `/dqlite` access policy: a cluster key in the upgrade makes the stream authenticated. */
  access?: ClientAccess;
  /** Set by a TLS host when the connection presented a client certificate of the cluster CA. */
  certificateVerified?: boolean;
  query?: string;
}

/** Hands an accepted WebSocket to the node: a Raft peer, or a dqlite client. */
export function acceptWebSocket(
  node: ClusterNode | undefined,
  channel: MessageChannel,
  path: string,
  headers: Record<string, string | string[] | undefined>,
  options: AcceptOptions = {},
): void {
  if (!node) return channel.close('node is starting');
  if (path === PEER_WEBSOCKET_PATH) return node.acceptPeer(channel, headers);
  const upgrade = { headers, ...(options.query !== undefined && { query: options.query }) };
  if (options.access?.refusal(upgrade)) return channel.close('not allowed');
  const stream = byteStreamFromChannel(channel);
  const authenticated = options.certificateVerified === true || options.access?.authenticates(upgrade) === true;
  node.acceptClient(authenticated ? markAuthenticated(stream) : stream);
}

/** The same stream, marked as having proved the cluster's credentials (see `ByteStream.authenticated`). */
export function markAuthenticated(stream: ByteStream): ByteStream {
  return {
    write: (bytes) => stream.write(bytes),
    onData: (handler) => stream.onData(handler),
    onClose: (handler) => stream.onClose(handler),
    close: () => stream.close(),
    get remoteAddress() {
      return stream.remoteAddress;
    },
    authenticated: true,
  };
}

/**
 * `GET /health` (200 once a leader is known), `GET /status` (the node's status as JSON) and
 * `GET /metrics` (Prometheus text format).
 */
/** Every plain HTTP request: the rqlite-compatible API (`/db/*`, `/nodes`, `/readyz`), else the status answers. */
/**
 * The HTTP API is judged as `/dqlite` is (`ClientAccess`): a browser page from an origin that is
 * not allowed, without the client token, is refused before anything runs, so that no page a user
 * visits can write to a node on their machine with a form post or a `fetch` in no-cors mode. A
 * page that passes gets CORS headers, so it can read the answers. Requests without an Origin
 * header (curl, rqlite clients, other programs) are not pages and pass, as on the TCP port.
 */
export async function httpResponse(
  node: ClusterNode | undefined,
  request: HttpApiRequest & { readonly connection?: ConnectionSecurity },
  dialStream?: DialStream,
  access?: ClientAccess,
): Promise<HttpApiResponse> {
  if (!node || !isHttpApiPath(request.path)) return statusResponse(node, request.path);
  const origin = header(request.headers, 'origin');
  // A preflight grants nothing by itself (it carries no credentials); the request it clears is judged.
  if (request.method === 'OPTIONS' && origin !== undefined) return { status: 204, headers: corsHeaders(origin, true), body: '' };
  if (!request.connection?.secure) {
    if (!access) return { status: 503, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: 'the node is starting: try again' }) };
    const refusal = access.refusal({ headers: request.headers, query: request.query }, "this node's HTTP API");
    if (refusal) return { status: refusal.status, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: refusal.reason }) };
  }
  // The API's modules load at its first request: a node that is never asked never holds them.
  const { httpApiFor } = await import('../http/cluster-node-host.ts');
  const answer = await httpApiFor(node, dialStream).answer(request);
  return origin === undefined ? answer : { ...answer, headers: { ...answer.headers, ...corsHeaders(origin, false) } };
}

function corsHeaders(origin: string, preflight: boolean): Record<string, string> {
  return {
    'access-control-allow-origin': origin,
    vary: 'origin',
    ...(preflight && {
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'authorization, content-type, x-dqlite-cluster-key',
      'access-control-max-age': '600',
    }),
  };
}

/** `GET /health` (200 once a leader is known) and `GET /metrics` (the node's status as JSON). */
export function statusResponse(
  node: ClusterNode | undefined,
  path: string,
): { status: number; headers?: Record<string, string>; body: string } {
  if (!node) return { status: 503, body: 'starting\n' };
  const status = node.status();
  const json = { 'content-type': 'application/json' };
  if (path === '/health') {
    const healthy = status.leaderId !== 0;
    return { status: healthy ? 200 : 503, headers: json, body: JSON.stringify({ ok: healthy, state: status.state, leader: status.leaderAddress }) + '\n' };
  }
  if (path === '/status') return { status: 200, headers: json, body: JSON.stringify(status, null, 2) + '\n' };
  if (path === '/metrics') {
    return { status: 200, headers: { 'content-type': PROMETHEUS_CONTENT_TYPE }, body: node.metrics.render(status, node.transportStats()) };
  }
  return { status: 404, body: 'not found: try /health, /status or /metrics\n' };
}

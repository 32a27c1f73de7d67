/**
 * Who may open the dqlite protocol over the `/dqlite` WebSocket. A browser page is allowed when it
 * presents the cluster's client token (`?token=…` in the URL: browsers cannot set upgrade headers)
 * or when its origin is on `--allow-origin` (default: pages served from loopback). Without such a
 * check any web page a user visits could drive a node on their machine. A connection that carries
 * the cluster key (header `x-dqlite-cluster-key`) is authenticated: it may change the membership.
 * A client without an Origin header is not a browser page; it is treated like a TCP client.
 */
import { CLUSTER_KEY_HEADER, constantTimeEqual } from '../transport/index.ts';

/** Query parameter of the `/dqlite` WebSocket URL that carries the client token. */
export const CLIENT_TOKEN_PARAMETER = 'token';

/** The HMAC message the client token is derived with; changing it invalidates every token. */
const CLIENT_TOKEN_CONTEXT = 'dqlite-wasm client token v1';

export const ALLOWED_ORIGINS_MAX = 256;

export interface ClientUpgrade {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The URL's query string without `?`. */
  readonly query?: string;
}

export interface Refusal {
  status: number;
  reason: string;
}

/**
 * The token a browser app puts in its `/dqlite` URL: HMAC-SHA256 of a fixed context under the
 * cluster key, base64url. It grants SQL access only; it cannot be turned back into the key, so
 * it may be shipped to pages that must never join the cluster or change its membership.
 */
export async function deriveClientToken(clusterKey: string): Promise<string> {
  const encoder = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', encoder.encode(clusterKey), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(CLIENT_TOKEN_CONTEXT)));
  let binary = '';
  for (const byte of mac) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

type OriginRule = { kind: 'any' } | { kind: 'loopback' } | { kind: 'exact'; origin: string };

export class ClientAccess {
  private constructor(
    private readonly clusterKey: string,
    private readonly token: string,
    private readonly rules: OriginRule[],
    private readonly allowDescription: string,
  ) {}

  /** `allowOrigin` is `--allow-origin` as given: `ORIGIN[,ORIGIN...]`, `loopback`, `*` or `none`. */
  static async create(options: { clusterKey: string; allowOrigin?: string }): Promise<ClientAccess> {
    const text = (options.allowOrigin ?? 'loopback').trim();
    return new ClientAccess(options.clusterKey, await deriveClientToken(options.clusterKey), parseOrigins(text), text);
  }

  /**
   * Checked before a `/dqlite` upgrade completes, and before an HTTP API request is answered
   * (`what` names it in the refusal): undefined to accept, else the HTTP refusal. HTTP requests
   * may also carry the token as `Authorization: Bearer TOKEN`, which a page's fetch can set.
   */
  refusal(upgrade: ClientUpgrade, what = "this node's dqlite protocol"): Refusal | undefined {
    const key = header(upgrade.headers, CLUSTER_KEY_HEADER);
    if (key !== undefined) {
      return constantTimeEqual(key, this.clusterKey) ? undefined : { status: 401, reason: 'wrong cluster key in x-dqlite-cluster-key' };
    }
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header(upgrade.headers, 'authorization') ?? '')?.[1];
    const token = new URLSearchParams(upgrade.query ?? '').get(CLIENT_TOKEN_PARAMETER) ?? bearer ?? null;
    if (token !== null) {
      return constantTimeEqual(token, this.token)
        ? undefined
        : { status: 401, reason: 'wrong client token: get the current one with `dqlite-wasm client-token --cluster-key-file FILE`' };
    }
    const origin = header(upgrade.headers, 'origin');
    if (origin === undefined) return undefined;
    if (this.rules.some((rule) => originMatches(rule, origin))) return undefined;
    return {
      status: 403,
      reason:
        `pages from ${origin} may not use ${what}: add ?${CLIENT_TOKEN_PARAMETER}=TOKEN to the URL ` +
        `(dqlite-wasm client-token prints it), or start the node with --allow-origin ${origin} (now: ${this.allowDescription})`,
    };
  }

  /** Whether an accepted upgrade proved the cluster key, which makes its stream authenticated. */
  authenticates(upgrade: ClientUpgrade): boolean {
    const key = header(upgrade.headers, CLUSTER_KEY_HEADER);
    return key !== undefined && constantTimeEqual(key, this.clusterKey);
  }
}

/** `--allow-origin`'s syntax check, for the command line: throws an Error naming the bad entry. */
export function parseOrigins(text: string): OriginRule[] {
  if (text === 'none') return [];
  const parts = text.split(',').map((part) => part.trim()).filter((part) => part.length > 0);
  if (parts.length === 0) throw new Error('--allow-origin is empty: give ORIGIN[,ORIGIN...], loopback, * or none');
  if (parts.length > ALLOWED_ORIGINS_MAX) throw new Error(`--allow-origin has ${parts.length} entries, at most ${ALLOWED_ORIGINS_MAX} allowed`);
  return parts.map((part): OriginRule => {
    if (part === '*') return { kind: 'any' };
    if (part === 'loopback') return { kind: 'loopback' };
    let url: URL;
    try {
      url = new URL(part);
    } catch {
      throw new Error(`--allow-origin entry "${part}" is not an origin like https://app.example.com`);
    }
    if (url.origin === 'null' || url.pathname !== '/' || url.search !== '' || part.endsWith('/')) {
      throw new Error(`--allow-origin entry "${part}" must be a bare origin (scheme://host[:port]), like https://app.example.com`);
    }
    return { kind: 'exact', origin: url.origin };
  });
}

function originMatches(rule: OriginRule, origin: string): boolean {
  if (rule.kind === 'any') return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (rule.kind === 'exact') return url.origin === rule.origin;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  const host = url.hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The first value of an HTTP request header (node:http gives repeated ones as an array). */
export function header(headers: Readonly<Record<string, string | string[] | undefined>>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Who may change the cluster through the dqlite protocol (add, assign, remove, transfer,
 * weight). A connection may when it is authenticated (the host set `authenticated` on its
 * stream: a client certificate of the cluster CA, or the cluster key in the `/dqlite` WebSocket
 * upgrade), or, on a cluster without TLS, when it comes from an address on the allow-list
 * (`--admin-allow`, default loopback, so a local `npm start` cluster stays manageable with the
 * real `dqlite` shell).
 */
import type { ByteStream } from '../runtime.ts';
import { NodeError } from './errors.ts';

/** SQLite's "authorization denied": the request was understood and refused; nothing changed. */
export const SQLITE_AUTH = 23;

/** The requests that change membership or leadership: the ones this policy guards. */
export const ADMIN_REQUEST_TYPES = ['add', 'assign', 'remove', 'transfer', 'weight'] as const;
export type AdminRequestType = (typeof ADMIN_REQUEST_TYPES)[number];

export const ADMIN_ALLOW_ENTRIES_MAX = 256;

/** One allow-list entry: an exact IP, an IPv4 CIDR block, or the loopback addresses. */
type AllowEntry = { kind: 'loopback' } | { kind: 'ip'; ip: string } | { kind: 'ipv4-block'; base: number; maskBits: number };

export interface AdminPolicyOptions {
  /** `--admin-allow` as given: `ADDR[,ADDR...]`, `none`, or undefined for the default (loopback). */
  allow?: string;
  /** With TLS, only authenticated connections may administer; the allow-list is not consulted. */
  tls?: boolean;
}

export class AdminPolicy {
  private readonly entries: AllowEntry[];
  private readonly tls: boolean;
  /** The allow-list as a person would write it, for error messages. */
  readonly allowDescription: string;

  constructor(options: AdminPolicyOptions = {}) {
    this.tls = options.tls ?? false;
    const text = (options.allow ?? 'loopback').trim();
    this.entries = parseAllowList(text);
    this.allowDescription = this.entries.length === 0 ? 'none' : text;
  }

  /** Undefined when `stream` may send `request`; otherwise the error to answer, nothing done. */
  refusal(stream: ByteStream, request: AdminRequestType): NodeError | undefined {
    if (stream.authenticated === true) return undefined;
    const host = hostOf(stream.remoteAddress);
    if (!this.tls && this.entries.some((entry) => matches(entry, host))) return undefined;
    const how = this.tls
      ? 'connect with a client certificate of the cluster CA (dqlite -c/-k)'
      : `connect from an address allowed by the node's --admin-allow (now: ${this.allowDescription}), ` +
        `or over the node's /dqlite WebSocket with the cluster key in the x-dqlite-cluster-key header`;
    return new NodeError(
      SQLITE_AUTH,
      `not authorized: ${request} changes the cluster, and this connection (from ${host || 'an unknown address'}) is not authenticated` +
        `${this.tls ? '' : ' nor from an allowed address'}; ${how}`,
    );
  }
}

/** `--admin-allow`'s syntax check, for the command line: throws an Error naming the bad entry. */
export function parseAllowList(text: string): AllowEntry[] {
  if (text === 'none') return [];
  const parts = text.split(',').map((part) => part.trim()).filter((part) => part.length > 0);
  if (parts.length === 0) throw new Error('--admin-allow is empty: give ADDR[,ADDR...], loopback or none');
  if (parts.length > ADMIN_ALLOW_ENTRIES_MAX) throw new Error(`--admin-allow has ${parts.length} entries, at most ${ADMIN_ALLOW_ENTRIES_MAX} allowed`);
  return parts.map((part): AllowEntry => {
    if (part === 'loopback') return { kind: 'loopback' };
    const slash = part.indexOf('/');
    if (slash > 0) {
      const base = ipv4ToNumber(part.slice(0, slash));
      const maskBits = Number(part.slice(slash + 1));
      if (base === undefined || !Number.isInteger(maskBits) || maskBits < 0 || maskBits > 32) {
        throw new Error(`--admin-allow entry "${part}" is not an IPv4 block like 10.0.0.0/8`);
      }
      return { kind: 'ipv4-block', base, maskBits };
    }
    const ip = normalizeIp(part.replace(/^\[|\]$/g, ''));
    if (ip === undefined) throw new Error(`--admin-allow entry "${part}" is not an IP address, an IPv4 block, loopback or none`);
    return { kind: 'ip', ip };
  });
}

function matches(entry: AllowEntry, host: string): boolean {
  const ip = normalizeIp(host);
  if (ip === undefined) return false;
  if (entry.kind === 'ip') return entry.ip === ip;
  const v4 = ipv4ToNumber(ip);
  if (entry.kind === 'loopback') return ip === '::1' || (v4 !== undefined && v4 >>> 24 === 127);
  if (v4 === undefined) return false;
  const mask = entry.maskBits === 0 ? 0 : (0xffffffff << (32 - entry.maskBits)) >>> 0;
  return ((v4 & mask) >>> 0) === ((entry.base & mask) >>> 0);
}

/** The host part of "host:port", "[v6]:port" or "v6:port" (Node writes IPv6 peers without brackets). */
export function hostOf(remoteAddress: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(remoteAddress);
  if (bracketed) return bracketed[1]!;
  const colon = remoteAddress.lastIndexOf(':');
  if (colon < 0) return remoteAddress;
  return remoteAddress.slice(0, colon);
}

/** IPv4 as dotted quad; IPv4-mapped IPv6 as IPv4; other IPv6 lower-cased. Undefined if not an IP. */
function normalizeIp(text: string): string | undefined {
  const lower = text.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  const candidate = mapped ? mapped[1]! : lower;
  if (ipv4ToNumber(candidate) !== undefined) return candidate;
  if (/^[0-9a-f:]+$/.test(lower) && lower.includes(':')) return expandIpv6(lower);
  return undefined;
}

function expandIpv6(text: string): string | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (groups.some((group) => group.length === 0 || group.length > 4)) return undefined;
  const compact = groups.map((group) => parseInt(group, 16).toString(16)).join(':');
  return compact === '0:0:0:0:0:0:0:1' ? '::1' : compact;
}

function ipv4ToNumber(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

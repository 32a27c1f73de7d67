/** `/nodes` and `/readyz` in rqlite's shapes, from what this node knows of the cluster. */
import type { HttpApiClusterView } from './api-host.ts';
import type { JsonValue } from './rqlite-json.ts';
import type { QueryParams } from './request.ts';

/**
 * rqlite lists voters (all members with `?nonvoters`), keyed by id, or as an array with
 * `?ver=2`. `reachable` is this node's view: itself, and peers it has a live connection to.
 */
export function nodesJson(cluster: HttpApiClusterView, params: QueryParams): JsonValue {
  const listed = cluster.members.filter((m) => params.flag('nonvoters') || m.role === 'voter');
  const entries = listed.map((m) => ({
    id: String(m.id),
    api_addr: m.address === '' ? '' : `http://${m.address}`,
    addr: m.address,
    voter: m.role === 'voter',
    role: m.role,
    reachable: m.id === cluster.id || cluster.reachablePeers.includes(m.id),
    leader: m.id === cluster.leaderId,
  }));
  if (params.get('ver') === '2') return { nodes: entries };
  return Object.fromEntries(entries.map((entry) => [entry.id, entry]));
}

/** 200 when this node is up and (unless `?noleader`) knows a leader; 503 otherwise. */
export function readyz(cluster: HttpApiClusterView, params: QueryParams): { status: number; body: string } {
  const lines = ['[+]node ok'];
  let ready = true;
  if (!params.flag('noleader')) {
    if (cluster.leaderId !== 0) lines.push('[+]leader ok');
    else {
      lines.push('[-]leader not known: the cluster has no elected leader this node can see');
      ready = false;
    }
  }
  lines.push('[+]store ok');
  return { status: ready ? 200 : 503, body: lines.join('\n') + '\n' };
}

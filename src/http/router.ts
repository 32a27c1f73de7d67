/**
 * The rqlite-compatible HTTP API of one node: routes `/db/*`, `/nodes` and `/readyz` requests,
 * checks their parameters, and answers in rqlite's shapes. Host-neutral: the host hands it
 * requests with a streamed body and sends back what it answers.
 */
import type { HttpApiHost } from './api-host.ts';
import { FORWARDED_HEADER, backupDatabase, forwardBackup, loadDatabase } from './backup-load.ts';
import { changesResponse } from './changes-sse.ts';
import { nodesJson, readyz } from './cluster-handlers.ts';
import { sqlDump } from './sql-dump.ts';
import { runStatements, type Endpoint } from './data-handlers.ts';
import { LeaderLink, type LeaderLinkOptions } from './leader-link.ts';
import {
  HttpApiError,
  JSON_BODY_BYTES_MAX,
  QueryParams,
  header,
  parseJsonBody,
  readBody,
  type HttpApiRequest,
  type HttpApiResponse,
} from './request.ts';
import { encodeJson, type JsonValue, type ResultShape } from './rqlite-json.ts';
import { LEADER_READS, readPlan, type ReadPlan } from './read-level.ts';
import { parseStatement, parseStatements, type ParsedStatement } from './statements.ts';

/** rqlite has one database; here `?db=NAME` picks one, and this is the default. */
export const DEFAULT_DATABASE = 'main';
const DATABASE_NAME_BYTES_MAX = 256;
const JSON_HEADERS = { 'content-type': 'application/json' };
const ENDPOINTS = '/db/execute, /db/query, /db/request, /db/backup, /db/load, /db/changes, /nodes, /readyz';

export { isHttpApiPath } from './paths.ts';

export class HttpApi {
  private readonly link: LeaderLink;
  /** Connections to this very node, for reads it answers as a replica. */
  private readonly localLink: LeaderLink;

  constructor(
    private readonly host: HttpApiHost,
    linkOptions: Partial<LeaderLinkOptions> = {},
  ) {
    this.link = new LeaderLink(host, { ...linkOptions, target: 'leader' });
    this.localLink = new LeaderLink(host, { ...linkOptions, target: 'this-node' });
  }

  async answer(request: HttpApiRequest): Promise<HttpApiResponse> {
    const params = new QueryParams(request.query);
    const pretty = params.flag('pretty');
    try {
      return await this.route(request, params, pretty);
    } catch (error) {
      if (error instanceof HttpApiError) {
        return { status: error.status, headers: { ...JSON_HEADERS, ...error.headers }, body: encodeJson({ error: error.message }, pretty) };
      }
      return { status: 500, headers: JSON_HEADERS, body: encodeJson({ error: `internal error: ${(error as Error).message}` }, pretty) };
    }
  }

  close(): void {
    this.link.close();
    this.localLink.close();
  }

  private async route(request: HttpApiRequest, params: QueryParams, pretty: boolean): Promise<HttpApiResponse> {
    const { path } = request;
    if (path === '/nodes') {
      allow(request, ['GET']);
      return json(200, nodesJson(this.host.cluster(), params), pretty);
    }
    if (path === '/readyz') {
      allow(request, ['GET']);
      const answer = readyz(this.host.cluster(), params);
      return { status: answer.status, body: answer.body };
    }
    // The change feed of this node's replica, as server-sent events (changes-sse.ts).
    if (path === '/db/changes') return changesResponse(this.host.changeLog?.(), request, params, databaseName(params));
    const endpoint = path.slice('/db/'.length);
    if (!['execute', 'query', 'request', 'backup', 'load'].includes(endpoint)) {
      throw new HttpApiError(404, `no endpoint ${path}: this node serves ${ENDPOINTS}`);
    }
    const database = databaseName(params);
    // rqlite ignores `level` on /db/execute, /db/backup and /db/load: only reads are planned.
    const read = endpoint === 'query' || endpoint === 'request' ? this.readPlan(params) : LEADER_READS;
    // Reads this node answers as a replica need no leader, so nothing to redirect.
    if (!(endpoint === 'query' && read.local)) this.redirectIfAsked(request, params);
    switch (endpoint) {
      case 'backup':
        return this.backup(request, params, database);
      case 'load':
        return this.load(request, params, database, pretty);
      default:
        return this.statements(request, endpoint as Endpoint, params, database, read, pretty);
    }
  }

  private async statements(request: HttpApiRequest, endpoint: Endpoint, params: QueryParams, database: string, read: ReadPlan, pretty: boolean): Promise<HttpApiResponse> {
    const startMs = performance.now();
    const where = `/db/${endpoint}`;
    let statements: ParsedStatement[];
    if (endpoint === 'query' && request.method === 'GET') {
      const q = params.get('q');
      if (q === undefined || q.trim() === '') throw new HttpApiError(400, `${where}: give the SQL as ?q=..., or POST a JSON array of statements`);
      statements = [parseStatement(q, `${where}: q`)];
    } else {
      allow(request, endpoint === 'query' ? ['GET', 'POST'] : ['POST']);
      statements = parseStatements(parseJsonBody(await readBody(request, JSON_BODY_BYTES_MAX, where), where), where);
    }
    // /db/request may write, so it runs on the leader; its reads keep their level there.
    const local = endpoint === 'query' && read.local;
    if (endpoint === 'query' && !local) this.requireKnownDatabase(database);
    const shape: ResultShape = { associative: params.flag('associative'), timings: params.flag('timings'), blobArray: params.flag('blob_array') };
    const transaction = params.flag('transaction') || params.flag('atomic');
    const results = await runStatements(local ? this.localLink : this.link, endpoint, statements, { database, transaction, shape, read });
    const body: Record<string, JsonValue> = { results };
    if (shape.timings) body['time'] = (performance.now() - startMs) / 1000;
    return json(200, body, pretty);
  }

  private async backup(request: HttpApiRequest, params: QueryParams, database: string): Promise<HttpApiResponse> {
    allow(request, ['GET']);
    const format = params.get('fmt') ?? 'binary';
    if (format !== 'binary' && format !== 'sql') {
      throw new HttpApiError(400, `/db/backup: fmt=${format} is not a backup format: use binary (an SQLite file, the default) or sql (SQL text)`);
    }
    this.requireKnownDatabase(database, true);
    const image = await backupDatabase(this.link, this.host, database);
    if (!image) {
      const leader = this.host.cluster().leaderAddress;
      if (header(request, FORWARDED_HEADER) || leader === '') {
        throw new HttpApiError(503, 'leadership moved while the backup was being made; retry');
      }
      return forwardBackup(leader, request);
    }
    if (format === 'sql') return { status: 200, headers: { 'content-type': 'application/sql; charset=utf-8' }, body: await sqlDump(image) };
    return {
      status: 200,
      headers: {
        'content-type': 'application/octet-stream',
        'content-disposition': `attachment; filename="${database.replace(/[^A-Za-z0-9._-]/g, '_')}.sqlite"`,
      },
      body: image,
    };
  }

  private async load(request: HttpApiRequest, params: QueryParams, database: string, pretty: boolean): Promise<HttpApiResponse> {
    allow(request, ['POST']);
    const startMs = performance.now();
    const outcome = await loadDatabase(this.link, this.host, request, database, params.flag('replace'));
    const body: Record<string, JsonValue> = {
      results: [{ last_insert_id: 0, rows_affected: outcome.rows }],
      loaded: { ...outcome },
    };
    if (params.flag('timings')) body['time'] = (performance.now() - startMs) / 1000;
    return json(200, body, pretty);
  }

  private readPlan(params: QueryParams): ReadPlan {
    const cluster = this.host.cluster();
    return readPlan(params, cluster.members.find((m) => m.id === cluster.id)?.role);
  }

  /** `?redirect`: a node that does not lead answers with the leader's URL instead of forwarding. */
  private redirectIfAsked(request: HttpApiRequest, params: QueryParams): void {
    if (!params.flag('redirect')) return;
    const cluster = this.host.cluster();
    if (cluster.state === 'leader') return;
    if (cluster.leaderId === 0 || cluster.leaderAddress === '') {
      throw new HttpApiError(503, 'no leader is known to redirect to; retry when the cluster has elected one');
    }
    const location = `http://${cluster.leaderAddress}${request.path}${request.query ? `?${request.query}` : ''}`;
    throw new HttpApiError(301, `this node is not the leader; the leader is ${cluster.leaderAddress}`, { location });
  }

  /**
   * A database exists once it was opened on the leader or a write to it reached this node: the
   * leader knows every database; with `anyNode` (backup) the node asked must hold it too.
   */
  private requireKnownDatabase(database: string, anyNode = false): void {
    const cluster = this.host.cluster();
    if (cluster.state !== 'leader' && !anyNode) return;
    if (cluster.databases.some((db) => db.name === database)) return;
    throw new HttpApiError(404, `unknown database ${database}: nothing was written to it${cluster.state === 'leader' ? '' : ' that this node has applied'}; create it with /db/execute?db=${encodeURIComponent(database)}`);
  }
}

function json(status: number, value: JsonValue, pretty: boolean): HttpApiResponse {
  return { status, headers: JSON_HEADERS, body: encodeJson(value, pretty) };
}

function allow(request: HttpApiRequest, methods: string[]): void {
  if (!methods.includes(request.method)) {
    throw new HttpApiError(405, `${request.path} takes ${methods.join(' or ')}, not ${request.method}`, { allow: methods.join(', ') });
  }
}

function databaseName(params: QueryParams): string {
  const name = params.get('db') ?? DEFAULT_DATABASE;
  const bytes = new TextEncoder().encode(name).length;
  if (bytes === 0 || bytes > DATABASE_NAME_BYTES_MAX || name.includes('\u0000') || name.endsWith('-wal') || name.endsWith('-journal')) {
    throw new HttpApiError(400, `?db=${name}: a database name is 1 to ${DATABASE_NAME_BYTES_MAX} bytes, without NUL, not ending in -wal or -journal`);
  }
  return name;
}

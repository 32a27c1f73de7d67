/** HTTP requests and responses as the API sees them: host-neutral, the body a stream of chunks. */

export interface HttpApiRequest {
  readonly method: string;
  /** Path without the query string, e.g. `/db/query`. */
  readonly path: string;
  /** The query string without `?`, or ''. */
  readonly query: string;
  /** Header names lower-cased, as Node gives them. */
  readonly headers: Record<string, string | string[] | undefined>;
  /** The request body, chunk by chunk; absent for hosts that give none (then it is empty). */
  readonly body?: AsyncIterable<Uint8Array>;
}

export interface HttpApiResponse {
  status: number;
  headers?: Record<string, string>;
  body: string | Uint8Array;
  /** A streamed body (server-sent events) sent after `body`, as it comes; the host ends it when the client goes. */
  stream?: AsyncIterable<string>;
}

/** A request the API refuses as a whole: `status` and a message a person can act on. */
export class HttpApiError extends Error {
  readonly status: number;
  readonly headers: Record<string, string> | undefined;
  constructor(status: number, message: string, headers?: Record<string, string>) {
    super(message);
    this.name = 'HttpApiError';
    this.status = status;
    this.headers = headers;
  }
}

/** Bound on the JSON body of /db/execute, /db/query and /db/request. */
export const JSON_BODY_BYTES_MAX = 16 * 1024 * 1024;

export function header(request: HttpApiRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The query string's parameters; a bare `?transaction` counts as true, `=false` or `=0` as false. */
export class QueryParams {
  private readonly params: URLSearchParams;
  constructor(query: string) {
    this.params = new URLSearchParams(query);
  }
  get(name: string): string | undefined {
    return this.params.get(name) ?? undefined;
  }
  flag(name: string): boolean {
    const value = this.params.get(name);
    if (value === null) return false;
    return !['false', '0', 'no', 'off'].includes(value.toLowerCase());
  }
}

/** Reads the whole body, refusing (413) past `bytesMax` without buffering the excess. */
export async function readBody(request: HttpApiRequest, bytesMax: number, what: string): Promise<Uint8Array> {
  const declared = Number(header(request, 'content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > bytesMax) throw tooLarge(declared, bytesMax, what);
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      total += chunk.length;
      if (total > bytesMax) throw tooLarge(total, bytesMax, what);
      chunks.push(chunk);
    }
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}

export function tooLarge(bytes: number, bytesMax: number, what: string): HttpApiError {
  return new HttpApiError(413, `request body of ${bytes === Infinity ? 'unknown' : `at least ${bytes}`} bytes is larger than ${bytesMax} bytes, the limit for ${what}`);
}

/** Parses a JSON body, or refuses it with a 400 that says where it went wrong. */
export function parseJsonBody(body: Uint8Array, what: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new HttpApiError(400, `${what}: the body is not UTF-8 text`);
  }
  if (text.trim() === '') throw new HttpApiError(400, `${what}: the body is empty; send a JSON array of statements`);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new HttpApiError(400, `${what}: the body is not valid JSON (${(error as Error).message}); send a JSON array of statements`);
  }
}

import fc from 'fast-check';
import { type NodeInfo, type Request, type Response, type TypedValue, ValueType } from '../../src/protocol/index.ts';

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

export const text = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => !s.includes('\0'));
export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const u64 = fc.bigInt({ min: 0n, max: U64_MAX });
export const i64 = fc.bigInt({ min: INT64_MIN, max: INT64_MAX });
export const safeU64 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
export const bytes = fc.uint8Array({ maxLength: 40 });

export const typedValue: fc.Arbitrary<TypedValue> = fc.oneof(
  i64.map((value) => ({ type: ValueType.Integer, value }) as const),
  fc.double().map((value) => ({ type: ValueType.Float, value }) as const),
  text.map((value) => ({ type: ValueType.Text, value }) as const),
  bytes.map((value) => ({ type: ValueType.Blob, value }) as const),
  fc.constant({ type: ValueType.Null, value: null } as const),
  i64.map((value) => ({ type: ValueType.UnixTime, value }) as const),
  text.map((value) => ({ type: ValueType.Iso8601, value }) as const),
  fc.boolean().map((value) => ({ type: ValueType.Boolean, value }) as const),
);

const params = fc.array(typedValue, { maxLength: 12 });

export const request: fc.Arbitrary<Request> = fc.oneof(
  fc.constant({ type: 'leader' } as const),
  u64.map((id) => ({ type: 'client', id }) as const),
  u64.map((timestamp) => ({ type: 'heartbeat', timestamp }) as const),
  fc.record({ type: fc.constant('open' as const), name: text, flags: u32, vfs: text }),
  fc.record({ type: fc.constant('prepare' as const), db: u32, sql: text }),
  fc.record({ type: fc.constantFrom('exec' as const, 'query' as const), db: u32, stmt: u32, params }),
  fc.record({ type: fc.constant('finalize' as const), db: u32, stmt: u32 }),
  fc.record({ type: fc.constantFrom('exec_sql' as const, 'query_sql' as const), db: u32, sql: text, params }),
  fc.record({ type: fc.constant('interrupt' as const), db: u32 }),
  fc.record({ type: fc.constant('add' as const), id: u64, address: text }),
  fc.record({ type: fc.constant('assign' as const), id: u64, role: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ type: fc.constant('remove' as const), id: u64 }),
  fc.record({ type: fc.constant('dump' as const), name: text }),
  fc.record({ type: fc.constant('cluster' as const), format: fc.integer({ min: 0, max: 1 }) }),
  fc.record({ type: fc.constant('transfer' as const), id: u64 }),
  fc.record({ type: fc.constant('describe' as const), format: u32 }),
  fc.record({ type: fc.constant('weight' as const), weight: safeU64 }),
);

const nodeInfo: fc.Arbitrary<NodeInfo> = fc.record({ id: u64, address: text, role: fc.integer({ min: 0, max: 2 }) });

/** Rows with a fixed column count per response. */
const rows = fc.integer({ min: 1, max: 20 }).chain((columnCount) =>
  fc.record({
    type: fc.constant('rows' as const),
    columns: fc.array(text, { minLength: columnCount, maxLength: columnCount }),
    rows: fc.array(fc.array(typedValue, { minLength: columnCount, maxLength: columnCount }), { maxLength: 8 }),
    more: fc.boolean(),
  }),
);

export const response: fc.Arbitrary<Response> = fc.oneof(
  fc.record({ type: fc.constant('failure' as const), code: u32, message: text }),
  fc.record({ type: fc.constant('node' as const), id: u64, address: text }),
  fc.record({ type: fc.constant('welcome' as const), heartbeatTimeoutMs: safeU64 }),
  fc.record({ type: fc.constant('nodes' as const), nodes: fc.array(nodeInfo, { maxLength: 6 }) }),
  fc.record({ type: fc.constant('db' as const), id: u32 }),
  fc.record({ type: fc.constant('stmt' as const), db: u32, id: u32, paramCount: u32 }),
  fc.record({ type: fc.constant('result' as const), lastInsertId: i64, rowsAffected: u64 }),
  rows,
  fc.constant({ type: 'empty' } as const),
  fc.record({
    type: fc.constant('files' as const),
    files: fc.array(fc.record({ name: text.filter((s) => s !== ''), data: bytes }), { maxLength: 3 }),
  }),
  fc.record({ type: fc.constant('metadata' as const), failureDomain: u64, weight: u64 }),
);

// The part of rqlite-js (npm, plain JavaScript) the tests use.
declare module 'rqlite-js' {
  interface DataResult {
    getLastInsertId(): number | undefined;
    getRowsAffected(): number;
    toObject(): Record<string, unknown>;
  }
  interface DataResultError {
    toString(): string;
  }
  interface DataResults {
    hasError(): boolean;
    getFirstError(): DataResultError;
    get(index: number): DataResult;
    toArray(): Record<string, unknown>[];
  }
  interface DataOptions {
    level?: 'none' | 'weak' | 'strong' | 'linearizable';
    transaction?: boolean;
    timings?: boolean;
  }
  type Statements = string | (string | unknown[])[];
  class DataApiClient {
    constructor(hosts: string | string[], options?: Record<string, unknown>);
    execute(sql: Statements, options?: DataOptions): Promise<DataResults>;
    query(sql: Statements, options?: DataOptions): Promise<DataResults>;
  }
  const rqlite: { DataApiClient: typeof DataApiClient };
  export default rqlite;
}

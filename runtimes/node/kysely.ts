/** The Node (and Deno) entry `dqlite-wasm/kysely`: the dialect with TCP as the default transport. */
import { DqliteDialect as DqliteDialectWith, type DqliteDialectConfig as DialectConfigWith } from '../../src/orm/kysely/index.ts';
import type { NodeConnectOptions } from './client.ts';
import { dialTcp } from './tcp.ts';

export { DqliteConnection, DqliteDriver } from '../../src/orm/kysely/index.ts';
export type { DqliteDriverConfig } from '../../src/orm/kysely/index.ts';

type ClientConfig = Extract<DialectConfigWith, { client: unknown }>;

/** `{ servers, database }` (and any other client option), or `{ client }` with an open Database. */
export type DqliteDialectConfig = (NodeConnectOptions | Omit<ClientConfig, 'onCreateConnection'>) & Pick<DialectConfigWith, 'onCreateConnection'>;

export class DqliteDialect extends DqliteDialectWith {
  constructor(config: DqliteDialectConfig) {
    super('client' in config ? config : { ...config, dial: config.dial ?? dialTcp });
  }
}

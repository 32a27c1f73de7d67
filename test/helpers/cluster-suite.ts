/**
 * The set-up most cluster test files share: a cluster of real node processes for the whole file,
 * one client connected to a database with its schema made, the nodes' output printed when a
 * test fails, and everything stopped at the end.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { connect, type Database } from '../../runtimes/node/client.ts';
import { TestCluster, type ClusterOptions } from './cluster.ts';

export interface ClusterSuiteOptions extends ClusterOptions {
  database: string;
  /** Statements run once, in order, before the first test. */
  schema: string[];
  /** The client's timeout. */
  timeoutMs: number;
}

export interface StartedSuite {
  cluster: TestCluster;
  db: Database;
}

/** Registers the hooks; `started` receives the cluster and client before the first test runs. */
export function clusterWithDatabase(options: ClusterSuiteOptions, started: (suite: StartedSuite) => void): void {
  let suite: StartedSuite | undefined;
  let cluster: TestCluster | undefined;
  const { database, schema, timeoutMs, ...clusterOptions } = options;

  beforeAll(async () => {
    cluster = await TestCluster.start(clusterOptions);
    const db = await connect({ servers: cluster.addresses, database, timeoutMs });
    for (const sql of schema) await db.exec(sql);
    suite = { cluster, db };
    started(suite);
  }, 120_000);

  afterEach((context) => {
    if (context.task.result?.state === 'fail' && cluster) console.log(cluster.dumpOutput());
  });

  afterAll(async () => {
    await suite?.db.close();
    await cluster?.destroy();
  });
}

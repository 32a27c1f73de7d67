/**
 * Run by deno-client.test.ts inside Deno: the client from its TypeScript sources, over node:net
 * through Deno's Node compatibility. Prints one JSON line with what it saw.
 */
import { connect, connectCluster } from '../../runtimes/node/client.ts';

declare const Deno: { args: string[] };

const servers = Deno.args[0]!.split(',');
const db = await connect({ servers, database: 'deno', timeoutMs: 20_000 });
await db.exec('CREATE TABLE IF NOT EXISTS t (x, d DATETIME, ok BOOLEAN, b BLOB)');
await db.exec('INSERT INTO t VALUES (?, ?, ?, ?)', [2n ** 62n, new Date(0), true, new Uint8Array([1, 2, 3])]);
const { rows } = await db.query('SELECT * FROM t');
const cluster = await connectCluster({ servers });
const members = await cluster.members();
await db.close();
await cluster.close();
const row = rows[0]!;
console.log(
  JSON.stringify({
    x: String(row.x),
    d: (row.d as Date).toISOString(),
    ok: row.ok,
    b: [...(row.b as Uint8Array)],
    voters: members.filter((m) => m.role === 'voter').length,
  }),
);

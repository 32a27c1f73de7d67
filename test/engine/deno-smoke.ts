// Run by deno.test.ts under Deno: the engine with its default loader, leader → follower, checkpoint.
import { Engine, type Database, type SqlValue } from '../../wasm/index.ts';

function rows(db: Database, sql: string): SqlValue[][] {
  const statement = db.prepare(sql)!;
  const result: SqlValue[][] = [];
  while (statement.step()) result.push(statement.row());
  statement.finalize();
  return result;
}

const leader = (await Engine.create()).open('deno');
const follower = (await Engine.create()).open('deno');
rows(leader, 'CREATE TABLE t(x)');
rows(leader, "INSERT INTO t VALUES('from deno'), (randomblob(10000))");
const captured = leader.takeCaptured();
for (const transaction of captured) follower.apply(transaction.payload);
leader.confirm(captured.length);
leader.checkpoint();
follower.checkpoint();
const a = leader.files();
const b = follower.files();
const same = (x: Uint8Array, y: Uint8Array) => x.length === y.length && x.every((v, i) => v === y[i]);
console.log(JSON.stringify({ rows: rows(follower, "SELECT x FROM t WHERE typeof(x) = 'text'"), identical: same(a.main, b.main) && same(a.wal, b.wal) }));

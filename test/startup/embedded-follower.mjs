// Joins a running cluster with `startNode` in this process, writes through the handle while a
// follower, reads its own write, and prints what it saw as one JSON line. The module comes from
// DQLITE_WASM_MODULE (the sources in a checkout) or the installed package.
const { startNode } = await import(process.env.DQLITE_WASM_MODULE ?? 'dqlite-wasm');
const [dir, join, clusterKey] = process.argv.slice(2);
const node = await startNode({ dir, join: join.split(','), clusterKey });
const fatal = [];
node.addEventListener('fatal', (event) => fatal.push(event.error.message));
const db = await node.database('embedded');
await db.exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)');
const status = node.status();
const written = await db.exec('INSERT INTO notes (body) VALUES (?)', [`from ${node.address}`]);
const read = await db.query('SELECT body FROM notes WHERE id = ?', [written.lastInsertId]);
const inTransaction = await db.transaction(async (tx) => {
  await tx.exec('INSERT INTO notes (body) VALUES (?)', ['in a transaction']);
  return Number((await tx.query("SELECT count(*) AS n FROM notes")).rows[0].n);
});
await node.close();
await node.closed;
const role = status.members.find((m) => m.id === status.id)?.role;
console.log(JSON.stringify({ address: node.address, id: status.id, state: status.state, leaderId: status.leaderId, role, rows: read.rows, inTransaction, fatal }));

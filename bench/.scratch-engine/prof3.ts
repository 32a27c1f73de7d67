import { Engine } from '../../wasm/index.ts';
const le = await Engine.create(), fe = await Engine.create();
const blob = new Uint8Array(1024).fill(7);
for (let r = 0; r < 4; r++) {
  const L = le.open('b' + r), F = fe.open('b' + r);
  const c = L.prepare('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')!; c.step(); c.finalize();
  for (const t of L.takeCaptured()) F.apply(t.payload); L.confirm();
  const ins = L.prepare('INSERT INTO t(v) VALUES(?)')!;
  const vals = [blob];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < 10000; i++) {
    ins.bind(vals); ins.step();
    const cap = L.takeCaptured();
    for (const t of cap) F.apply(t.payload);
    L.confirm(cap.length);
    if (L.walFrameCount() >= 1000) { ins.reset(); L.checkpoint(); F.checkpoint(); }
  }
  const u = process.cpuUsage(cpu0);
  console.log('cpu ms', ((u.user + u.system) / 1000).toFixed(0));
  L.close(); F.close();
}

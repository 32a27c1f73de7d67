import { Engine } from '/work/main/wasm/index.ts';
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
const le = await Engine.create(), fe = await Engine.create();
const blob = new Uint8Array(1024).fill(7);
async function plain() {
  const s = await sqlite3InitModule(); const db = new (s.oo1.DB as any)(':memory:');
  db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)'); const st = db.prepare('INSERT INTO t(v) VALUES(?)');
  const t0 = performance.now(); for (let i = 0; i < 10000; i++) { st.bind([blob]); st.stepReset(); } const ms = performance.now() - t0; st.finalize(); db.close(); return ms;
}
for (let r = 0; r < 4; r++) {
  const L = le.open('b' + r), F = fe.open('b' + r);
  const c = L.prepare('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')!; c.step(); c.finalize();
  for (const t of L.takeCaptured()) F.apply(t.payload); L.confirm();
  const ins = L.prepare('INSERT INTO t(v) VALUES(?)')!;
  let tStep = 0, tCap = 0, tApply = 0, tCk = 0;
  const vals = [blob];
  const t0 = performance.now();
  for (let i = 0; i < 10000; i++) {
    const a = performance.now();
    ins.bind(vals); ins.step();
    const b = performance.now();
    const cap = L.takeCaptured();
    const c2 = performance.now();
    for (const t of cap) F.apply(t.payload);
    L.confirm(cap.length);
    const d = performance.now();
    tStep += b - a; tCap += c2 - b; tApply += d - c2;
    if (L.walFrameCount() >= 1000) { ins.reset(); L.checkpoint(); F.checkpoint(); tCk += performance.now() - d; }
  }
  const total = performance.now() - t0;
  // step only, no capture (no checkpoint needed: discard)
  const L2 = le.open('s' + r);
  const c3 = L2.prepare('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')!; c3.step(); c3.finalize();
  const ins2 = L2.prepare('INSERT INTO t(v) VALUES(?)')!;
  const t1 = performance.now();
  for (let i = 0; i < 10000; i++) { ins2.bind(vals); ins2.step(); if (i % 1000 === 999) { L2.takeCaptured(); L2.confirm(L2.pendingCount()); ins2.reset(); L2.checkpoint(); } }
  const onlyStep = performance.now() - t1;
  const p = await plain();
  console.log('total', total.toFixed(0), 'step', tStep.toFixed(0), 'cap', tCap.toFixed(0), 'apply', tApply.toFixed(0), 'ckpt', tCk.toFixed(0), '| engine no-follower', onlyStep.toFixed(0), '| plain', p.toFixed(0));
  L.close(); F.close(); L2.close();
}

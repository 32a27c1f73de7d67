import init from '@sqlite.org/sqlite-wasm';
const a = await init(); const b = await init();
console.log('same module object', a === b, 'same memory', a.wasm.heap8u().buffer === b.wasm.heap8u().buffer);

const [command] = process.argv.slice(2);
console.error(`dqlite-wasm: command ${command ?? '(none)'} is not available yet`);
process.exitCode = 2;

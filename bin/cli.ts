/**
 * dqlite-wasm command line on Node.js (`dqlite-wasm help` lists the commands; the same on Deno,
 * `runtimes/deno/main.ts`). The commands are `bin/commands.ts`; this file only picks the host.
 */
import { startNodeProcess } from '../runtimes/node/node-process.ts';
import { main } from './commands.ts';

await main(process.argv.slice(2), {
  name: 'node',
  webSocketOnly: false,
  startMember: ({ webSocketOnly: _ignored, ...options }) => startNodeProcess(options),
});

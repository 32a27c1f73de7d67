/**
 * dqlite-wasm command line on Deno: the same commands, flags and help as on Node
 * (`bin/commands.ts`), with Deno's files and lock, and `--websocket-only` for HTTP-only hosts.
 *   deno run -A runtimes/deno/main.ts start --address HOST:PORT --dir DIR [--join ADDR,...] ...
 */
import { main } from '../../bin/commands.ts';
import { startDenoNode } from './deno-node.ts';

await main(Deno.args, { name: 'deno', webSocketOnly: true, startMember: (options) => startDenoNode(options) });

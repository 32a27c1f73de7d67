// Lets plain `node` (20+) run the project's TypeScript scripts (sim, bench, CLI in a checkout)
// without a build step: esbuild strips the types module by module.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);

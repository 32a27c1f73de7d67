/** The `dqlite-wasm shell`, host-neutral: input lines in, results out (hosts wire a terminal to it). */
export { CONTINUATION_PROMPT, PROMPT, Shell } from './shell.ts';
export type { ShellHost, ShellOptions } from './shell.ts';
export { OUTPUT_FORMATS, formatResult, parseOutputFormat } from './output-format.ts';
export type { OutputFormat, ResultTable } from './output-format.ts';
export { StatementSplitter } from './statement-splitter.ts';
export { adviseOn, codeName } from './error-advice.ts';
export type { ErrorAdvice } from './error-advice.ts';
export { closestName } from './closest-name.ts';

/** Builds the demo's static site into `outDir` (default dist/demo); resolves to the directory. */
export function buildDemo(outDir?: string, options?: { minify?: boolean }): Promise<string>;

/**
 * What `dqlite-wasm cluster` prints for a new user: commands that run as printed when pasted
 * into a POSIX shell. The same list feeds the banner, the README check and the test that runs
 * each line, so the three cannot drift apart.
 */

export interface StartHint {
  label: string;
  command: string;
}

export function startHints(addresses: readonly string[], database = 'demo'): StartHint[] {
  const first = addresses[0] ?? '127.0.0.1:9001';
  // The script is one single-quoted shell word, so it uses only double quotes inside: nothing
  // in it is special to the shell, and it pastes as printed.
  const script =
    `import("dqlite-wasm/client").then(async ({ connect }) => { ` +
    `const db = await connect({ servers: ${JSON.stringify(addresses)}, database: ${JSON.stringify(database)} }); ` +
    `console.log((await db.query("SELECT 1 AS one")).rows); await db.close(); })`;
  if (script.includes("'")) throw new Error('the client hint must not contain a single quote');
  return [
    { label: 'dqlite shell', command: `dqlite -s ${addresses.join(',')} ${database}` },
    { label: 'our client', command: `node -e '${script}'` },
    { label: 'health', command: `curl http://${first}/health` },
    { label: 'status', command: `curl http://${first}/status` },
    { label: 'metrics', command: `curl http://${first}/metrics` },
  ];
}

export function bannerText(addresses: readonly string[], dir: string): string {
  const hints = startHints(addresses);
  const width = Math.max(...hints.map((h) => h.label.length)) + 2;
  const lines = hints.map((h) => `  ${(h.label + ':').padEnd(width)} ${h.command}`);
  return [
    '',
    `dqlite-wasm: ${addresses.length}-node cluster starting, data in ${dir}`,
    `  ${'nodes:'.padEnd(width)} ${addresses.join('  ')}`,
    ...lines,
    'Press Ctrl-C to stop all nodes.',
    '',
  ].join('\n');
}

/**
 * The interactive `dqlite-wasm shell` in a real terminal (tmux) against a real 3-node cluster:
 * prompts, multi-line statements, history, Ctrl-C, dot commands, errors and Ctrl-D.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TestCluster } from '../helpers/cluster.ts';
import { ROOT } from './run-shell.ts';
import { TmuxTerminal } from './tmux.ts';

let cluster: TestCluster;
let terminal: TmuxTerminal | undefined;
let scratch: string;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3 });
  scratch = mkdtempSync(join(tmpdir(), 'dqlite-wasm-shell-tty-'));
}, 120_000);

afterAll(async () => {
  await terminal?.stop();
  await cluster?.destroy();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function count(screen: string, pattern: RegExp): number {
  return screen.split('\n').filter((line) => pattern.test(line)).length;
}

describe('dqlite-wasm shell in a terminal', () => {
  test('a session: statements over several lines, history, Ctrl-C, dot commands, errors, Ctrl-D', async () => {
    const history = join(scratch, 'history');
    const command = `${JSON.stringify(process.execPath)} bin/dqlite-wasm shell -s ${cluster.addresses.join(',')} notes; echo "shell exited with $?"; sleep 60`;
    terminal = await TmuxTerminal.start(command, { cwd: ROOT, env: { DQLITE_WASM_HISTORY: history } });
    const t = terminal;
    await t.waitFor('the prompt', (s) => s.endsWith('dqlite>'));

    await t.line('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);');
    await t.waitFor('the next prompt', (s) => count(s, /^dqlite>/) === 2);
    await t.line("INSERT INTO notes (body) VALUES ('it''s; here'), ('second');");
    await t.waitFor('the next prompt', (s) => count(s, /^dqlite>/) === 3);

    // One statement over three lines: the continuation prompt until the closing ';'.
    await t.line('SELECT id,');
    await t.waitFor('the continuation prompt', (s) => s.endsWith('...>'));
    await t.line('       body');
    await t.line('FROM notes ORDER BY id;');
    let screen = await t.waitFor('the result table', (s) => s.includes('(2 rows)'));
    expect(screen).toMatch(/id \| body\n---\+-----------\n {1}1 \| it's; here\n {1}2 \| second\n\(2 rows\)/);

    // History: Up brings back the last line typed; Enter runs it again.
    await t.line('.tables');
    await t.waitFor('.tables', (s) => count(s, /^notes$/) === 1);
    await t.press('Up');
    await t.waitFor('the recalled line', (s) => s.endsWith('dqlite> .tables'));
    await t.press('Enter');
    await t.waitFor('.tables again', (s) => count(s, /^notes$/) === 2);

    // Ctrl-C drops a half-typed statement; what follows runs on its own.
    await t.line('SELECT nonsense FROM');
    await t.waitFor('the continuation prompt', (s) => s.endsWith('...>'));
    await t.press('C-c');
    await t.waitFor('a fresh prompt', (s) => s.endsWith('dqlite>'));
    await t.line('.timer on');
    await t.line('SELECT 6 * 7 AS answer;');
    screen = await t.waitFor('the answer', (s) => /answer\n-+\n +42\n\(1 row\)\nRun Time: \d+\.\d{3} s/.test(s));
    expect(screen).not.toMatch(/no such column: nonsense/);

    // Errors: the message with its dqlite code, and what to do.
    await t.line('INSERT INTO missing VALUES (1);');
    screen = await t.waitFor('the error', (s) => s.includes('no such table: missing'));
    expect(screen).toMatch(/Error: no such table: missing \(dqlite code 1 SQLITE_ERROR\)\n {2}check the statement/);
    await t.line('.leader');
    const leader = cluster.nodes[await cluster.waitForLeader()]!.address;
    await t.waitFor('the leader', (s) => s.split('\n').includes(leader));

    await t.press('C-d');
    await t.waitFor('the shell to exit', (s) => s.includes('shell exited with 0'));
    const saved = readFileSync(history, 'utf8').split('\n');
    expect(saved).toEqual(expect.arrayContaining(['.tables', 'SELECT 6 * 7 AS answer;', 'FROM notes ORDER BY id;']));
  });

  test('history from an earlier session is there after a restart', async () => {
    await terminal?.stop();
    const history = join(scratch, 'history');
    const command = `${JSON.stringify(process.execPath)} bin/dqlite-wasm shell -s ${cluster.addresses[1]} notes; echo "shell exited with $?"; sleep 60`;
    terminal = await TmuxTerminal.start(command, { cwd: ROOT, env: { DQLITE_WASM_HISTORY: history } });
    const t = terminal;
    await t.waitFor('the prompt', (s) => s.endsWith('dqlite>'));
    await t.press('Up');
    await t.waitFor('the last line of the previous session', (s) => s.endsWith('dqlite> .leader'));
    await t.press('C-u');
    await t.line("SELECT body FROM notes WHERE body LIKE 'it%';");
    const screen = await t.waitFor('the row', (s) => s.includes('(1 row)'));
    expect(screen).toMatch(/body\n-+\nit's; here\n\(1 row\)/);
    await t.line('.exit');
    await t.waitFor('the shell to exit', (s) => s.includes('shell exited with 0'));
  });
});

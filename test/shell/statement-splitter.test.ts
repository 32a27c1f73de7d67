import { describe, expect, test } from 'vitest';
import { StatementSplitter } from '../../src/shell/index.ts';

function split(...lines: string[]): { statements: string[]; pending: boolean; rest: string | undefined } {
  const splitter = new StatementSplitter();
  const statements = lines.flatMap((line) => splitter.push(line + '\n'));
  const pending = splitter.pending;
  return { statements, pending, rest: splitter.flush() };
}

describe('where a statement ends', () => {
  test('at a ; outside literals, identifiers and comments', () => {
    expect(split("SELECT 'a;b', \"c;d\", `e;f`, [g;h] FROM t; SELECT 2;").statements).toEqual([
      "SELECT 'a;b', \"c;d\", `e;f`, [g;h] FROM t;",
      'SELECT 2;',
    ]);
    expect(split("SELECT 'it''s; one' -- a; comment", '/* still; */ ;').statements).toEqual([
      "SELECT 'it''s; one' -- a; comment\n/* still; */ ;",
    ]);
  });

  test('not inside an open literal or comment, across lines', () => {
    const open = split("INSERT INTO t VALUES ('line one;", "line two');");
    expect(open.statements).toEqual(["INSERT INTO t VALUES ('line one;\nline two');"]);
    const comment = split('SELECT 1 /* a;', 'b */');
    expect(comment).toMatchObject({ statements: [], pending: true, rest: 'SELECT 1 /* a;\nb */' });
  });

  test('a trigger ends at END;, not at the ; of its body', () => {
    const trigger = split('CREATE TRIGGER bump AFTER INSERT ON t BEGIN', '  UPDATE c SET n = n + 1;', '  DELETE FROM q;', 'END;', 'SELECT 1;');
    expect(trigger.statements).toEqual(['CREATE TRIGGER bump AFTER INSERT ON t BEGIN\n  UPDATE c SET n = n + 1;\n  DELETE FROM q;\nEND;', 'SELECT 1;']);
  });

  test('blank lines, lone semicolons and comments are not statements', () => {
    expect(split('', ';', '-- nothing', '   ')).toEqual({ statements: [], pending: false, rest: undefined });
  });

  test('text after the last ; waits, and flush hands it over', () => {
    expect(split('SELECT 1; SELECT', '2')).toEqual({ statements: ['SELECT 1;'], pending: true, rest: 'SELECT\n2' });
  });
});

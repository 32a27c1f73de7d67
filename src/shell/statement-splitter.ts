/**
 * Cuts SQL text into complete statements: a statement ends at a `;` outside string literals,
 * quoted identifiers and comments, except inside the BEGIN ... END body of CREATE TRIGGER.
 * Text arrives line by line; whatever is left after the last `;` waits for more.
 */
export class StatementSplitter {
  private buffer = '';
  /** Where scanning resumes, and the lexical state there. */
  private scanned = 0;
  private state: 'code' | 'single' | 'double' | 'backtick' | 'bracket' | 'line-comment' | 'block-comment' = 'code';
  /** Length of the buffer when the current statement started. */
  private start = 0;

  /** Adds text and returns every statement it completed (each with its `;`, trimmed). */
  push(text: string): string[] {
    this.buffer += text;
    const statements: string[] = [];
    const s = this.buffer;
    let i = this.scanned;
    while (i < s.length) {
      const c = s[i]!;
      const next = s[i + 1];
      switch (this.state) {
        case 'code':
          if (c === "'") this.state = 'single';
          else if (c === '"') this.state = 'double';
          else if (c === '`') this.state = 'backtick';
          else if (c === '[') this.state = 'bracket';
          else if (c === '-' && next === '-') {
            this.state = 'line-comment';
            i++;
          } else if (c === '/' && next === '*') {
            this.state = 'block-comment';
            i++;
          } else if (c === ';') {
            const statement = s.slice(this.start, i + 1);
            if (!insideTriggerBody(statement)) {
              if (hasCode(statement)) statements.push(statement.trim());
              this.start = i + 1;
            }
          }
          break;
        case 'single':
          if (c === "'") this.state = 'code';
          break;
        case 'double':
          if (c === '"') this.state = 'code';
          break;
        case 'backtick':
          if (c === '`') this.state = 'code';
          break;
        case 'bracket':
          if (c === ']') this.state = 'code';
          break;
        case 'line-comment':
          if (c === '\n') this.state = 'code';
          break;
        case 'block-comment':
          if (c === '*' && next === '/') {
            this.state = 'code';
            i++;
          }
          break;
      }
      i++;
    }
    // Doubled quotes ('it''s') close and reopen the literal, which the scan above handles.
    this.buffer = s.slice(this.start);
    this.scanned = i - this.start;
    this.start = 0;
    return statements;
  }

  /** Whether an unfinished statement is waiting (something other than blanks and comments). */
  get pending(): boolean {
    return hasCode(this.buffer) || (this.state !== 'code' && this.state !== 'line-comment');
  }

  /** Takes the unfinished rest, if it holds any code, and starts afresh. */
  flush(): string | undefined {
    const rest = this.buffer.trim();
    this.reset();
    return hasCode(rest) ? rest : undefined;
  }

  reset(): void {
    this.buffer = '';
    this.scanned = 0;
    this.start = 0;
    this.state = 'code';
  }
}

/** Code with comments and literals blanked out, for keyword checks. */
function codeOnly(sql: string): string {
  return sql.replace(/--[^\n]*|\/\*[\s\S]*?(\*\/|$)|'(?:[^']|'')*'?|"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?/g, ' ');
}

function hasCode(sql: string): boolean {
  return codeOnly(sql).replace(/;/g, ' ').trim() !== '';
}

/** A CREATE TRIGGER whose body has begun but not reached END. */
function insideTriggerBody(statement: string): boolean {
  const code = codeOnly(statement).toUpperCase();
  if (!/^\s*CREATE\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER\b/.test(code)) return false;
  if (!/\bBEGIN\b/.test(code)) return false;
  return !/\bEND\s*;\s*$/.test(code);
}

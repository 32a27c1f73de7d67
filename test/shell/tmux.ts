/**
 * A program in a real terminal: tmux (Debian's, installed by scripts/ensure-deps.sh) on its own
 * server socket, typed into with send-keys and read with capture-pane.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class TmuxTerminal {
  private socketPath = '';

  private constructor(private readonly socket: string) {}

  /** Starts `command` (a shell command line) in a detached session of `columns` × `rows`. */
  static async start(command: string, options: { env?: Record<string, string>; cwd?: string; columns?: number; rows?: number } = {}): Promise<TmuxTerminal> {
    const socket = `dqlite-wasm-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const terminal = new TmuxTerminal(socket);
    const env = Object.entries(options.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    await terminal.tmux(
      'new-session',
      '-d',
      '-s',
      'main',
      '-x',
      String(options.columns ?? 120),
      '-y',
      String(options.rows ?? 40),
      ...(options.cwd ? ['-c', options.cwd] : []),
      ...env,
      command,
    );
    await terminal.tmux('set-option', '-g', 'history-limit', '5000');
    terminal.socketPath = (await terminal.tmux('display-message', '-p', '#{socket_path}')).trim();
    return terminal;
  }

  private async tmux(...args: string[]): Promise<string> {
    const { stdout } = await run('tmux', ['-L', this.socket, '-f', '/dev/null', ...args]);
    return stdout;
  }

  /** Types `text` literally (no key names). */
  async type(text: string): Promise<void> {
    // tmux reads an argument's trailing ';' as its command separator unless escaped.
    await this.tmux('send-keys', '-t', 'main', '-l', text.replace(/;$/, '\\;'));
  }

  /** Presses keys by tmux name: Enter, Up, C-c, C-d, ... */
  async press(...keys: string[]): Promise<void> {
    await this.tmux('send-keys', '-t', 'main', ...keys);
  }

  /** Types a line and presses Enter. */
  async line(text: string): Promise<void> {
    await this.type(text);
    await this.press('Enter');
  }

  /** Everything the pane shows, scrollback included, trailing blanks trimmed. */
  async screen(): Promise<string> {
    const text = await this.tmux('capture-pane', '-p', '-J', '-S', '-', '-t', 'main');
    return text.replace(/\s+$/, '');
  }

  /** Waits until `test` holds for the screen; fails with the screen when it does not in time. */
  async waitFor(what: string, test: (screen: string) => boolean, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let screen = '';
    while (Date.now() < deadline) {
      screen = await this.screen();
      if (test(screen)) return screen;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; the screen:\n${screen}`);
  }

  /** Ends the tmux server of this terminal and whatever runs in it. */
  async stop(): Promise<void> {
    await this.tmux('kill-server').catch(() => undefined);
    // tmux leaves its socket file behind.
    if (this.socketPath) rmSync(this.socketPath, { force: true });
  }
}

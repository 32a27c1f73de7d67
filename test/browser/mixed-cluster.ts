/**
 * One cluster of real members on loopback: Node processes, Deno processes and Chromium pages
 * (each a node in a Web Worker with OPFS). Start, kill (-9, or closing the page), revive, and
 * read status and database files of each. Used by the browser tests and bench/mixed-cluster.ts.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { connectCluster, dialOverWebSocket } from '../../runtimes/node/client.ts';
import { dialWebSocket } from '../../runtimes/node/websocket.ts';
import { freePort, waitFor, type NodeStatusView } from '../helpers/cluster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export type MemberKind = 'node' | 'deno' | 'browser';

export interface Member {
  index: number;
  kind: MemberKind;
  /** host:port for Node and Deno members; '' for a browser member. */
  address: string;
  dir: string;
  process: ChildProcess | undefined;
  page: Page | undefined;
  id: number;
  /** Browser members: where the node keeps its state. */
  storage: 'opfs' | 'indexeddb';
  /** Extra command-line flags for Node and Deno members (e.g. --websocket-only). */
  args: string[];
  output: string[];
}

export interface MixedClusterOptions {
  tickMs?: number;
  commitTimeoutMs?: number;
  /** How long a browser leader keeps leadership before handing it to a listening voter. */
  browserHandOverMs?: number;
  /** More options for the browser members' nodes (BrowserNodeOptions: limits, snapshot thresholds). */
  browserNodeOptions?: Record<string, unknown>;
  verbose?: boolean;
}

export function findDeno(): string | undefined {
  for (const candidate of [`${ROOT}node_modules/.bin/deno`, `${ROOT}node_modules/@deno/linux-x64-glibc/deno`]) {
    if (existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v deno'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
};

const INDEX_HTML = `<!doctype html><meta charset="utf-8"><title>dqlite-wasm test node</title>
<script type="module">
import { startWorkerNode } from './page.js';
window.startWorkerNode = startWorkerNode;
window.harnessReady = true;
</script>`;

/** Serves the browser bundles (built by scripts/build-browser.mjs into `dir`) on loopback. */
async function serveBundles(dir: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]!;
    if (path === '/' || path === '/index.html') {
      response.writeHead(200, { 'content-type': MIME['.html']! }).end(INDEX_HTML);
      return;
    }
    const file = join(dir, path.replace(/^\/+/, ''));
    if (!file.startsWith(dir) || !existsSync(file)) {
      response.writeHead(404).end('not found');
      return;
    }
    response.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${port}` };
}

export class MixedCluster {
  readonly members: Member[] = [];
  readonly root: string;
  readonly clusterKey = 'mixed-key-' + Math.random().toString(36).slice(2);
  private browser: Browser | undefined;
  private context: BrowserContext | undefined;
  private server: Server | undefined;
  private origin = '';
  private readonly deno = findDeno();

  private constructor(private readonly options: MixedClusterOptions) {
    this.root = mkdtempSync(join(tmpdir(), 'dqlite-wasm-mixed-'));
  }

  /** The first member must listen (node or deno): it bootstraps the cluster. */
  static async start(kinds: MemberKind[], options: MixedClusterOptions = {}): Promise<MixedCluster> {
    const cluster = new MixedCluster(options);
    try {
      for (const [index, kind] of kinds.entries()) {
        cluster.members.push({
          index,
          kind,
          address: kind === 'browser' ? '' : `127.0.0.1:${await freePort()}`,
          dir: join(cluster.root, `member${index + 1}-${kind}`),
          process: undefined,
          page: undefined,
          id: 0,
          storage: 'opfs',
          args: [],
          output: [],
        });
      }
      if (kinds.includes('browser')) await cluster.launchBrowser();
      await cluster.revive(0);
      await cluster.waitForLeader();
      for (let i = 1; i < kinds.length; i++) {
        await cluster.revive(i);
        const expected = Math.min(i + 1, 3);
        await waitFor(`${expected} voters`, 60_000, async () => {
          const status = await cluster.status(0);
          return status.members.filter((m) => m.role === 'voter').length >= expected ? true : undefined;
        });
      }
      for (const member of cluster.members) {
        await waitFor(`member ${member.index + 1} to know the leader`, 30_000, async () => ((await cluster.status(member.index)).leaderId !== 0 ? true : undefined));
        member.id = (await cluster.status(member.index)).id;
      }
    } catch (error) {
      const output = cluster.dumpOutput();
      await cluster.destroy();
      throw new Error(`${(error as Error).message}\n--- member output ---\n${output}`);
    }
    return cluster;
  }

  /** Addresses of the listening members, for clients. */
  get listeningAddresses(): string[] {
    return this.members.filter((m) => m.kind !== 'browser').map((m) => m.address);
  }

  private async launchBrowser(): Promise<void> {
    const bundleDir = join(this.root, 'bundle');
    execFileSync(process.execPath, ['scripts/build-browser.mjs', '--outdir', bundleDir], { cwd: ROOT, stdio: 'pipe' });
    const served = await serveBundles(bundleDir);
    this.server = served.server;
    this.origin = served.origin;
    const { chromium } = await import('playwright-core');
    this.browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    // One context for the whole cluster: OPFS survives closing and reopening a page in it.
    this.context = await this.browser.newContext();
  }

  private record(member: Member, text: string): void {
    member.output.push(text);
    if (member.output.length > 2000) member.output.splice(0, 1000);
    if (this.options.verbose) process.stderr.write(`[m${member.index + 1} ${member.kind}] ${text}`);
  }

  private joinList(index: number): string[] {
    return this.members.filter((m) => m.index !== index && m.kind !== 'browser').map((m) => m.address);
  }

  /** Starts a member that is not running (its first start joins; later ones recover from storage). */
  async revive(index: number): Promise<void> {
    const member = this.members[index]!;
    if (member.kind === 'browser') {
      await this.startBrowserMember(member);
      return;
    }
    const tuning = [
      ...(this.options.tickMs ? ['--tick-ms', String(this.options.tickMs)] : []),
      ...(this.options.commitTimeoutMs ? ['--commit-timeout-ms', String(this.options.commitTimeoutMs)] : []),
    ];
    const join = index === 0 ? [] : ['--join', this.joinList(index).join(',')];
    const common = ['start', '--address', member.address, '--dir', member.dir, '--cluster-key', this.clusterKey, ...join, ...tuning, ...member.args];
    let child: ChildProcess;
    if (member.kind === 'node') {
      child = spawn(process.execPath, ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts', ...common], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    } else {
      if (!this.deno) throw new Error('no deno binary: run npm install (the npm package "deno" provides it)');
      child = spawn(this.deno, ['run', '-A', '--no-lock', 'runtimes/deno/main.ts', ...common], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    }
    child.stdout!.on('data', (chunk: Buffer) => this.record(member, chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => this.record(member, chunk.toString()));
    member.process = child;
    await waitFor(`member ${index + 1} (${member.kind}) to serve /status`, 60_000, async () => ((await this.status(index)) ? true : undefined));
  }

  private async startBrowserMember(member: Member): Promise<void> {
    const page = await this.context!.newPage();
    page.on('console', (message) => this.record(member, `${message.text()}\n`));
    page.on('pageerror', (error) => this.record(member, `page error: ${error.message}\n`));
    await page.goto(`${this.origin}/`);
    await page.waitForFunction(() => (window as unknown as { harnessReady?: boolean }).harnessReady === true);
    const options = {
      name: `member${member.index + 1}`,
      join: this.joinList(member.index),
      clusterKey: this.clusterKey,
      storage: member.storage,
      ...(this.options.tickMs && { tickMs: this.options.tickMs }),
      ...(this.options.commitTimeoutMs && { commitTimeoutMs: this.options.commitTimeoutMs }),
      ...(this.options.browserHandOverMs !== undefined && { leaderWithoutAddressHandOverMs: this.options.browserHandOverMs }),
      ...this.options.browserNodeOptions,
    };
    // The first start after a page close may find the previous worker's Web Lock not yet released.
    await waitFor(`browser member ${member.index + 1} to start`, 60_000, async () =>
      page.evaluate(async (opts) => {
        const w = window as unknown as { startWorkerNode: (url: string, o: unknown, log: (l: string) => void) => Promise<unknown>; node?: unknown };
        w.node = await w.startWorkerNode('./worker.js', opts, (line) => console.log(line));
        return true;
      }, options),
    );
    member.page = page;
  }

  /** Adds and starts one more member; it joins with the role the cluster lacks most. */
  async add(kind: MemberKind, options: { storage?: 'opfs' | 'indexeddb'; args?: string[] } = {}): Promise<Member> {
    if (kind === 'browser' && !this.context) await this.launchBrowser();
    const member: Member = {
      index: this.members.length,
      kind,
      address: kind === 'browser' ? '' : `127.0.0.1:${await freePort()}`,
      dir: join(this.root, `member${this.members.length + 1}-${kind}`),
      process: undefined,
      page: undefined,
      id: 0,
      storage: options.storage ?? 'opfs',
      args: options.args ?? [],
      output: [],
    };
    this.members.push(member);
    await this.revive(member.index);
    await waitFor(`member ${member.index + 1} to know the leader`, 30_000, async () => ((await this.status(member.index)).leaderId !== 0 ? true : undefined));
    member.id = (await this.status(member.index)).id;
    return member;
  }

  isRunning(index: number): boolean {
    const member = this.members[index]!;
    if (member.kind === 'browser') return member.page !== undefined;
    return !!member.process && member.process.exitCode === null && member.process.signalCode === null;
  }

  /** kill -9 a process member; close a browser member's page (its worker dies with it). */
  async kill(index: number): Promise<void> {
    const member = this.members[index]!;
    if (member.kind === 'browser') {
      const page = member.page;
      member.page = undefined;
      await page?.close();
      return;
    }
    const child = member.process;
    member.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async status(index: number): Promise<NodeStatusView> {
    const member = this.members[index]!;
    if (member.kind === 'browser') {
      if (!member.page) throw new Error(`browser member ${index + 1} is not running`);
      return member.page.evaluate(async () => {
        const w = window as unknown as { node: { api: { status(): Promise<unknown> } } };
        return (await w.node.api.status()) as never;
      });
    }
    const response = await fetch(`http://${member.address}/status`, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) throw new Error(`member ${index + 1} answered ${response.status}`);
    return (await response.json()) as NodeStatusView;
  }

  /** What a browser member's worker said when it started: id, storage kind, fresh or recovered. */
  async browserInfo(index: number): Promise<{ id: number; storage: string; fresh: boolean }> {
    const page = this.members[index]!.page;
    if (!page) throw new Error(`browser member ${index + 1} is not running`);
    return page.evaluate(() => (window as unknown as { node: { info: { id: number; storage: string; fresh: boolean } } }).node.info);
  }

  /** The database's main file and WAL on one member, byte for byte. */
  async files(index: number, database: string): Promise<{ main: Uint8Array; wal: Uint8Array }> {
    const member = this.members[index]!;
    if (member.kind === 'browser') {
      const encoded = await member.page!.evaluate(async (name) => {
        const w = window as unknown as { node: { api: { files(n: string): Promise<{ main: Uint8Array; wal: Uint8Array } | undefined> } } };
        const files = await w.node.api.files(name);
        if (!files) return undefined;
        const base64 = (bytes: Uint8Array): string => {
          let text = '';
          for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
          return btoa(text);
        };
        return { main: base64(files.main), wal: base64(files.wal) };
      }, database);
      if (!encoded) throw new Error(`browser member ${index + 1} has no database ${database}`);
      return { main: new Uint8Array(Buffer.from(encoded.main, 'base64')), wal: new Uint8Array(Buffer.from(encoded.wal, 'base64')) };
    }
    // Over WebSocket: every listening member serves it, WebSocket-only ones included.
    const dial = dialOverWebSocket(dialWebSocket, (address) => `ws://${address}/dqlite`);
    const admin = await connectCluster({ servers: [member.address], leaderDiscovery: false, timeoutMs: 5000, dial });
    try {
      const files = await admin.dump(database, member.address);
      return { main: files[0]!.data, wal: files[1]!.data };
    } finally {
      await admin.close();
    }
  }

  /** The index of the running member that reports itself leader. */
  async waitForLeader(timeoutMs = 30_000): Promise<number> {
    return waitFor('a leader', timeoutMs, async () => {
      for (const member of this.members) {
        if (!this.isRunning(member.index)) continue;
        try {
          if ((await this.status(member.index)).state === 'leader') return member.index;
        } catch {
          // not up yet
        }
      }
      return undefined;
    });
  }

  /** Waits until every running member applied everything the leader committed. */
  async waitForSameAppliedIndex(timeoutMs = 30_000): Promise<number> {
    return waitFor('every member to apply the same log', timeoutMs, async () => {
      const statuses = await Promise.all(this.members.filter((m) => this.isRunning(m.index)).map((m) => this.status(m.index)));
      const first = statuses[0]!;
      return statuses.every((s) => s.appliedIndex === first.appliedIndex && s.commitIndex === first.commitIndex && s.appliedIndex === s.commitIndex)
        ? first.appliedIndex
        : undefined;
    });
  }

  dumpOutput(): string {
    return this.members.map((m) => `== member ${m.index + 1} ${m.kind} ${m.address}\n${m.output.join('').slice(-12000)}`).join('\n');
  }

  async destroy(): Promise<void> {
    for (const member of this.members) {
      if (member.process && member.process.exitCode === null) member.process.kill('SIGKILL');
      member.process = undefined;
    }
    await this.context?.close().catch(() => undefined);
    await this.browser?.close().catch(() => undefined);
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

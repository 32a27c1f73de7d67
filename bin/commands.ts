/**
 * The dqlite-wasm command line, one for every host: the same commands, flags and help on Node
 * (`bin/cli.ts`) and Deno (`runtimes/deno/main.ts`). A host gives only the way to start a
 * member; signals, exit codes and the flags live here once.
 */
import { parseReadLevel, type ReadLevel } from '../src/server/read-path.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join as joinPath, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseAllowList } from '../src/server/admin-policy.ts';
import { deriveClientToken, parseOrigins } from '../src/server/client-access.ts';
import { NODE_DEFAULTS, parseUnsafeSwitches, UNSAFE_SWITCH_NAMES, type UnsafeSwitches } from '../src/server/node-options.ts';
import type { MemberOptions, RunningMember } from '../src/server/startup.ts';
import type { TlsOptionsPem } from '../runtimes/node/tls.ts';
import { launcherNodeFlags, withAllocatorDefaults } from './allocator.ts';
import { bannerText } from './banner.ts';
import { BACKUP_IMPORT_USAGE, runBackupImport } from './backup-import.ts';
import { CERT_USAGE, certCommand, CertUsageError, localClusterTls, readTlsFlags } from './cert.ts';
import { listFlag, onOffFlag, parseFlags, stringFlag, UsageError, wholeNumberFlag, type FlagSpec, type ParsedFlags } from './flags.ts';

export { UsageError } from './flags.ts';

/** Exit status of a node that stopped itself to protect its data (EX_SOFTWARE). */
export const EXIT_NODE_FATAL = 70;
export const EXIT_USAGE = 2;

/** What `start` gives a host: the member's options, and how the host listens and dials. */
export interface CliStartOptions extends MemberOptions {
  /** True only where the host supports it (Deno). */
  webSocketOnly: boolean;
  /** `--tls-cert`, `--tls-key`, `--tls-ca`: mutual TLS for everything the node serves and dials. */
  tls?: TlsOptionsPem;
  /** `--tls-client-cert websocket-optional`. */
  tlsWebSocketsWithoutCertificate?: boolean;
}

export interface CliHost {
  readonly name: 'node' | 'deno';
  startMember(options: CliStartOptions): Promise<RunningMember>;
  readonly webSocketOnly: boolean;
}

export const USAGE = `usage:
  dqlite-wasm start --address HOST:PORT --dir DIR [--join ADDR[,ADDR...]] [--cluster-key KEY | --cluster-key-file FILE]
      Runs one node. Without --join, a new directory bootstraps a new cluster (its key is
      generated and kept in DIR/cluster-key). A directory that belongs to a cluster keeps the
      key it joined with: restart a member with --address and --dir only.
      --advertise HOST:PORT: the address peers and clients use, when a proxy sits in front.
      --tls-cert FILE --tls-key FILE [--tls-ca FILE]: mutual TLS for everything the node serves
        and dials; clients and peers must present a certificate of the CA (default: the
        certificate itself, go-dqlite's single-certificate setup). See "dqlite-wasm cert".
      --tls-client-cert websocket-optional: browsers without a client certificate may open
        WebSockets (peers still prove the cluster key); default "require".
      The cluster key may also come from DQLITE_WASM_CLUSTER_KEY.
      On Linux the command runs the node with MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=32768
      (glibc's allocator gives freed memory back); values already set are kept, and
      DQLITE_WASM_TUNE_MALLOC=0 sets none. DQLITE_WASM_NODE_FLAGS="--flag ..." gives the node
      Node.js flags (none by default).
      --admin-allow ADDR[,ADDR...]|none: who may add, assign, remove, transfer and weight without
      credentials (IPs, IPv4 blocks like 10.0.0.0/8, loopback; default loopback). Others need the
      cluster key (over the /dqlite WebSocket) or, with TLS, a client certificate.
      --allow-origin ORIGIN[,ORIGIN...]|loopback|*|none: browser pages allowed on /dqlite without a
      client token (default loopback: pages served from 127.0.0.1 or localhost).
      --websocket-only (Deno): serve only HTTP/WebSocket (peers on /raft, dqlite clients on
      /dqlite), for hosts that offer only HTTP (the host in front terminates TLS).
      Tuning: --tick-ms (${NODE_DEFAULTS.tickMs}) --wal-frames-max (${NODE_DEFAULTS.walFramesMax}) --page-size (4096: new databases; 512..65536, a power of two) --snapshot-threshold (${NODE_DEFAULTS.snapshotThresholdEntries} entries)
      --snapshot-trailing (${NODE_DEFAULTS.snapshotTrailingEntries} entries) --commit-timeout-ms (${NODE_DEFAULTS.commitTimeoutMs}) --busy-timeout-ms (${NODE_DEFAULTS.busyTimeoutMs})
      --database-bytes-max BYTES: largest database file or WAL, and so the largest transaction (default 1 GiB)
      --default-read linearizable|lease|session|stale[:MS]: read level of clients that cannot choose (go-dqlite, the dqlite shell)
      --change-capture on|off: record each transaction's row changes for change feeds and live queries (default on;
        off saves their cost per write, and feeds then see transactions without rows)
      Test only: --unsafe-for-testing ${Object.keys(UNSAFE_SWITCH_NAMES).join(',')}
  dqlite-wasm cluster [--nodes N] [--host 127.0.0.1] [--base-port 9001] [--dir .data/cluster] [--tls ca|cluster]
      Runs a local N-node cluster (default 3) in child processes until Ctrl-C. --tls: mutual TLS
      with certificates made in DIR/tls (a CA and one per node, or one cluster certificate).
  dqlite-wasm client-token [--cluster-key KEY | --cluster-key-file FILE]
      Prints the token a browser app adds to its /dqlite WebSocket URL (?token=...): SQL access,
      no membership changes, and the cluster key cannot be recovered from it.
  dqlite-wasm shell -s ADDR[,ADDR...] DATABASE [SQL]
      SQL shell for dqlite-wasm and dqlite clusters (dqlite-wasm shell --help for more).
${CERT_USAGE}${BACKUP_IMPORT_USAGE}`;

const HELP: FlagSpec = { help: { type: 'boolean', short: 'h' } };
const KEY_FLAGS: FlagSpec = { 'cluster-key': { type: 'string' }, 'cluster-key-file': { type: 'string' } };

export const START_FLAGS: FlagSpec = {
  ...HELP,
  ...KEY_FLAGS,
  address: { type: 'string' },
  dir: { type: 'string' },
  join: { type: 'string' },
  advertise: { type: 'string' },
  'admin-allow': { type: 'string' },
  'allow-origin': { type: 'string' },
  'websocket-only': { type: 'boolean' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-client-cert': { type: 'string' },
  'tick-ms': { type: 'string' },
  'wal-frames-max': { type: 'string' },
  'page-size': { type: 'string' },
  'database-bytes-max': { type: 'string' },
  'snapshot-threshold': { type: 'string' },
  'snapshot-trailing': { type: 'string' },
  'commit-timeout-ms': { type: 'string' },
  'busy-timeout-ms': { type: 'string' },
  'default-read': { type: 'string' },
  'change-capture': { type: 'string' },
  'unsafe-for-testing': { type: 'string' },
};

const CLUSTER_FLAGS: FlagSpec = {
  ...HELP,
  nodes: { type: 'string' },
  host: { type: 'string' },
  'base-port': { type: 'string' },
  dir: { type: 'string' },
  tls: { type: 'string' },
};

const CERT_FLAGS: FlagSpec = {
  ...HELP,
  out: { type: 'string' },
  name: { type: 'string' },
  days: { type: 'string' },
  ca: { type: 'string' },
  ip: { type: 'string' },
  dns: { type: 'string' },
};

const CLIENT_TOKEN_FLAGS: FlagSpec = { ...HELP, ...KEY_FLAGS };

/** The string-valued flags, for the commands that take `Record<string, string>` (bin/cert.ts). */
function readLevelFlag(text: string): ReadLevel {
  try {
    return parseReadLevel(text);
  } catch (error) {
    throw new UsageError(`--default-read: ${(error as Error).message}`);
  }
}

function stringFlags(flags: ParsedFlags): Record<string, string> {
  const strings: Record<string, string> = {};
  for (const [name, value] of Object.entries(flags)) if (typeof value === 'string') strings[name] = value;
  return strings;
}

/** `--tls-*` of `start`: usage mistakes are usage errors, unreadable files plain ones. */
async function tlsOptions(flags: ParsedFlags): Promise<Awaited<ReturnType<typeof readTlsFlags>>> {
  try {
    return await readTlsFlags(stringFlags(flags));
  } catch (error) {
    if (error instanceof CertUsageError) throw new UsageError(error.message);
    throw error;
  }
}

/** The key given on the command line or in the environment; none lets the directory decide. */
async function givenClusterKey(flags: ParsedFlags): Promise<string | undefined> {
  const key = stringFlag(flags, 'cluster-key');
  const keyFile = stringFlag(flags, 'cluster-key-file');
  if (key !== undefined && keyFile !== undefined) throw new UsageError('give --cluster-key or --cluster-key-file, not both');
  if (key !== undefined) return key;
  if (keyFile !== undefined) {
    try {
      return (await readFile(keyFile, 'utf8')).trim();
    } catch (error) {
      throw new UsageError(`--cluster-key-file ${keyFile} cannot be read: ${(error as Error).message}`);
    }
  }
  return process.env['DQLITE_WASM_CLUSTER_KEY'] || undefined;
}

/** Test-only switches that break safety on purpose, so the checkers can prove they bite. */
function unsafeSwitches(list: string): UnsafeSwitches {
  let switches: UnsafeSwitches;
  try {
    switches = parseUnsafeSwitches(list);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  console.error(`WARNING: unsafe test switches on (${list}): this node may lose acknowledged writes`);
  return switches;
}

async function start(flags: ParsedFlags, host: CliHost): Promise<void> {
  const address = stringFlag(flags, 'address');
  const dir = stringFlag(flags, 'dir');
  if (!address || !dir) throw new UsageError('start needs --address and --dir');
  const webSocketOnly = flags['websocket-only'] === true;
  if (webSocketOnly && !host.webSocketOnly) {
    throw new UsageError('--websocket-only is for HTTP-only hosts and runs on Deno: deno run -A npm:dqlite-wasm start ... --websocket-only');
  }
  const adminAllow = stringFlag(flags, 'admin-allow');
  const allowOrigin = stringFlag(flags, 'allow-origin');
  try {
    if (adminAllow !== undefined) parseAllowList(adminAllow);
    if (allowOrigin !== undefined) parseOrigins(allowOrigin);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const tls = await tlsOptions(flags);
  if (tls.tls && webSocketOnly) {
    throw new UsageError('--tls-* and --websocket-only do not go together: with --websocket-only the host in front of the node terminates TLS');
  }
  const clusterKey = await givenClusterKey(flags);
  const advertise = stringFlag(flags, 'advertise');
  const unsafe = stringFlag(flags, 'unsafe-for-testing');
  const defaultRead = stringFlag(flags, 'default-read');
  const changeCapture = onOffFlag(flags, 'change-capture');
  const tuning: Partial<MemberOptions> = {};
  const numbers: [keyof MemberOptions, string][] = [
    ['tickMs', 'tick-ms'],
    ['walFramesMax', 'wal-frames-max'],
    ['pageSize', 'page-size'],
    ['snapshotThresholdEntries', 'snapshot-threshold'],
    ['snapshotTrailingEntries', 'snapshot-trailing'],
    ['commitTimeoutMs', 'commit-timeout-ms'],
    ['busyTimeoutMs', 'busy-timeout-ms'],
  ];
  for (const [option, flag] of numbers) {
    const value = wholeNumberFlag(flags, flag);
    if (value !== undefined) Object.assign(tuning, { [option]: value });
  }
  const databaseBytesMax = wholeNumberFlag(flags, 'database-bytes-max');
  const running = await host.startMember({
    ...tuning,
    ...(databaseBytesMax !== undefined && { limits: { databaseBytesMax } }),
    address,
    dir,
    join: listFlag(flags, 'join'),
    webSocketOnly,
    ...tls,
    ...(clusterKey !== undefined && { clusterKey }),
    ...(advertise !== undefined && { advertise }),
    ...(adminAllow !== undefined && { adminAllow }),
    ...(allowOrigin !== undefined && { allowOrigin }),
    ...(defaultRead !== undefined && { defaultReadLevel: readLevelFlag(defaultRead) }),
    ...(changeCapture !== undefined && { changeCapture }),
    ...(unsafe !== undefined && { unsafeForTesting: unsafeSwitches(unsafe) }),
  });
  // Only the command line exits the process: the node stopped itself to protect its data, and
  // a supervisor restarting it rebuilds the databases from the snapshot and the log.
  running.closed.catch((error: unknown) => {
    console.error(`dqlite-wasm: the node stopped: ${(error as Error).message}`);
    process.exit(EXIT_NODE_FATAL);
  });
  let signalled = false;
  const shutdown = (signal: string): void => {
    if (signalled) process.exit(1);
    signalled = true;
    console.log(`${signal}: handing over leadership and stopping`);
    running.stop({ handOver: true }).then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`stopping failed: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

async function cluster(flags: ParsedFlags): Promise<void> {
  const nodes = wholeNumberFlag(flags, 'nodes') ?? 3;
  const host = stringFlag(flags, 'host') ?? '127.0.0.1';
  const basePort = wholeNumberFlag(flags, 'base-port') ?? 9001;
  const dir = resolve(stringFlag(flags, 'dir') ?? '.data/cluster');
  if (nodes < 1 || nodes > 9) throw new UsageError('--nodes must be from 1 to 9');
  await mkdir(dir, { recursive: true });
  const keyFile = joinPath(dir, 'cluster-key');
  if (!existsSync(keyFile)) await writeFile(keyFile, randomBytes(24).toString('base64url').replace(/^-/, 'k') + '\n', { mode: 0o600 });
  const addresses = Array.from({ length: nodes }, (_, i) => `${host}:${basePort + i}`);
  const tlsMode = stringFlag(flags, 'tls');
  let tls: Awaited<ReturnType<typeof localClusterTls>> | undefined;
  try {
    tls = tlsMode !== undefined ? await localClusterTls(joinPath(dir, 'tls'), tlsMode, host, nodes) : undefined;
  } catch (error) {
    if (error instanceof CertUsageError) throw new UsageError(error.message);
    throw error;
  }
  const self = fileURLToPath(new URL('./dqlite-wasm', import.meta.url).href.replace('/dist/bin/', '/bin/'));
  const children: ChildProcess[] = [];
  // Taken at spawn: a child may be gone before the head start is over.
  const exits: Promise<unknown>[] = [];
  const spawnNode = (i: number): ChildProcess => {
    const args = ['start', '--address', addresses[i]!, '--dir', joinPath(dir, `node${i + 1}`), '--cluster-key-file', keyFile];
    if (i > 0) args.push('--join', addresses.slice(0, i).join(','));
    args.push(...(tls?.nodeArgs(i) ?? []));
    // Spawned as `node bin/dqlite-wasm`, not through the launcher: its allocator settings and Node.js flags are given here.
    const child = spawn(process.execPath, [...launcherNodeFlags(process.env), self, ...args], { stdio: ['ignore', 'inherit', 'inherit'], env: withAllocatorDefaults(process.env, process.platform) });
    children.push(child);
    exits.push(new Promise((resolve) => child.once('exit', resolve)));
    return child;
  };
  let stopping = false;
  const stopAll = (): void => {
    if (stopping) return;
    stopping = true;
    console.log('stopping all nodes...');
    for (const child of children) child.kill('SIGTERM');
    setTimeout(() => {
      for (const child of children) child.kill('SIGKILL');
      process.exit(0);
    }, 5000).unref();
  };
  // Before the first node exists: a signal during the head start must not leave it running alone.
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  spawnNode(0);
  // Later nodes join through the first; a short head start lets it elect itself.
  await new Promise((r) => setTimeout(r, 1500));
  if (!stopping) {
    for (let i = 1; i < nodes; i++) spawnNode(i);
    console.log(tls ? tls.banner(addresses, dir) : bannerText(addresses, dir));
  }
  await Promise.all(exits);
  process.exit(0);
}

async function printClientToken(flags: ParsedFlags): Promise<void> {
  const key = await givenClusterKey(flags);
  if (!key) throw new UsageError('client-token needs the cluster key: --cluster-key, --cluster-key-file or DQLITE_WASM_CLUSTER_KEY');
  console.log(await deriveClientToken(key));
}

/** Runs one command; returns when a long-running command (start, cluster) is up. */
export async function runCommand(args: readonly string[], host: CliHost): Promise<void> {
  const [command, ...rest] = args;
  const flagsOf = (spec: FlagSpec): ParsedFlags | undefined => {
    const flags = parseFlags(command!, rest, spec);
    if (flags['help'] !== true) return flags;
    console.log(USAGE);
    return undefined;
  };
  if (command === 'start') {
    const flags = flagsOf(START_FLAGS);
    if (flags) await start(flags, host);
  } else if (command === 'cluster') {
    const flags = flagsOf(CLUSTER_FLAGS);
    if (flags) await cluster(flags);
  } else if (command === 'client-token') {
    const flags = flagsOf(CLIENT_TOKEN_FLAGS);
    if (flags) await printClientToken(flags);
  } else if (command === 'cert') {
    const [what, ...certArgs] = rest;
    if (what === '--help' || what === '-h') console.log(USAGE);
    else {
      const flags = parseFlags(`cert ${what ?? ''}`.trim(), certArgs, CERT_FLAGS);
      if (flags['help'] === true) console.log(USAGE);
      else {
        try {
          await certCommand([what ?? '', ...certArgs], () => stringFlags(flags));
        } catch (error) {
          if (error instanceof CertUsageError) throw new UsageError(error.message);
          throw error;
        }
      }
    }
  } else if (command === 'shell') {
    // The shell (its client, readline) loads only for `shell`: a node never runs it.
    const { runShellCommand } = await import('../runtimes/node/shell.ts');
    await runShellCommand([...rest]);
  } else if (command === 'backup' || command === 'import') await runBackupImport(command, [...rest]);
  else if (command === undefined || command === 'help' || command === '--help' || command === '-h') console.log(USAGE);
  else throw new UsageError(`unknown command "${command}": use start, cluster, client-token, cert, backup, import, shell or help`);
}

/** The whole command line: usage errors exit 2 with the usage, other failures exit 1. */
export async function main(args: readonly string[], host: CliHost): Promise<void> {
  try {
    await runCommand(args, host);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`dqlite-wasm: ${error.message}\n\n${USAGE}`);
      process.exit(EXIT_USAGE);
    }
    console.error(`dqlite-wasm: ${(error as Error).message}`);
    process.exit(1);
  }
}

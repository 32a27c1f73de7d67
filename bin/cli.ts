/**
 * dqlite-wasm command line:
 *   dqlite-wasm start --address HOST:PORT --dir DIR [--join ADDR,...] [--cluster-key KEY | --cluster-key-file FILE]
 *   dqlite-wasm cluster [--nodes 3] [--base-port 9001] [--dir .data/cluster]
 *   dqlite-wasm client-token [--cluster-key KEY | --cluster-key-file FILE]
 *   dqlite-wasm cert ca|node|client|cluster ...
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join as joinPath, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNodeProcess } from '../runtimes/node/node-process.ts';
import { parseAllowList } from '../src/server/admin-policy.ts';
import { deriveClientToken, parseOrigins } from '../src/server/client-access.ts';
import { bannerText } from './banner.ts';
import { parseReadLevel, type ReadLevel } from '../src/server/read-path.ts';
import { NODE_DEFAULTS, parseUnsafeSwitches, UNSAFE_SWITCH_NAMES, type UnsafeSwitches } from '../src/server/node-options.ts';

/** Exit status of a node that stopped itself to protect its data (EX_SOFTWARE). */
const EXIT_NODE_FATAL = 70;
import { runShellCommand } from '../runtimes/node/shell.ts';
import { BACKUP_IMPORT_USAGE, runBackupImport } from './backup-import.ts';
import { CERT_USAGE, certCommand, CertUsageError, localClusterTls, readTlsFlags } from './cert.ts';

const USAGE = `usage:
  dqlite-wasm start --address HOST:PORT --dir DIR [--join ADDR[,ADDR...]] [--cluster-key KEY | --cluster-key-file FILE]
      Runs one node. Without --join, a new directory bootstraps a new cluster.
      --advertise HOST:PORT: the address peers and clients use, when a proxy sits in front.
      --tls-cert FILE --tls-key FILE [--tls-ca FILE]: mutual TLS for everything the node serves
        and dials; clients and peers must present a certificate of the CA (default: the
        certificate itself, go-dqlite's single-certificate setup). See "dqlite-wasm cert".
      --tls-client-cert websocket-optional: browsers without a client certificate may open
        WebSockets (peers still prove the cluster key); default "require".
      The cluster key may also come from DQLITE_WASM_CLUSTER_KEY.
      --admin-allow ADDR[,ADDR...]|none: who may add, assign, remove, transfer and weight without
      credentials (IPs, IPv4 blocks like 10.0.0.0/8, loopback; default loopback). Others need the
      cluster key (over the /dqlite WebSocket) or, with TLS, a client certificate.
      --allow-origin ORIGIN[,ORIGIN...]|loopback|*|none: browser pages allowed on /dqlite without a
      client token (default loopback: pages served from 127.0.0.1 or localhost).
      Tuning: --tick-ms (${NODE_DEFAULTS.tickMs}) --wal-frames-max (${NODE_DEFAULTS.walFramesMax}) --snapshot-threshold (${NODE_DEFAULTS.snapshotThresholdEntries} entries)
      --snapshot-trailing (${NODE_DEFAULTS.snapshotTrailingEntries} entries) --commit-timeout-ms (${NODE_DEFAULTS.commitTimeoutMs}) --busy-timeout-ms (${NODE_DEFAULTS.busyTimeoutMs})
      --default-read linearizable|lease|session|stale[:MS]: read level of clients that cannot choose (go-dqlite, the dqlite shell)
      Test only: --unsafe-for-testing ${Object.keys(UNSAFE_SWITCH_NAMES).join(',')}
  dqlite-wasm cluster [--nodes N] [--host 127.0.0.1] [--base-port 9001] [--dir .data/cluster] [--tls ca|cluster]
      Runs a local N-node cluster (default 3) in child processes until Ctrl-C. --tls: mutual TLS
      with certificates made in DIR/tls (a CA and one per node, or one cluster certificate).
  dqlite-wasm client-token [--cluster-key KEY | --cluster-key-file FILE]
      Prints the token a browser app adds to its /dqlite WebSocket URL (?token=...): SQL access,
      no membership changes, and the cluster key cannot be recovered from it.
  dqlite-wasm shell -s ADDR[,ADDR...] DATABASE [SQL]
      SQL shell for dqlite-wasm and dqlite clusters (dqlite-wasm shell --help for more).
${CERT_USAGE}`;

type Flags = Record<string, string>;

function parseFlags(args: string[]): Flags {
  const flags: Flags = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    if (eq > 0) {
      flags[arg.slice(2, eq)] = arg.slice(eq + 1);
    } else {
      const value = args[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`${arg} needs a value`);
      flags[arg.slice(2)] = value;
      i++;
    }
  }
  return flags;
}

class UsageError extends Error {}

function intFlag(flags: Flags, name: string, fallback: number): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  return wholeNumber(name, raw);
}

/** The flag's value, or nothing (the node's default applies). */
function optionalIntFlag(flags: Flags, name: string): number | undefined {
  const raw = flags[name];
  return raw === undefined ? undefined : wholeNumber(name, raw);
}

function wholeNumber(name: string, raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
  return value;
}

async function clusterKey(flags: Flags, dir: string): Promise<string> {
  if (flags['cluster-key']) return flags['cluster-key'];
  if (flags['cluster-key-file']) return (await readFile(flags['cluster-key-file'], 'utf8')).trim();
  if (process.env['DQLITE_WASM_CLUSTER_KEY']) return process.env['DQLITE_WASM_CLUSTER_KEY'];
  const keyFile = joinPath(dir, 'cluster-key');
  if (existsSync(keyFile)) return (await readFile(keyFile, 'utf8')).trim();
  if (flags['join']) {
    throw new UsageError('joining needs the cluster key: pass --cluster-key, --cluster-key-file or DQLITE_WASM_CLUSTER_KEY');
  }
  const key = randomBytes(24).toString('base64url');
  await mkdir(dir, { recursive: true });
  await writeFile(keyFile, key + '\n', { mode: 0o600 });
  console.log(`generated a cluster key in ${keyFile}; give it to joining nodes with --cluster-key-file`);
  return key;
}

/** Test-only switches that break safety on purpose, so the checkers can prove they bite. */
function defaultReadLevel(text: string): ReadLevel {
  try {
    return parseReadLevel(text);
  } catch (error) {
    throw new UsageError(`--default-read: ${(error as Error).message}`);
  }
}

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

async function start(flags: Flags): Promise<void> {
  const address = flags['address'];
  const dir = flags['dir'];
  if (!address || !dir) throw new UsageError('start needs --address and --dir');
  const key = await clusterKey(flags, dir);
  const adminAllow = flags['admin-allow'];
  const allowOrigin = flags['allow-origin'];
  try {
    if (adminAllow !== undefined) parseAllowList(adminAllow);
    if (allowOrigin !== undefined) parseOrigins(allowOrigin);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const running = await startNodeProcess({
    ...(adminAllow !== undefined && { adminAllow }),
    ...(allowOrigin !== undefined && { allowOrigin }),
    address,
    ...(flags['advertise'] && { advertise: flags['advertise'] }),
    dir,
    join: flags['join'] ? flags['join'].split(',').map((s) => s.trim()).filter(Boolean) : [],
    clusterKey: key,
    ...(await readTlsFlags(flags)),
    tickMs: optionalIntFlag(flags, 'tick-ms'),
    walFramesMax: optionalIntFlag(flags, 'wal-frames-max'),
    snapshotThresholdEntries: optionalIntFlag(flags, 'snapshot-threshold'),
    snapshotTrailingEntries: optionalIntFlag(flags, 'snapshot-trailing'),
    commitTimeoutMs: optionalIntFlag(flags, 'commit-timeout-ms'),
    busyTimeoutMs: optionalIntFlag(flags, 'busy-timeout-ms'),
    ...(flags['default-read'] && { defaultReadLevel: defaultReadLevel(flags['default-read']) }),
    ...(flags['unsafe-for-testing'] && { unsafeForTesting: unsafeSwitches(flags['unsafe-for-testing']) }),
  });
  // Only the command line exits the process: the node stopped itself to protect its data, and
  // a supervisor restarting it rebuilds the databases from the snapshot and the log.
  running.closed.catch((error: unknown) => {
    console.error(`dqlite-wasm: the node stopped: ${(error as Error).message}`);
    process.exit(EXIT_NODE_FATAL);
  });
  let signalled = false;
  const shutdown = (signal: string): void => {
    if (signalled) {
      process.exit(1);
    }
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

async function cluster(flags: Flags): Promise<void> {
  const nodes = intFlag(flags, 'nodes', 3);
  const host = flags['host'] ?? '127.0.0.1';
  const basePort = intFlag(flags, 'base-port', 9001);
  const dir = resolve(flags['dir'] ?? '.data/cluster');
  if (nodes < 1 || nodes > 9) throw new UsageError('--nodes must be from 1 to 9');
  await mkdir(dir, { recursive: true });
  const keyFile = joinPath(dir, 'cluster-key');
  if (!existsSync(keyFile)) await writeFile(keyFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
  const addresses = Array.from({ length: nodes }, (_, i) => `${host}:${basePort + i}`);
  const tls = flags['tls'] ? await localClusterTls(joinPath(dir, 'tls'), flags['tls'], host, nodes) : undefined;
  const self = fileURLToPath(new URL('./dqlite-wasm', import.meta.url).href.replace('/dist/bin/', '/bin/'));
  const children: ChildProcess[] = [];
  const spawnNode = (i: number): ChildProcess => {
    const args = ['start', '--address', addresses[i]!, '--dir', joinPath(dir, `node${i + 1}`), '--cluster-key-file', keyFile];
    if (i > 0) args.push('--join', addresses.slice(0, i).join(','));
    args.push(...(tls?.nodeArgs(i) ?? []));
    const child = spawn(process.execPath, [self, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(child);
    return child;
  };
  spawnNode(0);
  // Later nodes join through the first; a short head start lets it elect itself.
  await new Promise((r) => setTimeout(r, 1500));
  for (let i = 1; i < nodes; i++) spawnNode(i);
  console.log(tls ? tls.banner(addresses, dir) : bannerText(addresses, dir));
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
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  await Promise.all(children.map((c) => new Promise((r) => c.on('exit', r))));
  process.exit(0);
}

async function printClientToken(flags: Flags): Promise<void> {
  const key =
    flags['cluster-key'] ??
    (flags['cluster-key-file'] ? (await readFile(flags['cluster-key-file'], 'utf8')).trim() : process.env['DQLITE_WASM_CLUSTER_KEY']);
  if (!key) throw new UsageError('client-token needs the cluster key: --cluster-key, --cluster-key-file or DQLITE_WASM_CLUSTER_KEY');
  console.log(await deriveClientToken(key));
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  try {
    if (command === 'start') await start(parseFlags(rest));
    else if (command === 'cluster') await cluster(parseFlags(rest));
    else if (command === 'client-token') await printClientToken(parseFlags(rest));
    else if (command === 'shell') await runShellCommand(rest);
    else if (command === 'backup' || command === 'import') await runBackupImport(command, rest);
    else if (command === 'cert') await certCommand(rest, parseFlags);
    else if (command === undefined || command === 'help' || command === '--help') console.log(USAGE + BACKUP_IMPORT_USAGE);
    else throw new UsageError(`unknown command "${command}"`);
  } catch (error) {
    if (error instanceof UsageError || error instanceof CertUsageError) {
      console.error(`dqlite-wasm: ${error.message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`dqlite-wasm: ${(error as Error).message}`);
    process.exit(1);
  }
}

await main();

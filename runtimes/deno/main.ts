/**
 * dqlite-wasm node on Deno:
 *   deno run -A runtimes/deno/main.ts start --address HOST:PORT --dir DIR [--join ADDR,...]
 *       [--cluster-key KEY] [--websocket-only] [--advertise HOST:PORT] [--tls-cert F --tls-key F [--tls-ca F]] ...
 */
import { startDenoNode, type DenoNodeOptions } from './deno-node.ts';

const USAGE = `usage:
  deno run -A runtimes/deno/main.ts start --address HOST:PORT --dir DIR [--join ADDR[,ADDR...]] [--cluster-key KEY]
      Runs one node. Without --join, a new directory bootstraps a new cluster.
      The cluster key may also come from DQLITE_WASM_CLUSTER_KEY (required).
      --websocket-only: serve only HTTP/WebSocket (peers on /raft, dqlite clients on /dqlite),
        for hosts that offer only HTTP.
      --advertise HOST:PORT: the address peers and clients use, when a proxy sits in front.
      --tls-cert FILE --tls-key FILE [--tls-ca FILE]: mutual TLS for everything the node serves
        and dials (default CA: the certificate itself). Make them with "dqlite-wasm cert".
      --tls-client-cert websocket-optional: browsers without a client certificate may open
        WebSockets (peers still prove the cluster key); default "require".
      Tuning: --tick-ms (100) --wal-frames-max (1000) --snapshot-threshold (1024 entries)
      --snapshot-trailing (8192 entries) --commit-timeout-ms (10000) --busy-timeout-ms (5000)
`;

class UsageError extends Error {}
const BOOLEAN_FLAGS = new Set(['websocket-only']);

function parseFlags(args: string[]): Record<string, string> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    if (eq > 0) {
      flags[arg.slice(2, eq)] = arg.slice(eq + 1);
    } else if (BOOLEAN_FLAGS.has(arg.slice(2))) {
      flags[arg.slice(2)] = 'true';
    } else {
      const value = args[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`${arg} needs a value`);
      flags[arg.slice(2)] = value;
      i++;
    }
  }
  return flags;
}

async function readTlsFlags(flags: Record<string, string>): Promise<DenoNodeOptions['tls']> {
  const certFile = flags['tls-cert'];
  const keyFile = flags['tls-key'];
  const caFile = flags['tls-ca'];
  if (!certFile && !keyFile && !caFile) return undefined;
  if (!certFile || !keyFile) throw new UsageError('TLS needs both --tls-cert and --tls-key (and optionally --tls-ca)');
  const read = async (file: string, flag: string): Promise<string> => {
    try {
      return await Deno.readTextFile(file);
    } catch (error) {
      throw new Error(`cannot read ${flag} ${file}: ${(error as Error).message}`);
    }
  };
  return {
    cert: await read(certFile, '--tls-cert'),
    key: await read(keyFile, '--tls-key'),
    ...(caFile && { ca: await read(caFile, '--tls-ca') }),
  };
}

function intFlag(flags: Record<string, string>, name: string): number | undefined {
  const raw = flags[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
  return value;
}

async function start(flags: Record<string, string>): Promise<void> {
  const address = flags['address'];
  const dir = flags['dir'];
  if (!address || !dir) throw new UsageError('start needs --address and --dir');
  const clusterKey = flags['cluster-key'] ?? Deno.env.get('DQLITE_WASM_CLUSTER_KEY');
  if (!clusterKey) throw new UsageError('start needs the cluster key: --cluster-key KEY or DQLITE_WASM_CLUSTER_KEY');
  const options: DenoNodeOptions = {
    address,
    dir,
    clusterKey,
    join: flags['join'] ? flags['join'].split(',').map((s) => s.trim()).filter(Boolean) : [],
    webSocketOnly: flags['websocket-only'] === 'true',
  };
  if (flags['advertise']) options.advertise = flags['advertise'];
  const tls = await readTlsFlags(flags);
  if (tls) options.tls = tls;
  const clientCert = flags['tls-client-cert'] ?? 'require';
  if (clientCert !== 'require' && clientCert !== 'websocket-optional') {
    throw new UsageError(`--tls-client-cert must be "require" or "websocket-optional", got "${clientCert}"`);
  }
  if (clientCert === 'websocket-optional') {
    if (!tls) throw new UsageError('--tls-client-cert needs --tls-cert and --tls-key');
    options.tlsWebSocketsWithoutCertificate = true;
  }
  const tuning = {
    tickMs: intFlag(flags, 'tick-ms'),
    walFramesMax: intFlag(flags, 'wal-frames-max'),
    snapshotThresholdEntries: intFlag(flags, 'snapshot-threshold'),
    snapshotTrailingEntries: intFlag(flags, 'snapshot-trailing'),
    commitTimeoutMs: intFlag(flags, 'commit-timeout-ms'),
    busyTimeoutMs: intFlag(flags, 'busy-timeout-ms'),
  };
  for (const [key, value] of Object.entries(tuning)) {
    if (value !== undefined) (options as unknown as Record<string, number>)[key] = value;
  }
  const running = await startDenoNode(options);
  // The node stopped itself to protect its data: exit so a supervisor restarts it.
  running.closed.catch((error: unknown) => {
    console.error(`the node stopped: ${(error as Error).message}`);
    Deno.exit(70);
  });
  let signalled = false;
  const shutdown = (signal: string): void => {
    if (signalled) Deno.exit(1);
    signalled = true;
    console.log(`${signal}: handing over leadership and stopping`);
    running.stop({ handOver: true }).then(
      () => Deno.exit(0),
      (error: unknown) => {
        console.error(`stopping failed: ${(error as Error).message}`);
        Deno.exit(1);
      },
    );
  };
  Deno.addSignalListener('SIGTERM', () => shutdown('SIGTERM'));
  Deno.addSignalListener('SIGINT', () => shutdown('SIGINT'));
}

const [command, ...rest] = Deno.args;
try {
  if (command === 'start') await start(parseFlags(rest));
  else throw new UsageError(command ? `unknown command "${command}"` : 'no command given');
} catch (error) {
  if (error instanceof UsageError) {
    console.error(`${error.message}\n\n${USAGE}`);
    Deno.exit(2);
  }
  console.error(`error: ${(error as Error).message}`);
  Deno.exit(1);
}

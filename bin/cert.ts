/**
 * `dqlite-wasm cert …`: the certificates of a TLS cluster without an openssl recipe, and the
 * `--tls-*` flags of `start`.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join as joinPath } from 'node:path';
import {
  CA_DAYS_DEFAULT,
  CLUSTER_NAME_DEFAULT,
  clusterNameOf,
  issueLeaf,
  LEAF_DAYS_DEFAULT,
  makeClusterCa,
  makeSingleClusterCertificate,
  parseIpAddress,
  type PemPair,
} from '../src/cert/index.ts';
import type { TlsOptionsPem } from '../runtimes/node/tls.ts';

export const CERT_USAGE = `  dqlite-wasm cert ca --out DIR [--name CLUSTER] [--days ${CA_DAYS_DEFAULT}]
      Makes a cluster CA: DIR/ca.crt and DIR/ca.key. CLUSTER (default "${CLUSTER_NAME_DEFAULT}") becomes the
      first DNS name of every certificate the CA issues: go-dqlite clients verify servers against it.
  dqlite-wasm cert node --ca DIR --out PREFIX [--ip IP,...] [--dns NAME,...] [--name CN] [--days ${LEAF_DAYS_DEFAULT}]
      A node certificate signed by the CA in DIR (server and client use): PREFIX.crt (followed by
      the CA's certificate) and PREFIX.key. Start the node with --tls-cert PREFIX.crt
      --tls-key PREFIX.key --tls-ca DIR/ca.crt.
  dqlite-wasm cert client --ca DIR --out PREFIX [--name CN] [--days ${LEAF_DAYS_DEFAULT}]
      A client certificate (client use only), e.g. for the dqlite shell: dqlite -c PREFIX.crt -k PREFIX.key.
  dqlite-wasm cert cluster --out PREFIX [--name CLUSTER] [--ip IP,...] [--dns NAME,...] [--days ${CA_DAYS_DEFAULT}]
      go-dqlite's single self-signed cluster certificate, every node's and client's identity and
      the CA at once: PREFIX.crt and PREFIX.key (start nodes with --tls-cert and --tls-key only).
`;

export class CertUsageError extends Error {}

type Flags = Record<string, string>;

function list(flags: Flags, name: string): string[] {
  return (flags[name] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

function days(flags: Flags, fallback: number): number {
  const raw = flags['days'];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new CertUsageError(`--days must be a whole number of days, got "${raw}"`);
  return value;
}

function required(flags: Flags, name: string, command: string): string {
  const value = flags[name];
  if (!value) throw new CertUsageError(`cert ${command} needs --${name}`);
  return value;
}

/** Writes a pair without overwriting anything: a lost key cannot be made again. */
async function writePair(certFile: string, keyFile: string, pair: PemPair): Promise<void> {
  for (const file of [certFile, keyFile]) {
    if (existsSync(file)) throw new Error(`${file} already exists: remove it first or choose another --out`);
  }
  await mkdir(dirname(certFile), { recursive: true });
  await writeFile(keyFile, pair.keyPem, { mode: 0o600, flag: 'wx' });
  await writeFile(certFile, pair.certPem, { mode: 0o644, flag: 'wx' });
  console.log(`wrote ${certFile} and ${keyFile}`);
}

async function readCa(dir: string): Promise<PemPair> {
  const certFile = joinPath(dir, 'ca.crt');
  const keyFile = joinPath(dir, 'ca.key');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    throw new Error(`no CA in ${dir} (${certFile} and ${keyFile}): make one with "dqlite-wasm cert ca --out ${dir}"`);
  }
  return { certPem: await readFile(certFile, 'utf8'), keyPem: await readFile(keyFile, 'utf8') };
}

export async function certCommand(args: string[], parseFlags: (args: string[]) => Flags): Promise<void> {
  const [what, ...rest] = args;
  const flags = parseFlags(rest);
  switch (what) {
    case 'ca': {
      const out = required(flags, 'out', 'ca');
      const pair = await makeClusterCa({ clusterName: flags['name'] ?? CLUSTER_NAME_DEFAULT, days: days(flags, CA_DAYS_DEFAULT) });
      await writePair(joinPath(out, 'ca.crt'), joinPath(out, 'ca.key'), pair);
      return;
    }
    case 'node':
    case 'client': {
      const caDir = required(flags, 'ca', what);
      const out = required(flags, 'out', what);
      const ca = await readCa(caDir);
      const ipAddresses = list(flags, 'ip');
      const dnsNames = list(flags, 'dns');
      const commonName = flags['name'] ?? (what === 'node' ? `${clusterNameOf(ca.certPem)} node ${ipAddresses[0] ?? dnsNames[0] ?? ''}`.trim() : `${clusterNameOf(ca.certPem)} client`);
      const pair = await issueLeaf({ ca, kind: what, commonName: commonName.slice(0, 64), ipAddresses, dnsNames, days: days(flags, LEAF_DAYS_DEFAULT) });
      await writePair(`${out}.crt`, `${out}.key`, pair);
      return;
    }
    case 'cluster': {
      const out = required(flags, 'out', 'cluster');
      const pair = await makeSingleClusterCertificate({
        clusterName: flags['name'] ?? CLUSTER_NAME_DEFAULT,
        ipAddresses: list(flags, 'ip'),
        dnsNames: list(flags, 'dns'),
        days: days(flags, CA_DAYS_DEFAULT),
      });
      await writePair(`${out}.crt`, `${out}.key`, pair);
      return;
    }
    default:
      throw new CertUsageError(what ? `unknown cert command "${what}" (ca, node, client, cluster)` : 'cert needs one of: ca, node, client, cluster');
  }
}

/** `--tls-cert`, `--tls-key`, `--tls-ca` of `start`: the files' PEM text, or nothing when TLS is off. */
export async function readTlsFlags(flags: Flags): Promise<{ tls?: TlsOptionsPem; tlsWebSocketsWithoutCertificate?: boolean }> {
  const certFile = flags['tls-cert'];
  const keyFile = flags['tls-key'];
  const caFile = flags['tls-ca'];
  const clientCert = flags['tls-client-cert'] ?? 'require';
  if (clientCert !== 'require' && clientCert !== 'websocket-optional') {
    throw new CertUsageError(`--tls-client-cert must be "require" or "websocket-optional", got "${clientCert}"`);
  }
  if (!certFile && !keyFile && !caFile) {
    if (flags['tls-client-cert']) throw new CertUsageError('--tls-client-cert needs --tls-cert and --tls-key');
    return {};
  }
  if (!certFile || !keyFile) throw new CertUsageError('TLS needs both --tls-cert and --tls-key (and optionally --tls-ca)');
  const read = async (file: string, flag: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      throw new Error(`cannot read ${flag} ${file}: ${(error as Error).message}`);
    }
  };
  const tls: TlsOptionsPem = { cert: await read(certFile, '--tls-cert'), key: await read(keyFile, '--tls-key') };
  if (caFile) tls.ca = await read(caFile, '--tls-ca');
  return { tls, ...(clientCert === 'websocket-optional' && { tlsWebSocketsWithoutCertificate: true }) };
}

export interface LocalClusterTls {
  /** `start` flags for node `index` (0-based). */
  nodeArgs(index: number): string[];
  /** `-c … -k …` for the dqlite shell. */
  shellFlags: string;
  /** curl flags for the nodes' HTTPS endpoints. */
  curlFlags: string;
  /** What `dqlite-wasm cluster --tls` prints: how to reach the nodes with these certificates. */
  banner(addresses: readonly string[], dataDir: string): string;
}

function tlsBanner(dir: string, shellFlags: string, curlFlags: string, addresses: readonly string[], dataDir: string): string {
  return [
    '',
    `dqlite-wasm: ${addresses.length}-node cluster with mutual TLS starting, data in ${dataDir}, certificates in ${dir}`,
    `  nodes:         ${addresses.join('  ')}`,
    `  dqlite shell:  dqlite -s ${addresses.join(',')} ${shellFlags} demo`,
    `  our client:    connect({ servers, database, tls: { cert, key, ca } }) with the files in ${dir} (docs/security.md)`,
    `  health:        curl ${curlFlags} https://${addresses[0] ?? ''}/health`,
    'Press Ctrl-C to stop all nodes.',
    '',
  ].join('\n');
}

/**
 * Certificates for `dqlite-wasm cluster --tls ca|cluster` under `dir`, made on the first run and
 * reused afterwards: a CA with a certificate per node and a client certificate, or go-dqlite's
 * single cluster certificate.
 */
export async function localClusterTls(dir: string, mode: string, host: string, nodes: number): Promise<LocalClusterTls> {
  if (mode !== 'ca' && mode !== 'cluster') throw new CertUsageError(`--tls must be "ca" (a CA and a certificate per node) or "cluster" (one certificate), got "${mode}"`);
  const names = parseIpAddress(host) ? { ipAddresses: [host] } : { dnsNames: [host] };
  const ensure = async (certFile: string, keyFile: string, make: () => Promise<PemPair>): Promise<void> => {
    if (existsSync(certFile) && existsSync(keyFile)) return;
    await writePair(certFile, keyFile, await make());
  };
  if (mode === 'cluster') {
    const cert = joinPath(dir, 'cluster.crt');
    const key = joinPath(dir, 'cluster.key');
    await ensure(cert, key, () => makeSingleClusterCertificate(names));
    const shellFlags = `-c ${cert} -k ${key}`;
    const curlFlags = `--cacert ${cert} --cert ${cert} --key ${key}`;
    return {
      nodeArgs: () => ['--tls-cert', cert, '--tls-key', key],
      shellFlags,
      curlFlags,
      banner: (addresses, dataDir) => tlsBanner(dir, shellFlags, curlFlags, addresses, dataDir),
    };
  }
  const caDir = joinPath(dir, 'ca');
  await ensure(joinPath(caDir, 'ca.crt'), joinPath(caDir, 'ca.key'), () => makeClusterCa());
  const ca = await readCa(caDir);
  for (let i = 1; i <= nodes; i++) {
    await ensure(joinPath(dir, `node${i}.crt`), joinPath(dir, `node${i}.key`), () => issueLeaf({ ca, kind: 'node', commonName: `dqlite node ${i}`, ...names }));
  }
  const client = joinPath(dir, 'client');
  await ensure(`${client}.crt`, `${client}.key`, () => issueLeaf({ ca, kind: 'client', commonName: 'dqlite client' }));
  const shellFlags = `-c ${client}.crt -k ${client}.key`;
  const curlFlags = `--cacert ${joinPath(caDir, 'ca.crt')} --cert ${client}.crt --key ${client}.key`;
  return {
    nodeArgs: (index) => ['--tls-cert', joinPath(dir, `node${index + 1}.crt`), '--tls-key', joinPath(dir, `node${index + 1}.key`), '--tls-ca', joinPath(caDir, 'ca.crt')],
    shellFlags,
    curlFlags,
    banner: (addresses, dataDir) => tlsBanner(dir, shellFlags, curlFlags, addresses, dataDir),
  };
}

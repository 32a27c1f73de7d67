/**
 * Mutual TLS on Deno: a Deno node started with --tls-* bootstraps a cluster that two Node nodes
 * join (peers over wss:// both ways, across runtimes); the real dqlite shell works through the
 * Deno node with a client certificate and cannot connect without one.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { findDeno } from '../browser/mixed-cluster.ts';
import { certCommand, TlsCluster, type NodeSpec, type TlsFiles } from './tls-cluster.ts';

const run = promisify(execFile);
const deno = findDeno();

describe.skipIf(!deno)(deno ? 'TLS on a Deno node' : 'TLS on a Deno node (skipped: no deno binary)', () => {
  const root = mkdtempSync(join(tmpdir(), 'dqlite-wasm-tls-deno-'));
  const ca = join(root, 'ca');
  const client: TlsFiles = { cert: join(root, 'client.crt'), key: join(root, 'client.key'), ca: join(ca, 'ca.crt') };
  let cluster: TlsCluster;

  beforeAll(async () => {
    await certCommand('ca', '--out', ca);
    await Promise.all([
      ...[1, 2, 3].map((i) => certCommand('node', '--ca', ca, '--out', join(root, `node${i}`), '--ip', '127.0.0.1')),
      certCommand('client', '--ca', ca, '--out', join(root, 'client')),
    ]);
    const spec = (i: number): NodeSpec => ({ cert: join(root, `node${i}.crt`), key: join(root, `node${i}.key`), ca: join(ca, 'ca.crt') });
    cluster = await TlsCluster.start(root, [{ ...spec(1), deno: deno! }, spec(2), spec(3)], client);
  }, 150_000);

  afterAll(async () => {
    await cluster?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  test('the dqlite shell with -c/-k writes through the Deno node and reads through a Node node; without a certificate it cannot connect', async () => {
    const [onDeno, onNode] = cluster.addresses as [string, string];
    const shell = (address: string, input: string, credentials: string[], timeoutMs = 30_000): Promise<string> =>
      run('dqlite', ['-s', address, ...credentials, 'denotls', input], { timeout: timeoutMs }).then((r) => r.stdout);
    const withCertificate = ['-c', client.cert, '-k', client.key];
    await shell(onDeno, 'CREATE TABLE t (x INTEGER)', withCertificate);
    await shell(onDeno, 'INSERT INTO t VALUES (41), (1)', withCertificate);
    expect((await shell(onNode, 'SELECT sum(x) FROM t', withCertificate)).trim()).toBe('42');
    expect(cluster.output(0)).toContain('with mutual TLS');
    const refused = await shell(onDeno, 'SELECT sum(x) FROM t', [], 4000).then(
      () => false,
      () => true,
    );
    expect(refused).toBe(true);
  });
});

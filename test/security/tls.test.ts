/**
 * Mutual TLS on real processes: 3-node clusters whose certificates come from `dqlite-wasm cert`,
 * the real `dqlite` shell with -c/-k, our client with `tls`, and certificates of another CA
 * refused for clients and joining peers. Both go-dqlite's single self-signed cluster certificate
 * and a CA with per-node certificates.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../../runtimes/node/client.ts';
import { waitFor } from '../helpers/cluster.ts';
import { certCommand, TlsCluster, type TlsFiles } from './tls-cluster.ts';

const run = promisify(execFile);

/** The real dqlite shell; `credentials` become -c/-k. */
async function shell(servers: string, credentials: TlsFiles | undefined, input: string, timeoutMs = 30_000): Promise<string> {
  const args = ['-s', servers, ...(credentials ? ['-c', credentials.cert, '-k', credentials.key] : []), 'tlsdb', input];
  const { stdout } = await run('dqlite', args, { timeout: timeoutMs });
  return stdout;
}

/**
 * go-dqlite's shell retries a refused connection until it is killed, so "cannot connect" is: no
 * answer within a few seconds, and the process did not exit successfully.
 */
async function expectShellRefused(servers: string, credentials: TlsFiles | undefined): Promise<void> {
  const outcome = await shell(servers, credentials, 'SELECT count(*) FROM kv', 4000).then(
    (stdout) => ({ ok: true, stdout }),
    (error: { killed?: boolean; stdout?: string; stderr?: string }) => ({ ok: false, stdout: error.stdout ?? '' }),
  );
  expect(outcome.ok).toBe(false);
  expect(outcome.stdout).not.toMatch(/^\d+$/m);
}

const root = mkdtempSync(join(tmpdir(), 'dqlite-wasm-tls-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('TLS cluster with a CA and per-node certificates', () => {
  let cluster: TlsCluster;
  const dir = join(root, 'ca-setup');
  const ca = join(dir, 'ca');
  const client: TlsFiles = { cert: join(dir, 'alice.crt'), key: join(dir, 'alice.key'), ca: join(ca, 'ca.crt') };
  const foreignClient: TlsFiles = { cert: join(dir, 'mallory.crt'), key: join(dir, 'mallory.key'), ca: join(ca, 'ca.crt') };
  const nodeFiles = (name: string, caDir = ca): TlsFiles => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), ca: join(caDir, 'ca.crt') });

  beforeAll(async () => {
    await certCommand('ca', '--out', ca, '--name', 'tls-test');
    await certCommand('ca', '--out', join(dir, 'foreign-ca'), '--name', 'tls-test');
    await Promise.all([
      ...[1, 2, 3].map((i) => certCommand('node', '--ca', ca, '--out', join(dir, `node${i}`), '--ip', '127.0.0.1')),
      certCommand('client', '--ca', ca, '--out', join(dir, 'alice'), '--name', 'alice'),
      certCommand('client', '--ca', join(dir, 'foreign-ca'), '--out', join(dir, 'mallory'), '--name', 'mallory'),
      certCommand('node', '--ca', join(dir, 'foreign-ca'), '--out', join(dir, 'intruder'), '--ip', '127.0.0.1'),
    ]);
    cluster = await TlsCluster.start(dir, [1, 2, 3].map((i) => nodeFiles(`node${i}`)), client);
  }, 150_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('the real dqlite shell with -c/-k runs CREATE, INSERT, SELECT and .cluster through any node', async () => {
    const [a, b, c] = cluster.addresses as [string, string, string];
    await shell(a, client, 'CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)');
    await shell(b, client, "INSERT INTO kv VALUES ('one', 1)");
    await shell(c, client, "INSERT INTO kv VALUES ('two', 2)");
    expect((await shell(`${c},${a}`, client, 'SELECT k, v FROM kv ORDER BY v')).trim().split('\n')).toEqual(['one|1', 'two|2']);
    const members = await shell(b, client, '.cluster');
    for (const address of cluster.addresses) expect(members).toContain(address);
    expect(members.match(/voter/g)?.length).toBe(3);
  });

  test('the dqlite shell cannot connect without a certificate, or with one of another CA', async () => {
    const address = cluster.addresses[0]!;
    await expectShellRefused(address, undefined);
    await expectShellRefused(address, foreignClient);
    expect(cluster.output(0)).toMatch(/TLS handshake with 127\.0\.0\.1:\d+ failed/);
  });

  test('our client with tls reads and writes; without a certificate or with a foreign one it is refused', async () => {
    const tls = { cert: readFileSync(client.cert, 'utf8'), key: readFileSync(client.key, 'utf8'), ca: readFileSync(client.ca!, 'utf8') };
    const db = await connect({ servers: cluster.addresses, database: 'tlsdb', tls });
    try {
      await db.exec('INSERT INTO kv VALUES (?, ?)', ['three', 3]);
      expect((await db.query('SELECT sum(v) AS total FROM kv')).rows).toEqual([{ total: 6 }]);
    } finally {
      await db.close();
    }
    await expect(connect({ servers: cluster.addresses, database: 'tlsdb', timeoutMs: 3000 })).rejects.toThrow();
    const foreign = { cert: readFileSync(foreignClient.cert, 'utf8'), key: readFileSync(foreignClient.key, 'utf8'), ca: tls.ca };
    await expect(connect({ servers: cluster.addresses, database: 'tlsdb', tls: foreign, timeoutMs: 3000 })).rejects.toThrow();
  });

  test('a node with a certificate of another CA cannot join; membership stays and the cluster stays writable', async () => {
    const intruder = await cluster.addNode(nodeFiles('intruder', join(dir, 'foreign-ca')));
    // The wording of a failed join attempt differs between versions of the join; any of them will do.
    const failedJoin = /join attempt \d+ failed|still joining through|could not join|refused/;
    await waitFor('the intruder to report a failed join', 40_000, async () => (failedJoin.test(cluster.output(intruder)) ? true : undefined));
    await cluster.kill(intruder);
    const status = await cluster.status(0);
    expect(status.members.map((m) => m.address).sort()).toEqual(cluster.addresses.slice(0, 3).sort());
    await shell(cluster.addresses[1]!, client, "INSERT INTO kv VALUES ('four', 4)");
    expect((await shell(cluster.addresses[2]!, client, 'SELECT count(*) FROM kv')).trim()).toBe('4');
  });
});

describe('TLS cluster with go-dqlite\'s single self-signed cluster certificate', () => {
  let cluster: TlsCluster;
  const dir = join(root, 'single-setup');
  // No IP address in it: servers are verified against the cluster name, as go-dqlite does.
  const single: TlsFiles = { cert: join(dir, 'cluster.crt'), key: join(dir, 'cluster.key') };

  beforeAll(async () => {
    await Promise.all([
      certCommand('cluster', '--out', join(dir, 'cluster'), '--name', 'dqlite'),
      certCommand('cluster', '--out', join(dir, 'other'), '--name', 'dqlite'),
    ]);
    cluster = await TlsCluster.start(dir, [single, single, single], single);
  }, 150_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('the dqlite shell and our client use the one certificate; another self-signed one is refused', async () => {
    const [a, b, c] = cluster.addresses as [string, string, string];
    await shell(a, single, 'CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)');
    await shell(b, single, "INSERT INTO kv VALUES ('x', 10)");
    expect((await shell(c, single, 'SELECT v FROM kv')).trim()).toBe('10');
    expect((await shell(a, single, '.cluster')).match(/voter/g)?.length).toBe(3);

    const tls = { cert: readFileSync(single.cert, 'utf8'), key: readFileSync(single.key, 'utf8') };
    const db = await connect({ servers: [c], database: 'tlsdb', tls });
    try {
      expect((await db.query('SELECT v FROM kv')).rows).toEqual([{ v: 10 }]);
    } finally {
      await db.close();
    }
    await expectShellRefused(a, { cert: join(dir, 'other.crt'), key: join(dir, 'other.key') });
    await expectShellRefused(a, undefined);
  });
});


describe('a node with the certificate of go-dqlite\'s own openssl recipe', () => {
  test('RSA, no key usages, the host name first: the dqlite shell with -c/-k works against it', async () => {
    const dir = join(root, 'openssl-recipe');
    mkdirSync(dir, { recursive: true });
    const files: TlsFiles = { cert: join(dir, 'cluster.crt'), key: join(dir, 'cluster.key') };
    // As in go-dqlite's app/tls.go, with a smaller RSA key to keep the test quick.
    await run('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-sha256', '-days', '3', '-nodes', '-keyout', files.key, '-out', files.cert,
      '-subj', '/CN=example.com', '-addext', `subjectAltName=DNS:${hostname()},IP:127.0.0.1`,
    ]);
    const cluster = await TlsCluster.start(dir, [files], files);
    try {
      expect((await shell(cluster.addresses[0]!, files, 'SELECT 6 * 7')).trim()).toBe('42');
    } finally {
      await cluster.destroy();
    }
  });
});

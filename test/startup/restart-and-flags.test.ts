/**
 * Start-up on real processes: a joined member keeps the key it joined with (DIR/cluster-key, mode
 * 0600) and, restarted with only --address and --dir, catches up with its peers instead of taking
 * a new key; a directory of one cluster refuses another key; a misspelled flag is an error
 * naming the right one on Node and on Deno, and starts nothing.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../../runtimes/node/client.ts';
import { findDeno } from '../browser/mixed-cluster.ts';
import { freePort, TestCluster, waitFor } from '../helpers/cluster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const deno = findDeno();

interface Outcome {
  code: number | null;
  output: string;
}

function runCli(command: string, args: string[], timeoutMs = 30_000): Promise<Outcome> {
  const argv = command === 'deno' ? ['run', '-A', '--no-lock', 'runtimes/deno/main.ts', ...args] : ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts', ...args];
  return new Promise((resolve) => {
    execFile(command === 'deno' ? deno! : process.execPath, argv, { cwd: ROOT, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: number }).code ?? null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, output: stdout + stderr });
    });
  });
}

describe('a member restarted on its directory', () => {
  let cluster: TestCluster;
  const scratch = mkdtempSync(join(tmpdir(), 'dqlite-wasm-startup-'));

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
  }, 90_000);

  afterAll(async () => {
    await cluster?.destroy();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('keeps the key it joined with, readable by its owner only', () => {
    const keyFile = join(cluster.nodes[1]!.dir, 'cluster-key');
    expect(readFileSync(keyFile, 'utf8').trim()).toBe(cluster.clusterKey);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  });

  test('needs only --address and --dir, and catches up with its peers', async () => {
    const node = cluster.nodes[1]!;
    await cluster.kill(1);
    const db = await connect({ servers: [cluster.addresses[0]!, cluster.addresses[2]!], database: 'restart' });
    await db.exec('CREATE TABLE IF NOT EXISTS t (v TEXT)');
    await db.exec("INSERT INTO t VALUES ('while node 2 was down')");
    await db.close();
    const leader = await cluster.status(await cluster.waitForLeader());

    const child = spawn(process.execPath, ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts', 'start', '--address', node.address, '--dir', node.dir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    node.process = child;
    // Only a node holding the cluster's key gets the leader's entries.
    const caughtUp = await waitFor('node 2 to apply the write made while it was down', 30_000, async () => {
      const status = await cluster.status(1).catch(() => undefined);
      return status && status.appliedIndex >= leader.commitIndex && status.leaderId !== 0 ? status : undefined;
    }).catch((error: Error) => {
      throw new Error(`${error.message}\n${output}`);
    });
    expect(caughtUp.members.find((m) => m.address === node.address)?.role).toBe('voter');
    expect(output).not.toMatch(/generated a cluster key/);
    expect(readFileSync(join(node.dir, 'cluster-key'), 'utf8').trim()).toBe(cluster.clusterKey);
  }, 60_000);

  test("a directory of one cluster refuses another cluster's key and is left as it was", async () => {
    const node = cluster.nodes[2]!;
    await cluster.kill(2);
    const { code, output } = await runCli('node', ['start', '--address', node.address, '--dir', node.dir, '--cluster-key', 'some-other-key']);
    expect(code, output).toBe(1);
    expect(output).toMatch(/belongs to a cluster with another key/);
    expect(readFileSync(join(node.dir, 'cluster-key'), 'utf8').trim()).toBe(cluster.clusterKey);
  }, 40_000);
});

function startCli(host: string, args: string[]): { output: () => string; stop: () => Promise<number | null> } {
  const argv = host === 'deno' ? ['run', '-A', '--no-lock', 'runtimes/deno/main.ts', ...args] : ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts', ...args];
  const child = spawn(host === 'deno' ? deno! : process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    output: () => output,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

async function healthy(address: string): Promise<true | undefined> {
  const response = await fetch(`http://${address}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
  return response?.ok ? true : undefined;
}

describe.each(['node', ...(deno ? ['deno'] : [])])('a new cluster on %s', (host) => {
  test('generates its key once, readable by its owner only, and keeps it across a restart', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dqlite-wasm-newkey-')), 'node');
    const address = `127.0.0.1:${await freePort()}`;
    try {
      const first = startCli(host, ['start', '--address', address, '--dir', dir]);
      await waitFor('the new cluster to elect its leader', 60_000, () => healthy(address)).catch((e: Error) => {
        throw new Error(`${e.message}\n${first.output()}`);
      });
      expect(await first.stop()).toBe(0);
      expect(first.output()).toMatch(/generated a cluster key in .*cluster-key/);
      const keyFile = join(dir, 'cluster-key');
      const key = readFileSync(keyFile, 'utf8');
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);

      const second = startCli(host, ['start', '--address', address, '--dir', dir]);
      await waitFor('the restarted node to lead again', 60_000, () => healthy(address)).catch((e: Error) => {
        throw new Error(`${e.message}\n${second.output()}`);
      });
      expect(await second.stop()).toBe(0);
      expect(second.output()).not.toMatch(/generated a cluster key/);
      expect(readFileSync(keyFile, 'utf8')).toBe(key);
    } finally {
      rmSync(dirname(dir), { recursive: true, force: true });
    }
  }, 150_000);
});

describe.each(['node', ...(deno ? ['deno'] : [])])('strict flags on %s', (host) => {
  test('a misspelled --join is an error naming --join, and bootstraps nothing', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dqlite-wasm-flags-')), 'node');
    const address = `127.0.0.1:${await freePort()}`;
    const { code, output } = await runCli(host, ['start', '--address', address, '--dir', dir, '--jion', '127.0.0.1:9001'], 90_000);
    expect(code, output).toBe(2);
    expect(output).toMatch(/unknown flag --jion: did you mean --join\?/);
    expect(existsSync(dir)).toBe(false);
  }, 100_000);

  test.skipIf(host !== 'node')('--websocket-only on Node says it is for Deno, and starts nothing', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dqlite-wasm-flags-')), 'node');
    const { code, output } = await runCli(host, ['start', '--address', `127.0.0.1:${await freePort()}`, '--dir', dir, '--websocket-only']);
    expect(code, output).toBe(2);
    expect(output).toMatch(/--websocket-only is for HTTP-only hosts and runs on Deno/);
    expect(existsSync(dir)).toBe(false);
  });

  test('--cluster-key-file is accepted and help lists the same flags', async () => {
    const { code, output } = await runCli(host, ['start', '--help'], 90_000);
    expect(code, output).toBe(0);
    for (const flag of ['--cluster-key-file', '--websocket-only', '--admin-allow', '--join', '--tls-cert', '--tls-client-cert']) expect(output).toContain(flag);
    for (const command of ['cert ca', 'cluster', 'client-token', 'backup', 'import', 'shell']) expect(output).toContain(`dqlite-wasm ${command}`);
  }, 100_000);

  test('--tls-cert without --tls-key, and a misspelled --tls-ca, are usage errors that start nothing', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dqlite-wasm-flags-')), 'node');
    const address = `127.0.0.1:${await freePort()}`;
    const half = await runCli(host, ['start', '--address', address, '--dir', dir, '--tls-cert', 'node.crt'], 90_000);
    expect(half.code, half.output).toBe(2);
    expect(half.output).toMatch(/TLS needs both --tls-cert and --tls-key/);
    const typo = await runCli(host, ['start', '--address', address, '--dir', dir, '--tls-cs', 'ca.crt'], 90_000);
    expect(typo.code, typo.output).toBe(2);
    expect(typo.output).toMatch(/unknown flag --tls-cs: did you mean --tls-c/);
    expect(existsSync(dir)).toBe(false);
  }, 200_000);

  test('cert makes a CA with strict flags: a misspelled one is refused and writes nothing', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'dqlite-wasm-cert-')), 'ca');
    try {
      const typo = await runCli(host, ['cert', 'ca', '--oot', out], 90_000);
      expect(typo.code, typo.output).toBe(2);
      expect(typo.output).toMatch(/unknown flag --oot: did you mean --out\?/);
      expect(existsSync(out)).toBe(false);
      const made = await runCli(host, ['cert', 'ca', '--out', out, '--name', 'flags-test'], 90_000);
      expect(made.code, made.output).toBe(0);
      expect(readFileSync(join(out, 'ca.crt'), 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
      expect(statSync(join(out, 'ca.key')).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dirname(out), { recursive: true, force: true });
    }
  }, 200_000);
});

/**
 * Joining: retries that heal by themselves during a cluster's start are not printed as
 * failures; a join that keeps failing says so once it has gone on long enough, and what to check.
 * The cluster is a scripted dqlite server over real TCP, so refusals happen exactly when asked.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { dialTcp } from '../../runtimes/node/tcp.ts';
import type { Clock } from '../../src/runtime.ts';
import { joinCluster } from '../../src/server/join.ts';
import { startScriptedCluster, type ScriptedCluster } from '../client/scripted-server.ts';

/** A clock whose timers fire at once and move virtual time forward by their delay. */
function virtualClock(): Clock {
  let nowMs = 0;
  const later = (callback: () => void, delayMs: number) => {
    nowMs += delayMs;
    const handle = setImmediate(callback);
    return { cancel: () => clearImmediate(handle) };
  };
  return {
    nowMs: () => nowMs,
    setTimeout: later,
    setInterval: later,
  };
}

const REFUSAL = 'membership change refused: a configuration change is still being committed; retry shortly';

describe('joinCluster', () => {
  let cluster: ScriptedCluster | undefined;
  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  test('a join that succeeds after a few expected refusals prints no failure', async () => {
    cluster = await startScriptedCluster(1);
    let refusals = 2;
    cluster.nodes[0]!.handler = (request) => {
      if (request.type === 'add') return refusals-- > 0 ? { type: 'failure', code: 1, message: REFUSAL } : { type: 'empty' };
      if (request.type === 'assign') return { type: 'empty' };
      return undefined;
    };
    const lines: string[] = [];
    await joinCluster({
      dial: dialTcp,
      clock: virtualClock(),
      servers: [cluster.nodes[0]!.address],
      id: 7,
      address: '127.0.0.1:1',
      votersMax: 3,
      standbysMax: 3,
      timeoutMs: 60_000,
      log: (line) => lines.push(line),
    });
    expect(cluster.nodes[0]!.requests.filter((r) => r.type === 'add')).toHaveLength(3);
    expect(lines.join('\n')).not.toMatch(/fail|error/i);
    expect(lines).toEqual(['added to the cluster as a spare (id 7)', 'promoted to voter']);
  });

  test('a join that keeps failing says so after a while, with what to check, then gives up', async () => {
    cluster = await startScriptedCluster(1);
    cluster.nodes[0]!.handler = (request) => (request.type === 'add' ? { type: 'failure', code: 1, message: REFUSAL } : undefined);
    const lines: string[] = [];
    const joining = joinCluster({
      dial: dialTcp,
      clock: virtualClock(),
      servers: [cluster.nodes[0]!.address],
      id: 7,
      address: '127.0.0.1:1',
      votersMax: 3,
      standbysMax: 3,
      timeoutMs: 20_000,
      log: (line) => lines.push(line),
    });
    await expect(joining).rejects.toThrow(/could not join the cluster .* within 20000 ms .*cluster key matches/);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatch(/^still joining through 127\.0\.0\.1:\d+ after \d+ s \(attempt \d+: membership change refused/);
    expect(lines[0]).toMatch(/check that those nodes run/);
  });
});

/**
 * Ports for node processes that nothing else can take. A port found by binding port 0 and
 * closing the probe lies in the kernel's ephemeral range, so any outgoing connection on the
 * machine (a client, a peer dial) or another test's probe may get it before the node binds it:
 * that was `listen EADDRINUSE` before any fault. These ports come from outside the ephemeral
 * range, where the kernel never hands out ports by itself, and each is reserved with a file
 * created exclusively under the temporary directory, so cooperating processes (parallel test
 * runs, other clusters) never pick the same one. A reservation whose process died is reused.
 */
import { createServer } from 'node:net';
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeadOnLinux } from '../../runtimes/node/directory-lock.ts';

export interface ReservedPort {
  readonly port: number;
  release(): void;
}

const RESERVATIONS_DIRECTORY = join(tmpdir(), 'dqlite-wasm-port-reservations');
const PORT_LOW = 1024;
const PORT_HIGH = 65535;
/** Ports below this are often taken by well-known services: start above. */
const PREFERRED_LOW = 20000;

const held = new Map<number, string>();
let exitHookInstalled = false;

/** The kernel's ephemeral range on Linux (connect() and bind(0) take ports only from it). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // Not Linux: assume the IANA range, which macOS and Windows use.
  }
  return [49152, 65535];
}

/** Ports outside the ephemeral range, preferred ones first. */
function candidateRanges(): [number, number][] {
  const [low, high] = ephemeralRange();
  const ranges: [number, number][] = [];
  if (low - 1 >= PREFERRED_LOW) ranges.push([PREFERRED_LOW, low - 1]);
  if (high + 1 <= PORT_HIGH) ranges.push([high + 1, PORT_HIGH]);
  if (ranges.length === 0 && low - 1 >= PORT_LOW) ranges.push([PORT_LOW, low - 1]);
  if (ranges.length === 0) throw new Error(`the ephemeral port range ${low}-${high} leaves no port for test nodes`);
  return ranges;
}

function holderIsAlive(path: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(path, 'utf8').trim());
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isDeadOnLinux(pid);
}

function tryReserve(port: number): boolean {
  const path = join(RESERVATIONS_DIRECTORY, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      held.set(port, path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (holderIsAlive(path)) return false;
    try {
      unlinkSync(path);
    } catch {
      // Someone else cleaned it up first: try to create it again.
    }
  }
  return false;
}

/** Reserves a port outside the ephemeral range that no cooperating process holds. */
export function reservePort(): ReservedPort {
  mkdirSync(RESERVATIONS_DIRECTORY, { recursive: true });
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const path of held.values()) {
        try {
          unlinkSync(path);
        } catch {
          // Already gone.
        }
      }
    });
  }
  for (const [low, high] of candidateRanges()) {
    const span = high - low + 1;
    // A random start keeps parallel processes from racing for the same first ports.
    const start = Math.floor(Math.random() * span);
    for (let i = 0; i < span; i++) {
      const port = low + ((start + i) % span);
      if (held.has(port)) continue;
      if (tryReserve(port)) return { port, release: () => releasePort(port) };
    }
  }
  throw new Error('every port outside the ephemeral range is reserved: remove stale files in ' + RESERVATIONS_DIRECTORY);
}

function releasePort(port: number): void {
  const path = held.get(port);
  if (!path) return;
  held.delete(port);
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/**
 * A port for a node a test starts: reserved as above for the rest of this process, and checked
 * bindable on 127.0.0.1 (a program outside the tests may hold it: then the next one).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const { port } = reservePort();
    if (await bindable(port)) return port;
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

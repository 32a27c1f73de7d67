/**
 * Whether a process that left its pid in a file (a lock, a temporary file's name) can still
 * write. `kill(pid, 0)` alone is not enough: it also succeeds for a zombie, a process killed
 * with -9 whose parent has not reaped it yet, which can never write again.
 */
import { existsSync, readFileSync } from 'node:fs';

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isDeadOnLinux(pid);
}

/**
 * True when Linux says `pid` is a zombie (Z) or being torn down (X). Without /proc (other
 * systems) nothing is known and the holder counts as alive: a refused start beats two writers.
 */
export function isDeadOnLinux(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    // Gone between kill(0) and here; anything else (no /proc): cannot tell.
    return (error as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/stat');
  }
  return processStateIsDead(stat);
}

/** The state field of a /proc/PID/stat line: after the command name, which may hold ')' itself. */
export function processStateIsDead(stat: string): boolean {
  const state = stat.slice(stat.lastIndexOf(')') + 1).trimStart()[0];
  return state === 'Z' || state === 'X' || state === 'x';
}

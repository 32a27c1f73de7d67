/**
 * How close the log's disk is to full, for refusing client proposals before a log write can
 * fail. A Raft log write that fails stops the node (nothing it did not write may be counted or
 * acknowledged), so the node keeps a reserve for the entries it cannot refuse (a new leader's
 * barrier, checkpoints, configuration changes, what a follower receives) and refuses new client
 * transactions once free space falls below it. Free space is measured in the background; a
 * refused proposal triggers a new measurement, so writes work again soon after space returns.
 */
import type { DurableStorage } from '../runtime.ts';

export interface DiskSpaceOptions {
  /** Client proposals are refused when they would leave less free space than this. */
  reserveBytes?: number;
  /** A measurement older than this is refreshed on the next proposal. */
  measureIntervalMs?: number;
  /** The node's clock; defaults to Date.now. */
  nowMs?: () => number;
}

export const DISK_RESERVE_BYTES_DEFAULT = 64 * 1024 * 1024;
const MEASURE_INTERVAL_MS_DEFAULT = 1000;

/** ENOSPC (no space) and EDQUOT (quota exhausted), as Node and Deno report them. */
export function isDiskFullError(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'FULL') return true;
    if (/\b(ENOSPC|EDQUOT|No space left on device|Disk quota exceeded)\b/.test(e.message)) return true;
    if (e.name === 'QuotaExceededError') return true;
  }
  return false;
}

export class DiskSpaceGauge {
  private readonly reserveBytes: number;
  private readonly measureIntervalMs: number;
  private readonly nowMs: () => number;
  /** Free bytes at the last measurement minus what was written since; undefined: not known. */
  private freeBytes: number | undefined;
  private measuredAtMs = Number.NEGATIVE_INFINITY;
  private measuring = false;

  constructor(
    private readonly storage: DurableStorage,
    options: DiskSpaceOptions = {},
  ) {
    this.reserveBytes = options.reserveBytes ?? DISK_RESERVE_BYTES_DEFAULT;
    this.measureIntervalMs = options.measureIntervalMs ?? MEASURE_INTERVAL_MS_DEFAULT;
    this.nowMs = options.nowMs ?? Date.now;
    if (!Number.isSafeInteger(this.reserveBytes) || this.reserveBytes < 0) {
      throw new RangeError(`disk reserve must be a non-negative number of bytes, got ${this.reserveBytes}`);
    }
    this.measure();
  }

  /** Bytes a proposal of `bytes` would go below the reserve by, or undefined when it fits. */
  shortfall(bytes: number): number | undefined {
    const stale = this.nowMs() - this.measuredAtMs >= this.measureIntervalMs;
    if (stale) this.measure();
    if (this.freeBytes === undefined) return undefined;
    const short = this.reserveBytes + bytes - this.freeBytes;
    if (short <= 0) return undefined;
    // Space may have come back since: look again so that a retry can succeed.
    this.measure();
    return short;
  }

  describeShortfall(shortBytes: number): string {
    return (
      `the disk holding this node's data is full (${formatBytes(Math.max(0, this.freeBytes ?? 0))} free, ` +
      `${formatBytes(this.reserveBytes)} kept in reserve for the cluster's own log entries): ` +
      `writes are refused until about ${formatBytes(shortBytes)} more is free; reads still work. ` +
      'Free space on that disk (or give it more), then retry'
    );
  }

  /** Bytes just written to the disk. */
  consumed(bytes: number): void {
    if (this.freeBytes !== undefined) this.freeBytes -= bytes;
  }

  /** A write just failed for lack of space. */
  exhausted(): void {
    this.freeBytes = 0;
    this.measuredAtMs = this.nowMs();
  }

  private measure(): void {
    if (this.measuring || !this.storage.freeBytes) return;
    this.measuring = true;
    const startedAtMs = this.nowMs();
    this.storage.freeBytes().then(
      (free) => {
        this.measuring = false;
        this.freeBytes = free;
        this.measuredAtMs = startedAtMs;
      },
      () => {
        // Not measurable now: keep the estimate, and try again at the next interval.
        this.measuring = false;
        this.measuredAtMs = startedAtMs;
      },
    );
  }
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 * 1024) return `${(bytes / (1024 * 1024 * 1024)).toFixed(1)} GiB`;
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

/** The node card's memory line, from the `memory` field a node's status carries. */
import { describe, expect, it } from 'vitest';
import { memoryLine, memoryTitle } from '../../demo/memory-line.ts';

const MIB = 1024 * 1024;

describe('memory line of a node card', () => {
  it('totals the JS heap and the WASM memory where the host reports its heap', () => {
    const memory = { logBytes: 1.2 * MIB, databasesBytes: 8 * MIB, snapshotBytes: 0, wasmBytes: 16 * MIB, jsHeapBytes: 12.3 * MIB };
    expect(memoryLine(memory)).toBe('mem 28.3 MiB (log 1.2, db 8.0, wasm 16.0)');
    expect(memoryTitle(memory)).toMatch(/JS heap 12\.3 MiB/);
  });

  it('sums the parts where the heap is unknown, and shows a snapshot in progress', () => {
    const memory = { logBytes: 1 * MIB, databasesBytes: 2 * MIB, snapshotBytes: 0.5 * MIB, wasmBytes: 16 * MIB, jsHeapBytes: null };
    expect(memoryLine(memory)).toBe('mem 19.5 MiB (log 1.0, db 2.0, snap 0.5, wasm 16.0)');
    expect(memoryTitle(memory)).toMatch(/does not report its JS heap/);
  });
});

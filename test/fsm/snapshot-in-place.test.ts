/**
 * A snapshot encoded straight into its file's bytes (after room for the file header) is the
 * same file as encoding the snapshot and then the file, and decodes back to the same databases.
 */
import { describe, expect, it } from 'vitest';
import { decodeSnapshot, encodeSnapshot, encodeSnapshotGradually } from '../../src/fsm/snapshot-codec.ts';
import { decodeSnapshotFile, encodeSnapshotFile, sealSnapshotFile, snapshotFileHeaderBytes } from '../../src/server/raft-log-format.ts';

const files = [
  { name: 'app', main: new Uint8Array(5000).map((_, i) => i & 0xff), wal: new Uint8Array(300).map((_, i) => (i * 7) & 0xff) },
  { name: 'émoji-db', main: new Uint8Array(1), wal: new Uint8Array(0) },
];
const meta = { index: 42, term: 3, configuration: { members: [{ id: 1, address: '127.0.0.1:9001', role: 'voter' as const }] } };

describe('snapshot encoded in place', () => {
  it('gives the same file bytes as the two-step encoding', async () => {
    const data = encodeSnapshot(files);
    const twoStep = encodeSnapshotFile({ meta, data });
    let pauses = 0;
    const file = await encodeSnapshotGradually(files, async () => void pauses++, 1024, snapshotFileHeaderBytes(meta));
    const view = sealSnapshotFile(file, meta);
    expect(pauses).toBeGreaterThan(2);
    expect(file).toEqual(twoStep);
    expect(view).toEqual(data);
    const decoded = decodeSnapshotFile(file);
    if (typeof decoded === 'string') throw new Error(decoded);
    expect(decoded.meta).toEqual(meta);
    expect(decodeSnapshot(decoded.data)).toEqual(files);
  });

  it('a damaged byte in the data is caught by the file checksum', async () => {
    const file = await encodeSnapshotGradually(files, async () => {}, 1024, snapshotFileHeaderBytes(meta));
    sealSnapshotFile(file, meta);
    file[file.length - 10]! ^= 1;
    expect(decodeSnapshotFile(file)).toMatch(/data fails its checksum/);
  });
});

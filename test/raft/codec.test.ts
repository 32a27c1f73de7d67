import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeConfChange,
  decodeConfiguration,
  decodeMessage,
  encodeConfChange,
  encodeConfiguration,
  encodeMessage,
  encodeMessageWithHeadroom,
  EntryType,
  MessageType,
  RaftCodecError,
} from '../../src/raft/index.ts';
import type { ConfChange, Configuration, Message } from '../../src/raft/index.ts';

const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const id = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const role = fc.constantFrom('voter' as const, 'standby' as const, 'spare' as const);
const configuration: fc.Arbitrary<Configuration> = fc
  .uniqueArray(fc.record({ id, address: fc.string({ maxLength: 40 }), role }), { selector: (m) => m.id, maxLength: 6 })
  .map((members) => ({ members }));

const message: fc.Arbitrary<Message> = fc
  .record({
    type: fc.integer({ min: MessageType.Append, max: MessageType.TimeoutNow }) as fc.Arbitrary<MessageType>,
    from: id,
    to: id,
    term: u53,
    logTerm: u53,
    index: fc.integer({ min: 0, max: 2 ** 40 }),
    commit: u53,
    reject: fc.boolean(),
    rejectHint: u53,
    context: u53,
    entries: fc.array(
      fc.record({
        term: u53,
        type: fc.integer({ min: 1, max: 4 }) as fc.Arbitrary<EntryType>,
        data: fc.uint8Array({ maxLength: 64 }),
      }),
      { maxLength: 5 },
    ),
    snapshot: fc.option(
      fc.record({ index: u53, term: u53, configuration, offset: fc.integer({ min: 0, max: 1000 }), data: fc.uint8Array({ maxLength: 64 }), extra: fc.integer({ min: 0, max: 1000 }) }),
      { nil: undefined },
    ),
  })
  .map((r) => {
    const m: Message = {
      type: r.type,
      from: r.from,
      to: r.to,
      term: r.term,
      logTerm: r.logTerm,
      index: r.index,
      commit: r.commit,
      reject: r.reject,
      rejectHint: r.rejectHint,
      context: r.context,
      entries: r.entries.map((e, i) => ({ term: e.term, index: r.index + 1 + i, type: e.type, data: e.data })),
    };
    if (r.snapshot) {
      const s = r.snapshot;
      m.snapshot = { meta: { index: s.index, term: s.term, configuration: s.configuration }, offset: s.offset, totalBytes: s.offset + s.data.length + s.extra, data: s.data };
    }
    return m;
  });

const confChange: fc.Arbitrary<ConfChange> = fc.oneof(
  fc.record({ type: fc.constant('add' as const), id, address: fc.string({ maxLength: 50 }), role }),
  fc.record({ type: fc.constant('assign' as const), id, role }),
  fc.record({ type: fc.constant('remove' as const), id }),
);

describe('message codec', () => {
  it('round-trips every message', () => {
    fc.assert(
      fc.property(message, (m) => {
        expect(decodeMessage(encodeMessage(m))).toEqual(m);
      }),
      { numRuns: 500 },
    );
  });

  it('encodes after zeroed headroom the same bytes, in a buffer of exactly that size without a snapshot chunk', () => {
    fc.assert(
      fc.property(message, fc.integer({ min: 0, max: 40 }), (m, headroom) => {
        const plain = encodeMessage(m);
        const framed = encodeMessageWithHeadroom(m, headroom);
        expect(framed.subarray(0, headroom)).toEqual(new Uint8Array(headroom));
        expect(framed.subarray(headroom)).toEqual(plain);
        if (!m.snapshot) expect(framed.buffer.byteLength).toBe(headroom + plain.length);
      }),
      { numRuns: 300 },
    );
  });

  it('adopts handed-over input (entries are views into it) but copies a small view of a larger buffer', () => {
    const m: Message = {
      type: MessageType.Append, from: 1, to: 2, term: 3, logTerm: 2, index: 9, commit: 8, reject: false, rejectHint: 0, context: 0,
      entries: [{ term: 3, index: 10, type: EntryType.Normal, data: new Uint8Array(4096).fill(7) }],
    };
    const framed = encodeMessageWithHeadroom(m, 18);
    const adopted = decodeMessage(framed.subarray(18), 'adopt');
    expect(adopted).toEqual(m);
    expect(adopted.entries[0]!.data.buffer).toBe(framed.buffer);
    // The default copies: the caller may reuse its buffer.
    expect(decodeMessage(framed.subarray(18)).entries[0]!.data.buffer).not.toBe(framed.buffer);
    // A message that is a small part of a big buffer is copied even when adopted, so that a
    // kept entry does not keep the whole buffer alive.
    const big = new Uint8Array(64 * 1024);
    const small = encodeMessage({ ...m, entries: [{ term: 3, index: 10, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) }] });
    big.set(small, 100);
    const copied = decodeMessage(big.subarray(100, 100 + small.length), 'adopt');
    expect(copied.entries[0]!.data).toEqual(new Uint8Array([1, 2, 3]));
    expect(copied.entries[0]!.data.buffer).not.toBe(big.buffer);
  });

  it('every truncation of a valid message is a RaftCodecError', () => {
    fc.assert(
      fc.property(message, fc.nat(), (m, cut) => {
        const bytes = encodeMessage(m);
        const at = cut % bytes.length;
        expect(() => decodeMessage(bytes.subarray(0, at))).toThrow(RaftCodecError);
      }),
      { numRuns: 500 },
    );
  });

  it('random bytes and single-byte corruptions either decode to a valid message or throw RaftCodecError', () => {
    const check = (bytes: Uint8Array) => {
      try {
        const m = decodeMessage(bytes);
        // What decodes re-encodes to the same bytes: nothing unvalidated slips through.
        expect(encodeMessage(m)).toEqual(bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(RaftCodecError);
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), check), { numRuns: 2000 });
    fc.assert(
      fc.property(message, fc.nat(), fc.integer({ min: 0, max: 255 }), (m, pos, value) => {
        const bytes = encodeMessage(m);
        bytes[pos % bytes.length] = value;
        check(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects oversized counts without allocating, with an actionable message', () => {
    const m = encodeMessage({ type: MessageType.Append, from: 1, to: 2, term: 1, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, context: 0, entries: [] });
    const bytes = m.slice();
    // The entry count sits after version, type, 8 u64 fields and the reject byte.
    const at = 1 + 1 + 8 * 6 + 1 + 8 * 2;
    new DataView(bytes.buffer).setUint32(at, 0xffffffff, true);
    expect(() => decodeMessage(bytes)).toThrow(/entry count/);
    expect(() => decodeMessage(new Uint8Array([9]))).toThrow(/version 9/);
    expect(() => decodeMessage(new Uint8Array(70 * 1024 * 1024))).toThrow(/limit/);
  });
});

describe('conf change and configuration codecs', () => {
  it('round-trip', () => {
    fc.assert(
      fc.property(confChange, (c) => {
        expect(decodeConfChange(encodeConfChange(c))).toEqual(c);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(configuration, (c) => {
        expect(decodeConfiguration(encodeConfiguration(c))).toEqual(c);
      }),
      { numRuns: 500 },
    );
  });

  it('garbage is a RaftCodecError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 60 }), (b) => {
        for (const decode of [decodeConfChange, decodeConfiguration]) {
          try {
            decode(b);
          } catch (e) {
            expect(e).toBeInstanceOf(RaftCodecError);
          }
        }
      }),
      { numRuns: 2000 },
    );
    const dup = encodeConfiguration({ members: [{ id: 1, address: 'a', role: 'voter' }, { id: 2, address: 'b', role: 'voter' }] });
    dup[1 + 4 + 8 + 1 + 2 + 1] = 1; // second member's id := 1
    expect(() => decodeConfiguration(dup)).toThrow(/twice/);
  });
});

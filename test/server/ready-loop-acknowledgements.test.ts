/**
 * The acknowledgements a follower's durable write releases: an acceptance that a later one to the
 * same leader in the same term supersedes stays home; rejections, other leaders and other terms
 * are kept, in Raft's order.
 */
import { describe, expect, test } from 'vitest';
import { MessageType, type Message } from '../../src/raft/index.ts';
import { withoutSupersededAcknowledgements } from '../../src/server/ready-loop.ts';

function ack(index: number, options: { to?: number; term?: number; reject?: boolean } = {}): Message {
  return {
    type: MessageType.AppendResponse,
    from: 2,
    to: options.to ?? 1,
    term: options.term ?? 5,
    logTerm: 0,
    index,
    commit: 0,
    reject: options.reject ?? false,
    rejectHint: 0,
    context: 0,
    entries: [],
  };
}

const shown = (messages: Message[]): string[] => messages.map((m) => `${m.reject ? 'reject' : 'accept'} ${m.index} to ${m.to} term ${m.term}`);

describe('withoutSupersededAcknowledgements', () => {
  test('acceptances up to a later, higher or equal one to the same leader in the same term are dropped', () => {
    expect(shown(withoutSupersededAcknowledgements([ack(10), ack(11), ack(11), ack(13)]))).toEqual(['accept 13 to 1 term 5']);
  });

  test('an acceptance a later lower one follows is kept (the lower one tells the leader less)', () => {
    expect(shown(withoutSupersededAcknowledgements([ack(12), ack(11)]))).toEqual(['accept 12 to 1 term 5', 'accept 11 to 1 term 5']);
  });

  test('rejections stay, in order, and do not supersede the acceptances before them', () => {
    expect(shown(withoutSupersededAcknowledgements([ack(10), ack(12, { reject: true }), ack(9), ack(11, { reject: true })]))).toEqual([
      'accept 10 to 1 term 5',
      'reject 12 to 1 term 5',
      'accept 9 to 1 term 5',
      'reject 11 to 1 term 5',
    ]);
  });

  test('acknowledgements to another leader or in another term are not superseded', () => {
    expect(shown(withoutSupersededAcknowledgements([ack(10), ack(8, { to: 3, term: 6 }), ack(11, { term: 6 }), ack(9, { to: 3, term: 6 })]))).toEqual([
      'accept 10 to 1 term 5',
      'accept 11 to 1 term 6',
      'accept 9 to 3 term 6',
    ]);
  });
});

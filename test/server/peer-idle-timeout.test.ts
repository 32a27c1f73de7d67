import { describe, expect, it } from 'vitest';
import { peerIdleTimeoutMs } from '../../src/server/peer-idle-timeout.ts';

describe('peerIdleTimeoutMs', () => {
  it('keeps 5000 ms at the default tick', () => {
    expect(peerIdleTimeoutMs(100, 10)).toBe(5000);
  });
  it('outlasts several election timeouts with a slow tick', () => {
    expect(peerIdleTimeoutMs(1000, 10)).toBe(30000);
  });
});

import { describe, expect, test } from 'vitest';
import { AdminPolicy, hostOf, parseAllowList } from '../../src/server/admin-policy.ts';
import type { ByteStream } from '../../src/runtime.ts';

function from(remoteAddress: string, authenticated?: boolean): ByteStream {
  return {
    remoteAddress,
    ...(authenticated !== undefined && { authenticated }),
    write: () => true,
    onData: () => {},
    onClose: () => {},
    close: () => {},
  };
}

describe('admin policy', () => {
  test('default: loopback only, in every spelling Node gives remote addresses', () => {
    const policy = new AdminPolicy();
    for (const address of ['127.0.0.1:5000', '127.8.9.10:1', '::1:5000', '[::1]:5000', '::ffff:127.0.0.1:5000']) {
      expect(policy.refusal(from(address), 'remove'), address).toBeUndefined();
    }
    for (const address of ['10.0.0.1:5000', '::ffff:10.0.0.1:5000', 'fe80::1:5000', 'in-page:1', '']) {
      expect(policy.refusal(from(address), 'remove')?.code, address).toBe(23);
    }
  });

  test('none refuses everyone unauthenticated; authenticated streams pass any policy', () => {
    const policy = new AdminPolicy({ allow: 'none' });
    const refusal = policy.refusal(from('127.0.0.1:1'), 'transfer');
    expect(refusal?.message).toMatch(/not authorized: transfer changes the cluster.*--admin-allow \(now: none\)/);
    expect(policy.refusal(from('10.9.9.9:1', true), 'transfer')).toBeUndefined();
    expect(new AdminPolicy({ tls: true }).refusal(from('127.0.0.1:1'), 'add')?.message).toMatch(/client certificate/);
    expect(new AdminPolicy({ tls: true }).refusal(from('127.0.0.1:1', true), 'add')).toBeUndefined();
  });

  test('IPs, IPv6 spellings and IPv4 blocks', () => {
    const policy = new AdminPolicy({ allow: '10.1.2.3, 192.168.0.0/16, 2001:db8::7' });
    expect(policy.refusal(from('10.1.2.3:9'), 'weight')).toBeUndefined();
    expect(policy.refusal(from('10.1.2.4:9'), 'weight')).toBeDefined();
    expect(policy.refusal(from('192.168.44.1:9'), 'weight')).toBeUndefined();
    expect(policy.refusal(from('192.169.0.1:9'), 'weight')).toBeDefined();
    expect(policy.refusal(from('[2001:0db8:0:0:0:0:0:7]:9'), 'weight')).toBeUndefined();
    expect(policy.refusal(from('127.0.0.1:9'), 'weight')).toBeDefined();
  });

  test('bad entries are refused with the entry named', () => {
    expect(() => parseAllowList('10.0.0.0/33')).toThrow(/"10.0.0.0\/33"/);
    expect(() => parseAllowList('example.com')).toThrow(/"example.com" is not an IP address/);
    expect(() => parseAllowList('300.1.1.1')).toThrow(/not an IP/);
    expect(() => parseAllowList(' , ')).toThrow(/empty/);
    expect(parseAllowList('none')).toEqual([]);
    expect(hostOf('[::1]:80')).toBe('::1');
    expect(hostOf('::1:80')).toBe('::1');
  });
});

/**
 * The certificate issuer (src/cert) checked by independent verifiers: Node's X509Certificate
 * (OpenSSL inside) and, where installed, the openssl command itself.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CertificateError,
  issueLeaf,
  makeClusterCa,
  makeSingleClusterCertificate,
  parseIpAddress,
  readCertificate,
  decodePem,
  clusterNameOf,
  certificatePem,
} from '../../src/cert/index.ts';
import { namedBits, oid, time, unsignedInteger, readNode, DerError } from '../../src/cert/der.ts';
import { resolveTlsSettings, TlsSetupError } from '../../runtimes/node/tls.ts';
import { localClusterTls } from '../../bin/cert.ts';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const work = mkdtempSync(join(tmpdir(), 'dqlite-wasm-certs-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

describe('DER encoding (X.690 examples)', () => {
  it('encodes object identifiers, named bits, integers and times as DER requires', () => {
    // X.690 8.19.5's example arc and RSA's well-known 1.2.840.113549.
    expect(hex(oid('1.2.840.113549'))).toBe('06062a864886f70d');
    // keyUsage digitalSignature alone: 7 unused bits, one byte 0x80 (RFC 5280's common case).
    expect(hex(namedBits([0]))).toBe('03020780');
    // digitalSignature + keyCertSign + cRLSign: bits 0, 5, 6 -> 0x86 with one unused bit.
    expect(hex(namedBits([0, 5, 6]))).toBe('03020186');
    // A magnitude with the high bit set gets a 0x00 sign byte; leading zeros go.
    expect(hex(unsignedInteger(Uint8Array.of(0x80)))).toBe('02020080');
    expect(hex(unsignedInteger(Uint8Array.of(0, 0, 5)))).toBe('020105');
    expect(Buffer.from(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59)))).toString('latin1').slice(2)).toBe('491231235959Z');
    expect(Buffer.from(time(new Date(Date.UTC(2050, 0, 1, 0, 0, 0)))).toString('latin1').slice(2)).toBe('20500101000000Z');
  });

  it('refuses truncated input with a DerError', () => {
    expect(() => readNode(Uint8Array.of(0x30, 0x05, 0x02))).toThrow(DerError);
    expect(() => readNode(Uint8Array.of(0x30))).toThrow(DerError);
  });

  it('parses IPv4 and IPv6 text to the bytes of an iPAddress name', () => {
    expect(hex(parseIpAddress('127.0.0.1')!)).toBe('7f000001');
    expect(hex(parseIpAddress('::1')!)).toBe('00000000000000000000000000000001');
    expect(hex(parseIpAddress('[fe80::1:2]')!)).toBe('fe800000000000000000000000010002');
    expect(hex(parseIpAddress('::ffff:10.0.0.1')!)).toBe('00000000000000000000ffff0a000001');
    for (const bad of ['256.0.0.1', '1.2.3', 'a::b::c', 'host.example', '01.2.3.4', '1:2:3:4:5:6:7:8:9']) {
      expect(parseIpAddress(bad), bad).toBeUndefined();
    }
  });
});

describe('cluster certificates', async () => {
  const ca = await makeClusterCa({ clusterName: 'orders-db' });
  const node = await issueLeaf({ ca, kind: 'node', commonName: 'node one', ipAddresses: ['127.0.0.1', '::1'], dnsNames: ['db1.example'] });
  const client = await issueLeaf({ ca, kind: 'client', commonName: 'alice' });
  const otherCa = await makeClusterCa({ clusterName: 'orders-db' });

  it('a CA that signs, with the cluster name recorded', () => {
    const caCert = new X509Certificate(ca.certPem);
    expect(caCert.ca).toBe(true);
    expect(caCert.verify(caCert.publicKey)).toBe(true);
    expect(caCert.subject).toContain('CN=orders-db cluster CA');
    expect(clusterNameOf(ca.certPem)).toBe('orders-db');
  });

  it('a node certificate signed by the CA, for the cluster name and its addresses, server and client use', () => {
    const [leafPem, chainPem] = decodePem(node.certPem).map((b) => b.der);
    expect(chainPem, 'the CA certificate follows the node certificate').toBeDefined();
    const leaf = new X509Certificate(Buffer.from(leafPem!));
    const caCert = new X509Certificate(ca.certPem);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.verify(new X509Certificate(otherCa.certPem).publicKey)).toBe(false);
    expect(leaf.ca).toBe(false);
    expect(leaf.subjectAltName?.split(', ')[0]).toBe('DNS:orders-db');
    expect(leaf.checkHost('orders-db')).toBe('orders-db');
    expect(leaf.checkHost('db1.example')).toBe('db1.example');
    expect(leaf.checkHost('other.example')).toBeUndefined();
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(leaf.checkIP('::1')).toBe('::1');
    expect(leaf.checkIP('10.0.0.1')).toBeUndefined();
    expect(leaf.keyUsage).toEqual(expect.arrayContaining([SERVER_AUTH, CLIENT_AUTH]));
    expect(leaf.checkPrivateKey(createPrivateKey(node.keyPem))).toBe(true);
    expect(readCertificate(leafPem!).dnsNames).toEqual(['orders-db', 'db1.example']);
  });

  it('a client certificate is for client use only', () => {
    const leaf = new X509Certificate(client.certPem);
    expect(leaf.keyUsage).toEqual([CLIENT_AUTH]);
    expect(leaf.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
  });

  it('go-dqlite single certificate: self-signed, a CA, both uses, the cluster name first', async () => {
    const single = await makeSingleClusterCertificate({ clusterName: 'dqlite', ipAddresses: ['127.0.0.1'] });
    const cert = new X509Certificate(single.certPem);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.ca).toBe(true);
    expect(cert.subjectAltName).toBe('DNS:dqlite, IP Address:127.0.0.1');
    expect(cert.keyUsage).toEqual(expect.arrayContaining([SERVER_AUTH, CLIENT_AUTH]));
    expect(createPublicKey(single.keyPem).asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('bad requests get a CertificateError that says what is wrong', async () => {
    await expect(issueLeaf({ ca, kind: 'node', commonName: 'n', ipAddresses: ['300.1.1.1'] })).rejects.toThrow(/not an IPv4 or IPv6 address/);
    await expect(issueLeaf({ ca, kind: 'node', commonName: 'n', dnsNames: ['bad name'] })).rejects.toThrow(CertificateError);
    await expect(issueLeaf({ ca, kind: 'node', commonName: '' })).rejects.toThrow(/common name/);
    await expect(issueLeaf({ ca: { certPem: ca.certPem, keyPem: 'garbage' }, kind: 'node', commonName: 'n' })).rejects.toThrow(/PRIVATE KEY/);
    await expect(makeClusterCa({ days: 0 })).rejects.toThrow(/days/);
  });

  it('resolveTlsSettings refuses a key of another certificate and takes the first DNS name as server name', () => {
    expect(() => resolveTlsSettings({ cert: node.certPem, key: client.keyPem, ca: ca.certPem })).toThrow(TlsSetupError);
    expect(() => resolveTlsSettings({ cert: 'not a certificate', key: node.keyPem })).toThrow(/not a PEM certificate/);
    expect(resolveTlsSettings({ cert: node.certPem, key: node.keyPem, ca: ca.certPem }).serverName).toBe('orders-db');
  });

  it('openssl verifies the chain, and a certificate of another CA does not', () => {
    const dir = mkdtempSync(join(work, 'openssl-'));
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
    writeFileSync(join(dir, 'other-ca.crt'), otherCa.certPem);
    // The leaf alone: the file `cert node` writes also holds the CA, which would verify itself.
    writeFileSync(join(dir, 'node.crt'), certificatePem(decodePem(node.certPem)[0]!.der));
    writeFileSync(join(dir, 'client.crt'), certificatePem(decodePem(client.certPem)[0]!.der));
    expect(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'node.crt')]).toString()).toContain(': OK');
    expect(execFileSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.crt'), join(dir, 'node.crt')]).toString()).toContain(': OK');
    expect(execFileSync('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'ca.crt'), join(dir, 'client.crt')]).toString()).toContain(': OK');
    const refused = spawnSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.crt'), join(dir, 'client.crt')]);
    expect(refused.status, 'a client certificate is not a server certificate').not.toBe(0);
    const otherCaRun = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'other-ca.crt'), join(dir, 'node.crt')]);
    expect(otherCaRun.status).not.toBe(0);
    const text = execFileSync('openssl', ['x509', '-in', join(dir, 'node.crt'), '-noout', '-text']).toString();
    expect(text).toContain('CA:FALSE');
    expect(text).toContain('DNS:orders-db, DNS:db1.example, IP Address:127.0.0.1');
    expect(text).toContain('TLS Web Server Authentication, TLS Web Client Authentication');
    const caText = execFileSync('openssl', ['x509', '-in', join(dir, 'ca.crt'), '-noout', '-text']).toString();
    expect(caText).toContain('CA:TRUE');
    expect(caText).toContain('Digital Signature, Certificate Sign, CRL Sign');
  });

  it('reads the DNS names of a certificate openssl made (go-dqlite\'s recipe)', () => {
    const dir = mkdtempSync(join(work, 'recipe-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-sha256', '-days', '1', '-nodes',
      '-keyout', join(dir, 'cluster.key'), '-out', join(dir, 'cluster.crt'), '-subj', '/CN=example.com',
      '-addext', 'subjectAltName=DNS:first.example,DNS:second.example,IP:127.0.0.1',
    ], { stdio: 'ignore' });
    const pem = readFileSync(join(dir, 'cluster.crt'), 'utf8');
    expect(readCertificate(decodePem(pem)[0]!.der).dnsNames).toEqual(['first.example', 'second.example']);
  });
});

describe('dqlite-wasm cluster --tls: local cluster certificates', () => {
  it('makes a CA, node and client certificates once and reuses them', async () => {
    const dir = mkdtempSync(join(work, 'local-'));
    const first = await localClusterTls(dir, 'ca', '127.0.0.1', 2);
    const args = first.nodeArgs(1);
    expect(args).toEqual(['--tls-cert', join(dir, 'node2.crt'), '--tls-key', join(dir, 'node2.key'), '--tls-ca', join(dir, 'ca', 'ca.crt')]);
    const nodeCert = readFileSync(join(dir, 'node2.crt'), 'utf8');
    const leaf = new X509Certificate(nodeCert);
    expect(leaf.verify(new X509Certificate(readFileSync(join(dir, 'ca', 'ca.crt'))).publicKey)).toBe(true);
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    await localClusterTls(dir, 'ca', '127.0.0.1', 2);
    expect(readFileSync(join(dir, 'node2.crt'), 'utf8'), 'a second run keeps the certificates').toBe(nodeCert);
    await expect(localClusterTls(dir, 'bogus', '127.0.0.1', 2)).rejects.toThrow(/--tls must be/);
  });
});

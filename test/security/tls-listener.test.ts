/**
 * The one-port listener with mutual TLS, on real sockets: raw dqlite bytes, HTTPS and wss all
 * through one port, with certificates from `src/cert`; plaintext, missing and foreign
 * certificates are refused.
 */
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { issueLeaf, makeClusterCa, makeSingleClusterCertificate, type PemPair } from '../../src/cert/index.ts';
import type { ByteStream } from '../../src/runtime.ts';
import {
  clientTlsOptions,
  listen,
  resolveTlsSettings,
  tlsStreamDialer,
  webSocketDialer,
  type ConnectionInfo,
  type Listener,
  type TlsSettings,
} from '../../runtimes/node/index.ts';
import { throttledLog } from '../../runtimes/node/throttled-log.ts';
import { PLAINTEXT_DQLITE_REFUSAL } from '../../runtimes/node/plaintext-refusal.ts';
import { connect, dialTcp } from '../../runtimes/node/client.ts';
import { decodeResponse, encodeRequest, encodeVersion } from '../../src/protocol/index.ts';

const listeners: Listener[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((listener) => listener.close()));
});

interface Seen {
  streams: ConnectionInfo[];
  http: ConnectionInfo[];
  tlsErrors: string[];
}

async function startTlsListener(tls: TlsSettings, tlsWebSocketsWithoutCertificate = false, firstByteTimeoutMs = 10_000): Promise<{ listener: Listener; seen: Seen }> {
  const seen: Seen = { streams: [], http: [], tlsErrors: [] };
  const listener = await listen({
    host: '127.0.0.1',
    port: 0,
    firstByteTimeoutMs,
    tls,
    tlsWebSocketsWithoutCertificate,
    onTlsError: (_remote, error) => seen.tlsErrors.push(error.message),
    onStream: (stream, connection) => {
      seen.streams.push(connection);
      stream.onData((chunk) => stream.write(chunk));
    },
    onWebSocket: (channel) => channel.onMessage((message) => channel.send(message)),
    onHttp: (request) => {
      seen.http.push(request.connection);
      return { status: 200, body: `hello ${request.connection.peerCertificateSubject ?? 'nobody'}\n` };
    },
  });
  listeners.push(listener);
  return { listener, seen };
}

function echoOnce(stream: ByteStream, bytes: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const received: number[] = [];
    stream.onData((chunk) => {
      received.push(...chunk);
      if (received.length >= bytes.byteLength) resolve(Uint8Array.from(received));
    });
    stream.onClose((error) => reject(error ?? new Error('closed')));
    stream.write(bytes.subarray(0, 1));
    stream.write(bytes.subarray(1));
  });
}

function httpsGet(address: string, tls: TlsSettings): Promise<{ status: number; body: string }> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const request = httpsRequest({ host, port: Number(port), path: '/health', ...clientTlsOptions(tls, host), agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

function plaintext(address: string, bytes: string): Promise<string> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const socket = netConnect(Number(port), host, () => socket.write(bytes, 'latin1'));
    let out = '';
    socket.on('data', (chunk: Buffer) => (out += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(out));
  });
}

describe('listener with mutual TLS (CA and per-node certificates)', async () => {
  const ca = await makeClusterCa({ clusterName: 'testcluster' });
  const node = await issueLeaf({ ca, kind: 'node', commonName: 'node1', ipAddresses: ['127.0.0.1'] });
  const client = await issueLeaf({ ca, kind: 'client', commonName: 'alice' });
  const foreignCa = await makeClusterCa({ clusterName: 'testcluster' });
  const foreign = await issueLeaf({ ca: foreignCa, kind: 'client', commonName: 'mallory' });
  const settings = (pair: PemPair, trust: PemPair = ca): TlsSettings => resolveTlsSettings({ cert: pair.certPem, key: pair.keyPem, ca: trust.certPem });

  it('carries raw dqlite bytes, HTTPS and wss on one port, and tells who connected', async () => {
    const { listener, seen } = await startTlsListener(settings(node));
    const stream = await tlsStreamDialer(settings(client))(listener.address);
    const echoed = await echoOnce(stream, Uint8Array.of(0x01, 0x02, 0x03, 0x04));
    expect([...echoed]).toEqual([1, 2, 3, 4]);
    stream.close();
    expect(seen.streams[0]).toMatchObject({ secure: true });
    expect(seen.streams[0]!.peerCertificateSubject).toContain('CN=alice');

    const response = await httpsGet(listener.address, settings(client));
    expect(response.status).toBe(200);
    expect(response.body).toContain('CN=alice');

    const channel = await webSocketDialer(settings(client))(`wss://${listener.address}/raft`);
    const reply = new Promise<Uint8Array>((resolve) => channel.onMessage(resolve));
    channel.send(Uint8Array.of(9, 8, 7));
    expect([...(await reply)]).toEqual([9, 8, 7]);
    channel.close();
  });

  it('refuses plaintext HTTP with a message and plaintext dqlite by closing', async () => {
    const { listener, seen } = await startTlsListener(settings(node));
    expect(await plaintext(listener.address, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/^HTTP\/1.1 400[\s\S]*serves only TLS/);
    // A plain dqlite client gets its first request answered with a failure that names TLS.
    const firstRequest = Buffer.concat([encodeVersion(), encodeRequest({ type: 'leader' })]);
    const answer = Buffer.from(await plaintext(listener.address, firstRequest.toString('latin1')), 'latin1');
    expect(decodeResponse(new Uint8Array(answer))).toEqual({ type: 'failure', code: 23, message: PLAINTEXT_DQLITE_REFUSAL });
    // Our client, dialing plain TCP, reports that message.
    await expect(connect({ servers: [listener.address], database: 'x', dial: dialTcp, leaderDiscovery: false, timeoutMs: 2000 })).rejects.toThrow(/serves only TLS/);
    expect(seen.streams).toHaveLength(0);
    expect(seen.http).toHaveLength(0);
  });

  it('refuses a client without a certificate and one with a certificate of another CA', async () => {
    const { listener, seen } = await startTlsListener(settings(node));
    const [host, port] = listener.address.split(':') as [string, string];
    const withoutCertificate = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host, port: Number(port), ca: ca.certPem, checkServerIdentity: () => undefined }, () => socket.write(Uint8Array.of(1, 0, 0, 0)));
      socket.on('data', () => resolve('answered'));
      socket.on('error', (error) => resolve(`error: ${error.message}`));
      socket.on('close', () => resolve('closed'));
    });
    expect(withoutCertificate).not.toBe('answered');
    // Our dialer trusts our CA, so it accepts the server; the server refuses the foreign client.
    await expect(tlsStreamDialer(settings(foreign, ca))(listener.address).then((s) => echoOnce(s, Uint8Array.of(1, 2)))).rejects.toThrow();
    await expect(httpsGet(listener.address, settings(foreign, ca))).rejects.toThrow();
    expect(seen.streams).toHaveLength(0);
    expect(seen.http).toHaveLength(0);
    await expect.poll(() => seen.tlsErrors.length).toBeGreaterThanOrEqual(2);
  });

  it('garbage after a ClientHello byte, and a handshake that never comes, are dropped; the port keeps serving', async () => {
    const { listener, seen } = await startTlsListener(settings(node), false, 500);
    const garbage = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]), Buffer.from('hello, not TLS at all')]);
    // At most a TLS alert record (0x15) comes back before the close.
    expect(await plaintext(listener.address, garbage.toString('latin1'))).toMatch(/^(\x15[\s\S]*)?$/);
    const started = Date.now();
    expect(await plaintext(listener.address, '\x16')).toBe('');
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    await expect.poll(() => seen.tlsErrors.length).toBeGreaterThanOrEqual(2);
    const stream = await tlsStreamDialer(settings(client))(listener.address);
    expect([...(await echoOnce(stream, Uint8Array.of(1, 7)))]).toEqual([1, 7]);
    stream.close();
  });

  it('a client refuses a server whose certificate is of another CA', async () => {
    const foreignNode = await issueLeaf({ ca: foreignCa, kind: 'node', commonName: 'imposter', ipAddresses: ['127.0.0.1'] });
    const { listener } = await startTlsListener(settings(foreignNode, ca));
    await expect(tlsStreamDialer(settings(client))(listener.address)).rejects.toThrow(/TLS connection to .* failed/);
  });
});

describe('listener with mutual TLS and WebSockets without a certificate allowed (browsers)', async () => {
  const ca = await makeClusterCa({ clusterName: 'browsers' });
  const node = await issueLeaf({ ca, kind: 'node', commonName: 'node1', ipAddresses: ['127.0.0.1'] });
  const client = await issueLeaf({ ca, kind: 'client', commonName: 'alice' });
  const tls = resolveTlsSettings({ cert: node.certPem, key: node.keyPem, ca: ca.certPem });

  it('a WebSocket over TLS without a certificate is served; its raw dqlite and plain HTTP are not', async () => {
    const { listener, seen } = await startTlsListener(tls, true);
    const socket = new WebSocket(`wss://${listener.address}/dqlite`, { ca: ca.certPem });
    const reply = await new Promise<string>((resolve, reject) => {
      socket.once('open', () => socket.send(Buffer.from('ping')));
      socket.once('message', (data: Buffer) => resolve(data.toString()));
      socket.once('error', reject);
    });
    socket.close();
    expect(reply).toBe('ping');

    const [host, port] = listener.address.split(':') as [string, string];
    const withoutCertificate = (first: Uint8Array | string): Promise<string> =>
      new Promise((resolve) => {
        const tlsSocket = tlsConnect({ host, port: Number(port), ca: ca.certPem, checkServerIdentity: () => undefined }, () => tlsSocket.write(first));
        let out = '';
        tlsSocket.on('data', (chunk: Buffer) => (out += chunk.toString('latin1')));
        tlsSocket.on('error', () => undefined);
        tlsSocket.on('close', () => resolve(out));
      });
    expect(await withoutCertificate('GET /health HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/^HTTP\/1.1 403[\s\S]*client certificate/);
    expect(await withoutCertificate(Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0))).toBe('');
    expect(seen.streams).toHaveLength(0);
    expect(seen.http).toHaveLength(0);

    // With a certificate, everything is served as before.
    const response = await httpsGet(listener.address, resolveTlsSettings({ cert: client.certPem, key: client.keyPem, ca: ca.certPem }));
    expect(response.status).toBe(200);
  });
});

describe('listener with go-dqlite\'s single cluster certificate', async () => {
  it('serves clients holding the same certificate; the server is verified by its DNS name, not the IP', async () => {
    // No IP address in the certificate: only the cluster name, as go-dqlite's dialer checks it.
    const single = await makeSingleClusterCertificate({ clusterName: 'dqlite' });
    const tls = resolveTlsSettings({ cert: single.certPem, key: single.keyPem });
    expect(tls.serverName).toBe('dqlite');
    const { listener } = await startTlsListener(tls);
    const stream = await tlsStreamDialer(tls)(listener.address);
    expect([...(await echoOnce(stream, Uint8Array.of(1, 5)))]).toEqual([1, 5]);
    stream.close();
    // Without the cluster name to fall back on, the IP check alone fails.
    await expect(tlsStreamDialer({ ...tls, serverName: 'elsewhere' })(listener.address)).rejects.toThrow(/IP: 127.0.0.1 is not in the cert's list|does not match/);
  });
});

describe('throttledLog', () => {
  it('writes the first line of an interval and counts the ones it left out', () => {
    let nowMs = 1000;
    const lines: string[] = [];
    const log = throttledLog(10_000, (suppressed: number, what: string) => lines.push(`${what} +${suppressed}`), () => nowMs);
    log('a');
    log('b');
    log('c');
    nowMs += 10_000;
    log('d');
    expect(lines).toEqual(['a +0', 'd +2']);
  });
});

/**
 * Server side of TLS on a connection whose first bytes were already read (to sniff the
 * protocol). A TLSSocket built on a `net.Socket` reads its native handle and would miss those
 * bytes, so the socket is wrapped in a plain Duplex that replays them first.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { createServer, type TLSSocket, type TlsOptions } from 'node:tls';

function replaying(socket: Socket, first: Buffer): Duplex {
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, (error) => callback(error ?? null));
    },
    final(callback) {
      socket.end(() => callback());
    },
    destroy(error, callback) {
      socket.destroy();
      callback(error);
    },
  });
  duplex.push(first);
  socket.on('data', (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  socket.on('close', () => duplex.destroy());
  return duplex;
}

export interface UnwrapOptions {
  /** Server options with `requestCert` and `rejectUnauthorized` (see `serverTlsOptions`). */
  tlsOptions: TlsOptions;
  handshakeTimeoutMs: number;
  onSecure(tlsSocket: TLSSocket): void;
  onError(error: Error): void;
}

/**
 * Runs the handshake; `onSecure` gets the socket only once the client presented a certificate
 * that verifies against the CA. A `tls.Server` (never listening, one per connection so its
 * callbacks know which connection they serve) does the verification: a bare server-side
 * TLSSocket would not refuse an unverified certificate by itself.
 */
export function unwrapTls(socket: Socket, first: Buffer, options: UnwrapOptions): void {
  socket.pause();
  let settled = false;
  const server = createServer({ ...options.tlsOptions, handshakeTimeout: options.handshakeTimeoutMs }, (tlsSocket) => {
    settled = true;
    tlsSocket.on('error', () => tlsSocket.destroy());
    options.onSecure(tlsSocket);
  });
  server.on('tlsClientError', (error) => {
    if (settled) return;
    settled = true;
    socket.destroy();
    options.onError(error);
  });
  // A certificate that does not verify closes the connection without a tlsClientError.
  socket.once('close', () => {
    if (settled) return;
    settled = true;
    options.onError(new Error('the connection closed during the TLS handshake (a certificate not signed by the cluster CA?)'));
  });
  server.emit('connection', replaying(socket, first));
}

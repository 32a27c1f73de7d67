/**
 * What a plain dqlite client gets from a node that serves only TLS: its first request answered
 * with a failure that says so, then the connection closed (a bare close reads as a network
 * fault, and clients would retry it in silence).
 */
import type { Socket } from 'node:net';
import { encodeResponse } from '../../src/protocol/index.ts';

/** SQLite's "authorization denied". */
const SQLITE_AUTH = 23;
/** The protocol version (8 bytes) and the first request's header (8 bytes). */
const FIRST_REQUEST_BYTES = 16;
const WAIT_MS = 2_000;

export const PLAINTEXT_DQLITE_REFUSAL =
  'this node serves only TLS: connect with a client certificate of the cluster CA (dqlite -c CERT -k KEY, or connect({ tls }))';

export function refusePlaintextDqlite(socket: Socket, first: Uint8Array): void {
  let received = first.byteLength;
  const answer = (): void => {
    clearTimeout(timer);
    socket.removeAllListeners('data');
    socket.end(encodeResponse({ type: 'failure', code: SQLITE_AUTH, message: PLAINTEXT_DQLITE_REFUSAL }));
  };
  const timer = setTimeout(() => socket.destroy(), WAIT_MS);
  socket.once('close', () => clearTimeout(timer));
  if (received >= FIRST_REQUEST_BYTES) {
    answer();
    return;
  }
  socket.on('data', (chunk: Buffer) => {
    received += chunk.byteLength;
    if (received >= FIRST_REQUEST_BYTES) answer();
  });
}

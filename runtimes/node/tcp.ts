import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ByteStream, DialStream } from '../../src/runtime.ts';
import { byteStreamFromSocket } from './socket-stream.ts';
import { clientTlsOptions, type TlsSettings } from './tls.ts';

const DIAL_TIMEOUT_MS_DEFAULT = 5_000;

/** Splits "host:port", "[v6]:port" or "v6:port" (last colon) into parts. */
export function parseAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  let host = colon > 0 ? address.slice(0, colon) : '';
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`"${address}" is not a host:port address`);
  }
  return { host, port };
}

/**
 * Opens `socket` for `address` and resolves with its stream once `readyEvent` fires; `what` names
 * the connection in errors. Nagle is off: the protocol is request/response with small messages.
 */
function dialSocket(
  address: string,
  timeoutMs: number,
  what: string,
  open: (host: string, port: number) => Socket,
  readyEvent: 'connect' | 'secureConnect',
): Promise<ByteStream> {
  return new Promise<ByteStream>((resolve, reject) => {
    let host: string;
    let port: number;
    try {
      ({ host, port } = parseAddress(address));
    } catch (error) {
      reject(error);
      return;
    }
    const socket = open(host, port);
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${what} to ${address} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(readyEvent === 'secureConnect' ? new Error(`${what} to ${address} failed: ${error.message}`) : error);
    };
    socket.once('error', onError);
    socket.once(readyEvent, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(byteStreamFromSocket(socket));
    });
  });
}

/** Dials TCP. */
export const dialTcp: DialStream = (address, options) =>
  dialSocket(address, options?.timeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT, 'connecting', (host, port) => netConnect({ host, port }), 'connect');

/**
 * Dials the dqlite protocol over mutual TLS (what go-dqlite's `DialFuncWithTLS` does): our
 * certificate, the cluster CA, and the server checked as `clientTlsOptions` describes.
 */
export function tlsStreamDialer(settings: TlsSettings): DialStream {
  return (address, options) =>
    dialSocket(
      address,
      options?.timeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT,
      'TLS connection',
      (host, port) => tlsConnect({ host, port, ...clientTlsOptions(settings, host) }),
      'secureConnect',
    );
}

import { connect as netConnect } from 'node:net';
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

/** Dials TCP with Nagle off (the protocol is request/response with small messages). */
export const dialTcp: DialStream = (address, options) =>
  new Promise<ByteStream>((resolve, reject) => {
    let host: string;
    let port: number;
    try {
      ({ host, port } = parseAddress(address));
    } catch (error) {
      reject(error);
      return;
    }
    const timeoutMs = options?.timeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT;
    const socket = netConnect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connecting to ${address} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(byteStreamFromSocket(socket));
    });
  });

/**
 * Dials the dqlite protocol over mutual TLS (what go-dqlite's `DialFuncWithTLS` does): our
 * certificate, the cluster CA, and the server checked as `clientTlsOptions` describes.
 */
export function tlsStreamDialer(settings: TlsSettings): DialStream {
  return (address, options) =>
    new Promise<ByteStream>((resolve, reject) => {
      let host: string;
      let port: number;
      try {
        ({ host, port } = parseAddress(address));
      } catch (error) {
        reject(error);
        return;
      }
      const timeoutMs = options?.timeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT;
      const socket = tlsConnect({ host, port, ...clientTlsOptions(settings, host) });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`TLS connection to ${address} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (error: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`TLS connection to ${address} failed: ${error.message}`));
      };
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(byteStreamFromSocket(socket));
      });
    });
}

/**
 * Chromium cancels a `wss://` handshake when the server asks for a client certificate and the
 * browser has not yet chosen one for that server: a WebSocket cannot show the certificate picker
 * ("WebSocket opening handshake was canceled"). An HTTPS request to the same host and port first
 * makes that choice (no certificate, or the one the user picks) and Chromium remembers it, so
 * every `wss://` dial is preceded, once per server, by such a request.
 */
import type { DialWebSocket } from '../../src/runtime.ts';

/** How long the priming request may take before the dial goes ahead anyway. */
const PRIMING_TIMEOUT_MS = 5_000;

export function withCertificateChoice(dial: DialWebSocket): DialWebSocket {
  const primed = new Map<string, Promise<void>>();
  const prime = (url: URL): Promise<void> => {
    let done = primed.get(url.host);
    if (!done) {
      // The answer is opaque (no-cors) and may be a 403 for a browser without a certificate; only
      // the TLS handshake it makes matters.
      done = fetch(`https://${url.host}/health`, { mode: 'no-cors', cache: 'no-store', signal: AbortSignal.timeout(PRIMING_TIMEOUT_MS) }).then(
        () => undefined,
        () => undefined,
      );
      primed.set(url.host, done);
    }
    return done;
  };
  return async (url, options) => {
    const target = new URL(url);
    if (target.protocol === 'wss:') await prime(target);
    return dial(url, options);
  };
}

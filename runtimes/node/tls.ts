/**
 * Mutual TLS settings of a node or client on Node.js (and Deno's Node compatibility), shaped
 * like go-dqlite's `app.SimpleTLSConfig`: TLS 1.2 or later, a certificate required on both
 * sides, both verified against the cluster's CA. A server is verified against the dialed
 * address or, as go-dqlite's dialer does it, against the first DNS name of our own certificate,
 * so one cluster certificate with a DNS name works for nodes at any IP address.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate, type TlsOptions } from 'node:tls';

/** PEM text of a certificate (optionally followed by its chain), its key, and the CA to trust. */
export interface TlsOptionsPem {
  cert: string;
  key: string;
  /** The CA certificates to trust; default: the certificates in `cert` (go-dqlite's single-certificate setup). */
  ca?: string;
  /**
   * The name servers must have in their certificate besides the dialed address. Default: the
   * first DNS name of `cert`, as go-dqlite's dialer does it.
   */
  serverName?: string;
}

export class TlsSetupError extends Error {
  readonly code = 'TLS_SETUP_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'TlsSetupError';
  }
}

/** Checked and resolved TLS material, ready for servers and dialers. */
export interface TlsSettings {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly serverName: string | undefined;
  /** The subject of our own certificate, for logs. */
  readonly subject: string;
}

export const TLS_MIN_VERSION = 'TLSv1.2';

function firstCertificate(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new TlsSetupError(`${what} is not a PEM certificate (${(error as Error).message})`);
  }
}

function firstDnsName(certificate: X509Certificate): string | undefined {
  for (const entry of (certificate.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) return entry.slice(4);
  }
  return undefined;
}

/** Validates the material (key matches certificate, certificate current) with errors a person can act on. */
export function resolveTlsSettings(options: TlsOptionsPem, now = new Date()): TlsSettings {
  const certificate = firstCertificate(options.cert, 'the TLS certificate (--tls-cert)');
  let key;
  try {
    key = createPrivateKey(options.key);
  } catch (error) {
    throw new TlsSetupError(`the TLS key (--tls-key) is not a PEM private key (${(error as Error).message})`);
  }
  if (!certificate.checkPrivateKey(key)) {
    throw new TlsSetupError(`the TLS key (--tls-key) does not belong to the certificate for "${certificate.subject.replace(/\n/g, ', ')}"`);
  }
  if (new Date(certificate.validTo) < now) throw new TlsSetupError(`the TLS certificate expired on ${certificate.validTo}: make a new one with "dqlite-wasm cert"`);
  if (new Date(certificate.validFrom) > now) throw new TlsSetupError(`the TLS certificate is valid only from ${certificate.validFrom}: check this machine's clock`);
  const ca = options.ca ?? options.cert;
  firstCertificate(ca, 'the TLS CA (--tls-ca)');
  return {
    cert: options.cert,
    key: options.key,
    ca,
    serverName: options.serverName ?? firstDnsName(certificate),
    subject: certificate.subject.replace(/\n/g, ', '),
  };
}

/** A listening node: its certificate, and a certificate of the CA required from every client. */
export function serverTlsOptions(settings: TlsSettings): TlsOptions {
  return {
    cert: settings.cert,
    key: settings.key,
    ca: settings.ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: TLS_MIN_VERSION,
  };
}

/** Dialing `host`: our certificate, the CA, and the server identity check described above. */
export function clientTlsOptions(settings: TlsSettings, host: string): ConnectionOptions {
  const serverName = settings.serverName;
  return {
    cert: settings.cert,
    key: settings.key,
    ca: settings.ca,
    minVersion: TLS_MIN_VERSION,
    rejectUnauthorized: true,
    // SNI carries host names only; go-dqlite sends the cluster name there too.
    ...(serverName && isIP(serverName) === 0 ? { servername: serverName } : isIP(host) === 0 ? { servername: host } : {}),
    checkServerIdentity: (_name: string, certificate: PeerCertificate): Error | undefined => {
      const byAddress = checkServerIdentity(host, certificate);
      if (!byAddress || !serverName) return byAddress;
      return checkServerIdentity(serverName, certificate) ? byAddress : undefined;
    },
  };
}

/**
 * The certificates a TLS cluster needs, as `dqlite-wasm cert` makes them: a cluster CA, node and
 * client certificates signed by it, or go-dqlite's single self-signed cluster certificate.
 *
 * go-dqlite's dialer (`app.SimpleDialTLSConfig`, used by the `dqlite` shell) trusts only the
 * certificates in its own certificate file and verifies a server against the *first DNS name of
 * its own certificate*. So every certificate of a cluster carries the cluster's DNS name first,
 * and issued certificate files hold the CA's certificate after their own.
 */
import {
  certificatePem,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  issueCertificate,
  readCertificate,
  selfSigner,
  CertificateError,
  type ExtendedKeyUsage,
} from './certificate.ts';
import { decodePem } from './pem.ts';

export const CLUSTER_NAME_DEFAULT = 'dqlite';
export const CA_DAYS_DEFAULT = 3650;
export const LEAF_DAYS_DEFAULT = 825;
const DAY_MS = 86_400_000;
/** Clocks of a cluster differ a little; a certificate made now must already hold on them. */
const BACKDATE_MS = 3_600_000;

export interface PemPair {
  /** One or more certificates, leaf first. */
  certPem: string;
  /** PKCS#8 private key. */
  keyPem: string;
}

function validity(days: number, now: Date): { notBefore: Date; notAfter: Date } {
  if (!Number.isInteger(days) || days < 1 || days > 36_500) throw new CertificateError('CERT_INVALID_REQUEST', `days must be a whole number from 1 to 36500, got ${days}`);
  return { notBefore: new Date(now.getTime() - BACKDATE_MS), notAfter: new Date(now.getTime() + days * DAY_MS) };
}

export interface CaOptions {
  /** The cluster's DNS name: the first DNS name of every certificate this CA issues. */
  clusterName?: string;
  days?: number;
  now?: Date;
}

export async function makeClusterCa(options: CaOptions = {}): Promise<PemPair> {
  const clusterName = options.clusterName ?? CLUSTER_NAME_DEFAULT;
  const keys = await generateKeyPair();
  const request = {
    commonName: `${clusterName} cluster CA`.slice(0, 64),
    organization: 'dqlite-wasm',
    // Not a host name to connect to: it records the cluster name for the certificates it issues.
    dnsNames: [clusterName],
    isCa: true,
    ...validity(options.days ?? CA_DAYS_DEFAULT, options.now ?? new Date()),
    publicKey: keys.publicKey,
  };
  const der = await issueCertificate(request, await selfSigner(request, keys.privateKey));
  return { certPem: certificatePem(der), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

export interface LeafOptions {
  ca: PemPair;
  kind: 'node' | 'client';
  commonName: string;
  /** Extra DNS names after the cluster name. */
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  days?: number;
  now?: Date;
}

/** The cluster name a CA records (its first DNS name), or the default. */
export function clusterNameOf(caCertPem: string): string {
  const first = decodePem(caCertPem).find((b) => b.label === 'CERTIFICATE');
  if (!first) throw new CertificateError('CERT_UNREADABLE', 'the CA certificate file holds no "-----BEGIN CERTIFICATE-----" block');
  return readCertificate(first.der).dnsNames[0] ?? CLUSTER_NAME_DEFAULT;
}

/**
 * A node certificate (server and client use: nodes dial each other) or a client certificate
 * (client use only), signed by `ca`. The returned certificate PEM is followed by the CA's.
 */
export async function issueLeaf(options: LeafOptions): Promise<PemPair> {
  const caBlock = decodePem(options.ca.certPem).find((b) => b.label === 'CERTIFICATE');
  if (!caBlock) throw new CertificateError('CERT_UNREADABLE', 'the CA certificate file holds no "-----BEGIN CERTIFICATE-----" block');
  const ca = readCertificate(caBlock.der);
  const caKey = await importPrivateKeyPem(options.ca.keyPem, 'the CA key');
  const clusterName = ca.dnsNames[0] ?? CLUSTER_NAME_DEFAULT;
  const keys = await generateKeyPair();
  const usages: ExtendedKeyUsage[] = options.kind === 'node' ? ['server', 'client'] : ['client'];
  const dnsNames = [clusterName, ...(options.dnsNames ?? []).filter((name) => name !== clusterName)];
  const der = await issueCertificate(
    {
      commonName: options.commonName,
      organization: 'dqlite-wasm',
      dnsNames,
      ipAddresses: options.ipAddresses ?? [],
      isCa: false,
      usages,
      ...validity(options.days ?? LEAF_DAYS_DEFAULT, options.now ?? new Date()),
      publicKey: keys.publicKey,
    },
    { subjectDer: ca.subjectDer, publicKeyDer: ca.publicKeyDer, privateKey: caKey },
  );
  return { certPem: certificatePem(der) + certificatePem(caBlock.der), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

export interface SingleCertificateOptions {
  /** First DNS name: what go-dqlite dialers verify every server against. */
  clusterName?: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  days?: number;
  now?: Date;
}

/**
 * go-dqlite's usual setup: one self-signed certificate that is every node's and client's
 * identity and the CA (as `openssl req -x509 … -addext subjectAltName=DNS:…,IP:…` makes it).
 */
export async function makeSingleClusterCertificate(options: SingleCertificateOptions = {}): Promise<PemPair> {
  const clusterName = options.clusterName ?? CLUSTER_NAME_DEFAULT;
  const keys = await generateKeyPair();
  const request = {
    commonName: clusterName,
    organization: 'dqlite-wasm',
    dnsNames: [clusterName, ...(options.dnsNames ?? []).filter((name) => name !== clusterName)],
    ipAddresses: options.ipAddresses ?? [],
    isCa: true,
    usages: ['server', 'client'] as ExtendedKeyUsage[],
    ...validity(options.days ?? CA_DAYS_DEFAULT, options.now ?? new Date()),
    publicKey: keys.publicKey,
  };
  const der = await issueCertificate(request, await selfSigner(request, keys.privateKey));
  return { certPem: certificatePem(der), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Issues X.509 v3 certificates (RFC 5280) with ECDSA P-256 keys through WebCrypto, which Node,
 * Deno and browsers all have: a cluster CA, node and client certificates signed by it, and
 * go-dqlite's single self-signed cluster certificate. Also reads back the few fields issuing
 * needs from an existing certificate (subject, public key, DNS names).
 */
import {
  bitString,
  boolean,
  children,
  DerError,
  explicit,
  implicitPrimitive,
  namedBits,
  octetString,
  oid,
  readNode,
  sequence,
  setOf,
  smallInteger,
  TAG,
  time,
  unsignedInteger,
  utf8String,
  type DerNode,
} from './der.ts';
import { parseIpAddress } from './ip-address.ts';
import { decodePemBlock, encodePem } from './pem.ts';

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** keyUsage bit numbers (RFC 5280 4.2.1.3). */
const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** P-256: r and s are 32 bytes each in WebCrypto's fixed-width signature. */
const P256_SCALAR_BYTES = 32;
const SERIAL_BYTES = 16;
/** A name in a certificate is bounded; RFC 5280's upper bound for a common name is 64. */
export const COMMON_NAME_CHARS_MAX = 64;
export const SUBJECT_ALT_NAMES_MAX = 100;

export class CertificateError extends Error {
  constructor(
    readonly code: 'CERT_INVALID_REQUEST' | 'CERT_UNSUPPORTED_KEY' | 'CERT_UNREADABLE',
    message: string,
  ) {
    super(message);
    this.name = 'CertificateError';
  }
}

export type ExtendedKeyUsage = 'server' | 'client';

export interface CertificateRequest {
  commonName: string;
  organization?: string;
  dnsNames?: readonly string[];
  /** IPv4 or IPv6 text. */
  ipAddresses?: readonly string[];
  /** A certificate authority: may sign other certificates. */
  isCa: boolean;
  /** extKeyUsage; empty or absent leaves the extension out (any use). */
  usages?: readonly ExtendedKeyUsage[];
  notBefore: Date;
  notAfter: Date;
  /** The key the certificate is for. */
  publicKey: CryptoKey;
}

/** Who signs: the issuer's subject and public key (from its certificate) and its private key. */
export interface Signer {
  /** The issuer's subject Name, DER, exactly as in its certificate. */
  subjectDer: Uint8Array;
  /** The issuer's SubjectPublicKeyInfo, DER. */
  publicKeyDer: Uint8Array;
  privateKey: CryptoKey;
}

/** A copy WebCrypto's types accept (they refuse views that might be over shared memory). */
function own(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

function subtle(): SubtleCrypto {
  const api = globalThis.crypto?.subtle;
  if (!api) throw new CertificateError('CERT_UNSUPPORTED_KEY', 'this host has no WebCrypto (crypto.subtle): certificates cannot be made here');
  return api;
}

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await subtle().generateKey(EC_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return encodePem('PRIVATE KEY', new Uint8Array(await subtle().exportKey('pkcs8', key)));
}

/** A PKCS#8 "PRIVATE KEY" PEM holding an ECDSA P-256 key, as `generateKeyPair` makes. */
export async function importPrivateKeyPem(pem: string, what: string): Promise<CryptoKey> {
  const der = decodePemBlock(pem, 'PRIVATE KEY', what);
  try {
    return await subtle().importKey('pkcs8', own(der), EC_ALGORITHM, false, ['sign']);
  } catch (error) {
    throw new CertificateError(
      'CERT_UNSUPPORTED_KEY',
      `${what} is not an ECDSA P-256 key in PKCS#8 (${(error as Error).message}): make the CA with "dqlite-wasm cert ca"`,
    );
  }
}

export function encodeName(commonName: string, organization?: string): Uint8Array {
  const attribute = (type: string, value: string): Uint8Array => setOf(sequence(oid(type), utf8String(value)));
  return sequence(...(organization ? [attribute(OID.organization, organization)] : []), attribute(OID.commonName, commonName));
}

function randomSerial(): Uint8Array {
  const serial = globalThis.crypto.getRandomValues(new Uint8Array(SERIAL_BYTES));
  // Positive and exactly SERIAL_BYTES long (RFC 5280: at most 20 bytes, positive).
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
async function keyIdentifier(publicKeyDer: Uint8Array): Promise<Uint8Array> {
  const [, keyBits] = children(readNode(publicKeyDer));
  if (!keyBits || keyBits.tag !== TAG.bitString) throw new CertificateError('CERT_UNREADABLE', 'a SubjectPublicKeyInfo without its key bits');
  return new Uint8Array(await subtle().digest('SHA-1', own(keyBits.content.subarray(1))));
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

function validateRequest(request: CertificateRequest): void {
  const fail = (message: string): never => {
    throw new CertificateError('CERT_INVALID_REQUEST', message);
  };
  if (request.commonName.length === 0 || request.commonName.length > COMMON_NAME_CHARS_MAX) {
    fail(`the common name must have 1 to ${COMMON_NAME_CHARS_MAX} characters, got "${request.commonName}"`);
  }
  const names = (request.dnsNames?.length ?? 0) + (request.ipAddresses?.length ?? 0);
  if (names > SUBJECT_ALT_NAMES_MAX) fail(`at most ${SUBJECT_ALT_NAMES_MAX} DNS names and IP addresses, got ${names}`);
  for (const name of request.dnsNames ?? []) {
    if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(name)) {
      fail(`"${name}" is not a DNS name (letters, digits, hyphens and dots; an IP address goes in --ip)`);
    }
  }
  if (!(request.notBefore < request.notAfter)) fail('the certificate must become valid before it expires');
}

function subjectAltNames(request: CertificateRequest): Uint8Array | undefined {
  const names: Uint8Array[] = [];
  for (const dns of request.dnsNames ?? []) names.push(implicitPrimitive(2, new TextEncoder().encode(dns)));
  for (const ip of request.ipAddresses ?? []) {
    const bytes = parseIpAddress(ip);
    if (!bytes) throw new CertificateError('CERT_INVALID_REQUEST', `"${ip}" is not an IPv4 or IPv6 address`);
    names.push(implicitPrimitive(7, bytes));
  }
  return names.length > 0 ? sequence(...names) : undefined;
}

/** Converts WebCrypto's fixed-width r‖s to the DER `Ecdsa-Sig-Value` X.509 carries. */
function derSignature(raw: Uint8Array): Uint8Array {
  if (raw.byteLength !== 2 * P256_SCALAR_BYTES) throw new CertificateError('CERT_UNSUPPORTED_KEY', `an ECDSA P-256 signature has 64 bytes, got ${raw.byteLength}`);
  return sequence(unsignedInteger(raw.subarray(0, P256_SCALAR_BYTES)), unsignedInteger(raw.subarray(P256_SCALAR_BYTES)));
}

/** Signs `request` with `signer` (see `selfSigner` for a self-signed certificate); returns the DER. */
export async function issueCertificate(request: CertificateRequest, signer: Signer): Promise<Uint8Array> {
  validateRequest(request);
  const subjectDer = encodeName(request.commonName, request.organization);
  const publicKeyDer = new Uint8Array(await subtle().exportKey('spki', request.publicKey));
  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const keyUsageBits = request.isCa ? [KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign] : [KEY_USAGE.digitalSignature];
  const extensions: Uint8Array[] = [
    extension(OID.basicConstraints, true, request.isCa ? sequence(boolean(true)) : sequence()),
    extension(OID.keyUsage, true, namedBits(keyUsageBits)),
  ];
  if (request.usages && request.usages.length > 0) {
    extensions.push(extension(OID.extKeyUsage, false, sequence(...request.usages.map((u) => oid(u === 'server' ? OID.serverAuth : OID.clientAuth)))));
  }
  const altNames = subjectAltNames(request);
  if (altNames) extensions.push(extension(OID.subjectAltName, false, altNames));
  extensions.push(extension(OID.subjectKeyIdentifier, false, octetString(await keyIdentifier(publicKeyDer))));
  extensions.push(extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, await keyIdentifier(signer.publicKeyDer)))));

  const tbs = sequence(
    explicit(0, smallInteger(2)),
    unsignedInteger(randomSerial()),
    algorithm,
    signer.subjectDer,
    sequence(time(request.notBefore), time(request.notAfter)),
    subjectDer,
    publicKeyDer,
    explicit(3, sequence(...extensions)),
  );
  const signature = new Uint8Array(await subtle().sign(SIGN_ALGORITHM, signer.privateKey, own(tbs)));
  return sequence(tbs, algorithm, bitString(derSignature(signature)));
}

/** The signer for a self-signed certificate of `publicKey`. */
export async function selfSigner(request: Pick<CertificateRequest, 'commonName' | 'organization' | 'publicKey'>, privateKey: CryptoKey): Promise<Signer> {
  return {
    subjectDer: encodeName(request.commonName, request.organization),
    publicKeyDer: new Uint8Array(await subtle().exportKey('spki', request.publicKey)),
    privateKey,
  };
}

export function certificatePem(der: Uint8Array): string {
  return encodePem('CERTIFICATE', der);
}

export interface CertificateFields {
  subjectDer: Uint8Array;
  publicKeyDer: Uint8Array;
  /** subjectAltName dNSName entries, in order (go-dqlite verifies servers against the first). */
  dnsNames: string[];
}

/** Reads subject, public key and DNS names from a DER certificate. */
export function readCertificate(der: Uint8Array): CertificateFields {
  try {
    const [tbsNode] = children(readNode(der));
    if (!tbsNode || tbsNode.tag !== TAG.sequence) throw new DerError('no TBSCertificate');
    const fields = children(tbsNode);
    const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
    const subject = fields[offset + 4];
    const publicKey = fields[offset + 5];
    if (!subject || !publicKey) throw new DerError('TBSCertificate too short');
    const extensionsNode = fields.find((f) => f.tag === 0xa3);
    return { subjectDer: subject.bytes, publicKeyDer: publicKey.bytes, dnsNames: extensionsNode ? dnsNamesOf(extensionsNode) : [] };
  } catch (error) {
    throw new CertificateError('CERT_UNREADABLE', `not a readable X.509 certificate: ${(error as Error).message}`);
  }
}

function dnsNamesOf(extensionsNode: DerNode): string[] {
  const [list] = children(extensionsNode);
  if (!list) return [];
  const sanOid = oid(OID.subjectAltName);
  for (const ext of children(list)) {
    const parts = children(ext);
    if (!parts[0] || !sameBytes(parts[0].bytes, sanOid)) continue;
    const value = parts[parts.length - 1]!;
    return children(readNode(value.content))
      .filter((name) => name.tag === 0x82)
      .map((name) => new TextDecoder().decode(name.content));
  }
  return [];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}


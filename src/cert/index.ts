/** X.509 certificates for TLS clusters, made with WebCrypto: host-neutral. */
export {
  makeClusterCa,
  issueLeaf,
  makeSingleClusterCertificate,
  clusterNameOf,
  CLUSTER_NAME_DEFAULT,
  CA_DAYS_DEFAULT,
  LEAF_DAYS_DEFAULT,
  type PemPair,
  type CaOptions,
  type LeafOptions,
  type SingleCertificateOptions,
} from './cluster-certificates.ts';
export {
  issueCertificate,
  selfSigner,
  generateKeyPair,
  exportPrivateKeyPem,
  importPrivateKeyPem,
  readCertificate,
  certificatePem,
  encodeName,
  CertificateError,
  COMMON_NAME_CHARS_MAX,
  SUBJECT_ALT_NAMES_MAX,
  type CertificateRequest,
  type CertificateFields,
  type Signer,
  type ExtendedKeyUsage,
} from './certificate.ts';
export { decodePem, decodePemBlock, encodePem, PemError, type PemBlock } from './pem.ts';
export { parseIpAddress } from './ip-address.ts';

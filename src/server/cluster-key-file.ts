/**
 * The cluster key a data directory belongs to, kept in the directory itself (`cluster-key`, a
 * file only its owner can read), so a member restarted on its directory needs no key flag and
 * can never take a new key and lose its peers.
 */
import type { DurableStorage } from '../runtime.ts';

/** Same name and format (the key, then a newline) as the file `dqlite-wasm cluster` writes. */
export const CLUSTER_KEY_FILE = 'cluster-key';

/** Random bytes in a generated key (base64url: 32 characters). */
const GENERATED_KEY_BYTES = 24;

export class ClusterKeyError extends Error {
  override readonly name = 'ClusterKeyError';
  constructor(
    readonly code: 'cluster_key_missing' | 'cluster_key_mismatch' | 'cluster_key_empty',
    message: string,
  ) {
    super(message);
  }
}

/** Writes a file readable by its owner only (mode 0600 where the host has modes), durably. */
export type WriteSecret = (name: string, bytes: Uint8Array) => Promise<void>;

export interface ClusterKeyChoice {
  key: string;
  /** The key is not in the directory yet: store it once the directory belongs to the cluster. */
  store: boolean;
  generated: boolean;
}

export async function readStoredClusterKey(storage: DurableStorage): Promise<string | undefined> {
  const bytes = await storage.read(CLUSTER_KEY_FILE);
  if (!bytes) return undefined;
  const key = new TextDecoder().decode(bytes).trim();
  return key.length > 0 ? key : undefined;
}

/**
 * Which key a node starting on `where` uses. `given` (a flag, a file, the environment) must match
 * the stored key when there is one; a directory that already belongs to a cluster (`member`)
 * never gets a generated key; a new directory that joins needs the cluster's key.
 */
export async function chooseClusterKey(options: {
  storage: DurableStorage;
  where: string;
  given: string | undefined;
  member: boolean;
  joining: boolean;
  randomBytes: (length: number) => Uint8Array;
}): Promise<ClusterKeyChoice> {
  const given = options.given?.trim();
  if (given !== undefined && given.length === 0) {
    throw new ClusterKeyError('cluster_key_empty', 'the cluster key given is empty: pass the key of the cluster (--cluster-key or --cluster-key-file)');
  }
  const stored = await readStoredClusterKey(options.storage);
  if (stored !== undefined) {
    if (given !== undefined && given !== stored) {
      throw new ClusterKeyError(
        'cluster_key_mismatch',
        `${options.where} belongs to a cluster with another key (in ${options.where}/${CLUSTER_KEY_FILE}): ` +
          'start it without a key flag to use the stored one, or use a new --dir',
      );
    }
    return { key: stored, store: false, generated: false };
  }
  if (given !== undefined) return { key: given, store: true, generated: false };
  if (options.member) {
    throw new ClusterKeyError(
      'cluster_key_missing',
      `${options.where} belongs to a cluster but holds no ${CLUSTER_KEY_FILE} file: start it once with the cluster's key ` +
        '(--cluster-key, --cluster-key-file or DQLITE_WASM_CLUSTER_KEY); it is kept in the directory from then on',
    );
  }
  if (options.joining) {
    throw new ClusterKeyError(
      'cluster_key_missing',
      'joining needs the cluster key: pass --cluster-key, --cluster-key-file or DQLITE_WASM_CLUSTER_KEY ' +
        `(the ${CLUSTER_KEY_FILE} file in a member's data directory)`,
    );
  }
  // A key never starts with '-', so `--cluster-key KEY` cannot be taken for a flag.
  const key = base64url(options.randomBytes(GENERATED_KEY_BYTES)).replace(/^-/, 'k');
  return { key, store: true, generated: true };
}

export function clusterKeyBytes(key: string): Uint8Array {
  return new TextEncoder().encode(key + '\n');
}

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

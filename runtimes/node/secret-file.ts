/** A file only its owner can read (mode 0600), replaced atomically and durably. */
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export async function writeSecretFile(directory: string, name: string, bytes: Uint8Array): Promise<void> {
  const target = join(directory, name);
  const temp = join(directory, `.tmp-secret-${process.pid}-${name}`);
  try {
    const handle = await open(temp, 'w', 0o600);
    try {
      // The mode passed to open is filtered by the umask; the key must never be readable by others.
      await handle.chmod(0o600);
      await handle.writeFile(bytes);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    const dir = await open(directory, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw new Error(`writing ${target} failed: ${(error as Error).message}`, { cause: error });
  }
}

/** PEM armour (RFC 7468) for certificates and keys. Host-neutral: `btoa`/`atob` only. */

export class PemError extends Error {
  readonly code = 'PEM_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'PemError';
  }
}

const LINE_CHARS = 64;

export function encodePem(label: string, der: Uint8Array): string {
  let binary = '';
  for (const byte of der) binary += String.fromCharCode(byte);
  const base64 = btoa(binary);
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += LINE_CHARS) lines.push(base64.slice(i, i + LINE_CHARS));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Uint8Array;
}

/** Every block in `text`, in order (a certificate file may hold a chain). */
export function decodePem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const pattern = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (const match of text.matchAll(pattern)) {
    const body = match[2]!.replace(/\s+/g, '');
    let binary: string;
    try {
      binary = atob(body);
    } catch {
      throw new PemError(`the PEM block "${match[1]}" is not valid base64`);
    }
    blocks.push({ label: match[1]!, der: Uint8Array.from(binary, (c) => c.charCodeAt(0)) });
  }
  return blocks;
}

/** The first block with `label`, or a PemError naming what was expected in `what`. */
export function decodePemBlock(text: string, label: string, what: string): Uint8Array {
  const block = decodePem(text).find((b) => b.label === label);
  if (!block) throw new PemError(`${what} holds no "-----BEGIN ${label}-----" block`);
  return block.der;
}

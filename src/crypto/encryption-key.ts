import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Parses a 32-byte key given as 64 hex characters or base64. Returns undefined when it is neither. */
export function parseEncryptionKey(value: string): Buffer | undefined {
  const v = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(v)) return Buffer.from(v, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(v)) {
    const buf = Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (buf.length === 32) return buf;
  }
  return undefined;
}

/**
 * Embedded mode keeps generated secrets next to the embedded database, so a restart can still
 * open what it sealed. Each file is created once, mode 0600; its value is never logged.
 */
export async function loadOrCreateSecretFile(
  dataDir: string,
  name: string,
  generate: () => string,
  validate: (value: string) => boolean,
): Promise<{ value: string; file: string; created: boolean }> {
  const file = path.resolve(dataDir, name);
  try {
    const value = (await readFile(file, 'utf8')).trim();
    if (!validate(value)) throw new Error(`${file} does not hold a valid value; move it away to generate a new one`);
    return { value, file, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(path.dirname(file), { recursive: true });
  const value = generate();
  try {
    await writeFile(file, value + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateSecretFile(dataDir, name, generate, validate);
    throw err;
  }
  return { value, file, created: true };
}

export const generateEncryptionKey = () => randomBytes(32).toString('base64');
export const generateApiToken = () => randomBytes(24).toString('base64url');

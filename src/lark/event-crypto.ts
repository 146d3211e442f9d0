import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

// Lark's push encryption: AES-256-CBC, key = SHA-256(encrypt key), base64(iv || ciphertext).
// Its signature: hex SHA-256(timestamp + nonce + encrypt key + raw body bytes).

// One app has one encrypt key: hashing it again for every push is wasted work on the hot path.
const aesKeys = new Map<string, Buffer>();
function aesKey(encryptKey: string): Buffer {
  let key = aesKeys.get(encryptKey);
  if (!key) {
    key = createHash('sha256').update(encryptKey, 'utf8').digest();
    if (aesKeys.size > 16) aesKeys.clear();
    aesKeys.set(encryptKey, key);
  }
  return key;
}

export function encryptPush(encryptKey: string, plaintext: string, iv: Buffer = randomBytes(16)): string {
  const cipher = createCipheriv('aes-256-cbc', aesKey(encryptKey), iv);
  return Buffer.concat([iv, cipher.update(plaintext, 'utf8'), cipher.final()]).toString('base64');
}

/** Throws on anything that is not a well-formed ciphertext under this key. */
export function decryptPush(encryptKey: string, encrypted: string): string {
  const buf = Buffer.from(encrypted, 'base64');
  if (buf.length < 32 || (buf.length - 16) % 16 !== 0) throw new Error('ciphertext has an invalid length');
  const decipher = createDecipheriv('aes-256-cbc', aesKey(encryptKey), buf.subarray(0, 16));
  return Buffer.concat([decipher.update(buf.subarray(16)), decipher.final()]).toString('utf8');
}

export function signPush(timestamp: string, nonce: string, encryptKey: string, rawBody: Buffer | string): string {
  return createHash('sha256')
    .update(timestamp + nonce + encryptKey, 'utf8')
    .update(typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody)
    .digest('hex');
}

/**
 * Constant-time comparison of the contents of two strings. Only a length mismatch answers early:
 * both uses compare values of a public, fixed length (a SHA-256 hex digest; Lark's verification
 * token), so the length tells nothing. Hashing both sides first, as before, cost four digests per
 * push on the hottest path.
 */
export function safeEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

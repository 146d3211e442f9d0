import { createCipheriv, createDecipheriv, createHash, createHmac, randomFillSync } from 'node:crypto';

const VERSION = 1;
const KID_BYTES = 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KID_BYTES + IV_BYTES + TAG_BYTES;

/**
 * IVs come from a pool of random bytes refilled in bulk: one CSPRNG call per 4096 seals instead
 * of one per seal, which shows on the event endpoint's hot path. Each IV is still 96 fresh random
 * bits, used once. The IV is a view into the pool, valid until the next refill: seal() uses it
 * synchronously (the cipher and the envelope copy it).
 */
const IV_POOL = Buffer.alloc(IV_BYTES * 4096);
let ivOffset = IV_POOL.length;
function nextIv(): Buffer {
  if (ivOffset + IV_BYTES > IV_POOL.length) {
    randomFillSync(IV_POOL);
    ivOffset = 0;
  }
  const iv = IV_POOL.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

function keyId(key: Buffer): Buffer {
  return createHash('sha256').update('larksync-key-id:').update(key).digest().subarray(0, KID_BYTES);
}

/**
 * Seals secrets at rest with AES-256-GCM. The envelope is
 * `version(1) | keyId(4) | iv(12) | tag(16) | ciphertext`, so rows sealed under a retired key
 * stay readable while new writes use the current key. The context string is bound as
 * associated data, so a ciphertext copied into another row or column does not open.
 */
export class Sealer {
  private readonly current: { id: Buffer; key: Buffer };
  /** version and key id: the start of every envelope sealed now */
  private readonly prefix: Buffer;
  private readonly byId = new Map<string, Buffer>();

  constructor(currentKey: Buffer, retiredKeys: Buffer[] = []) {
    if (currentKey.length !== 32) throw new SealError('encryption key must be 32 bytes');
    this.current = { id: keyId(currentKey), key: currentKey };
    this.prefix = Buffer.concat([Buffer.from([VERSION]), this.current.id]);
    for (const k of [currentKey, ...retiredKeys]) {
      if (k.length !== 32) throw new SealError('encryption key must be 32 bytes');
      this.byId.set(keyId(k).toString('hex'), k);
    }
  }

  seal(plaintext: string | Buffer, context: string): Buffer {
    const iv = nextIv();
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = cipher.update(plaintext);
    const last = cipher.final();
    return Buffer.concat([this.prefix, iv, cipher.getAuthTag(), body, last]);
  }

  openBuffer(sealed: Uint8Array, context: string): Buffer {
    const buf = Buffer.from(sealed);
    if (buf.length < HEADER_BYTES || buf[0] !== VERSION) throw new SealError('not a sealed value');
    const kid = buf.subarray(1, 1 + KID_BYTES).toString('hex');
    const key = this.byId.get(kid);
    if (!key) throw new SealError(`sealed with unknown key id ${kid}; add that key to ENCRYPTION_KEYS_RETIRED`);
    const iv = buf.subarray(1 + KID_BYTES, 1 + KID_BYTES + IV_BYTES);
    const tag = buf.subarray(1 + KID_BYTES + IV_BYTES, HEADER_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(buf.subarray(HEADER_BYTES)), decipher.final()]);
    } catch {
      throw new SealError('sealed value failed authentication (wrong key or context)');
    }
  }

  /** The envelope's first bytes (version and key id) for values sealed under the current key. */
  get currentKeyPrefix(): Buffer {
    return Buffer.from(this.prefix);
  }

  /** Whether a sealed value is under the current key (a re-seal would change nothing). */
  isUnderCurrentKey(sealed: Uint8Array): boolean {
    return Buffer.from(sealed.subarray(0, this.prefix.length)).equals(this.prefix);
  }

  /** Opens with whichever key sealed it, seals again under the current key (key rotation). */
  reseal(sealed: Uint8Array, context: string): Buffer {
    return this.seal(this.openBuffer(sealed, context), context);
  }

  open(sealed: Uint8Array, context: string): string {
    return this.openBuffer(sealed, context).toString('utf8');
  }

  /**
   * Secrets derived from the keys for one purpose (HMAC-SHA256 of the label): the current key's
   * first, then the retired ones', so what was signed under a retired key still verifies. The
   * keys themselves never leave this class.
   */
  derivedSecrets(label: string): string[] {
    const keys = [this.current.key, ...[...this.byId.values()].filter((k) => !k.equals(this.current.key))];
    return keys.map((k) => createHmac('sha256', k).update(`larksync-derived:${label}`).digest('hex'));
  }
}

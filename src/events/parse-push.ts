import type { StoreAppConfig } from '../config/env.js';
import { decryptPush, safeEqual, signPush } from '../lark/event-crypto.js';
import { SIGNATURE_MAX_AGE_SECONDS, SIGNATURE_MAX_AHEAD_SECONDS } from './replay-window.js';

/**
 * The largest unsigned body decrypted (pinned: 2 KB). Only a URL-verification challenge comes
 * unsigned, and its ciphertext is a few hundred bytes; bigger bodies are refused unread, so an
 * unauthenticated sender cannot make us decrypt (or parse) up to the 1 MiB body limit.
 */
export const UNSIGNED_BODY_LIMIT = 2048;

export type PushRejection =
  | 'malformed_json'
  | 'undecryptable'
  | 'missing_signature'
  | 'invalid_signature'
  | 'stale_timestamp'
  | 'not_encrypted'
  | 'encrypt_key_not_configured'
  | 'invalid_token'
  | 'unknown_schema'
  | 'missing_event_id'
  | 'invalid_event_field'
  | 'unverified_push'
  /** a custom app's request URL got a push naming another app */
  | 'app_mismatch'
  /** log detail only: an unsigned body over UNSIGNED_BODY_LIMIT */
  | 'unsigned_body_too_large';

export class PushRejectedError extends Error {
  constructor(
    readonly reason: PushRejection,
    readonly statusCode: 400 | 401,
    message: string,
    /** Why, for the log only: the answer and the metrics show `reason` (see unverifiedPush). */
    readonly detail?: PushRejection,
  ) {
    super(message);
    this.name = 'PushRejectedError';
  }
}

/**
 * What checks a push: the app's Verification Token and (optional) Encrypt Key (the store app's, or
 * a custom app's). `names` says where they were set, for the answers (default: the store app's
 * environment variables).
 */
export type PushKeys = Pick<StoreAppConfig, 'verificationToken' | 'encryptKey'> & { names?: { token: string; key: string } };

const STORE_NAMES = { token: 'LARK_VERIFICATION_TOKEN', key: 'LARK_ENCRYPT_KEY' };

export type ParsedPush =
  | { kind: 'challenge'; challenge: string }
  | {
      kind: 'event';
      schemaVersion: 'v1' | 'v2';
      eventId: string;
      eventType: string;
      appId: string | null;
      tenantKey: string | null;
      /** The decrypted JSON text, exactly as Lark sent it (this is what gets sealed and stored). */
      plaintext: string;
    };

export interface PushHeaders {
  timestamp?: string;
  nonce?: string;
  signature?: string;
}

const reject = (reason: PushRejection, status: 400 | 401, message: string) => new PushRejectedError(reason, status, message);

function parseJson(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw reject('malformed_json', 400, `${what} is not valid JSON`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw reject('malformed_json', 400, `${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * Longest event id, event type, app id or tenant key accepted (pinned). Lark's are 16 to 36
 * characters; the cap keeps every value storable: `event_id` is under a unique btree index,
 * whose entries cannot exceed ~2.7 kB.
 */
export const MAX_EVENT_FIELD_LENGTH = 256;

/**
 * These fields go into text columns, so a value Postgres cannot store would fail the insert with a
 * 500 (and, batched, fail the pushes stored with it): U+0000, and unpaired surrogates, which
 * would be stored as U+FFFD and make distinct ids collide on the dedupe key.
 */
function storable(value: string | undefined, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (value.length > MAX_EVENT_FIELD_LENGTH || value.includes('\u0000') || /\p{Cs}/u.test(value)) {
    throw reject(
      'invalid_event_field',
      400,
      `${field} must be at most ${MAX_EVENT_FIELD_LENGTH} characters, without U+0000 or unpaired surrogates`,
    );
  }
  return value;
}

/**
 * Verifies and decodes one push (events.md §3-6): signature over the raw bytes with a timing-safe
 * compare and a timestamp window (replay-window.ts), AES decryption, then the verification token
 * (v1 `token`, v2 `header.token`). With an encrypt key, a push without X-Lark-Signature can only
 * be a URL-verification challenge (those are unsigned) and is handled by unverifiedPush. Nothing
 * here logs; callers log the rejection reason (and detail).
 */
export function parsePush(raw: Buffer, headers: PushHeaders, app: PushKeys, nowSeconds = Date.now() / 1000): ParsedPush {
  if (app.encryptKey && headers.signature === undefined) return unverifiedPush(raw, app.encryptKey, app);
  const outer = parseJson(raw.toString('utf8'), 'request body');

  if (typeof outer.encrypt === 'string') {
    if (!app.encryptKey) {
      throw reject('encrypt_key_not_configured', 400, `push is encrypted but ${(app.names ?? STORE_NAMES).key} is not set`);
    }
    // Signed: the signature is checked before anything is decrypted, so what follows only ever
    // tells Lark (the key's other holder) why its own push was refused.
    verifySignature(raw, headers, app.encryptKey, nowSeconds);
    let plaintext: string;
    try {
      plaintext = decryptPush(app.encryptKey, outer.encrypt);
    } catch {
      throw reject('undecryptable', 400, `encrypted payload could not be decrypted with ${(app.names ?? STORE_NAMES).key}`);
    }
    const body = parseJson(plaintext, 'decrypted payload');
    if (body.type === 'url_verification') return challenge(body, app);
    return event(body, plaintext, app);
  }

  if (outer.type === 'url_verification') {
    if (app.encryptKey) throw reject('not_encrypted', 400, `${(app.names ?? STORE_NAMES).key} is set, so pushes must be encrypted`);
    return challenge(outer, app);
  }
  if (app.encryptKey) throw reject('not_encrypted', 400, `${(app.names ?? STORE_NAMES).key} is set, so pushes must be encrypted`);
  return event(outer, raw.toString('utf8'), app);
}

/** The one answer to every unsigned push that is not a valid challenge (see unverifiedPush). */
const UNVERIFIED_MESSAGE =
  'a push without X-Lark-Signature is accepted only as a URL verification challenge encrypted with LARK_ENCRYPT_KEY and carrying LARK_VERIFICATION_TOKEN';

/**
 * An unsigned push while an encrypt key is set: only a URL-verification challenge may come this
 * way. AES-CBC has no integrity, so telling a bad padding (undecryptable) apart from good padding
 * and bad JSON, a wrong token or a missing signature would let anyone decrypt a captured push one
 * byte at a time (a padding oracle). So every failure here is the same 401, with the same bytes
 * and the same metric label; only the log line says which check failed. Bodies over
 * UNSIGNED_BODY_LIMIT are refused before any parsing or decryption.
 */
function unverifiedPush(raw: Buffer, encryptKey: string, app: PushKeys): ParsedPush {
  const fail = (detail: PushRejection): never => {
    throw new PushRejectedError('unverified_push', 401, UNVERIFIED_MESSAGE, detail);
  };
  if (raw.length > UNSIGNED_BODY_LIMIT) fail('unsigned_body_too_large');
  let plaintext: string;
  try {
    const outer = parseJson(raw.toString('utf8'), 'request body');
    if (typeof outer.encrypt !== 'string') return fail('not_encrypted');
    plaintext = decryptPush(encryptKey, outer.encrypt);
  } catch (err) {
    return fail(err instanceof PushRejectedError ? (err.detail ?? err.reason) : 'undecryptable');
  }
  try {
    const body = parseJson(plaintext, 'decrypted payload');
    if (body.type !== 'url_verification') return fail('missing_signature');
    return challenge(body, app);
  } catch (err) {
    if (!(err instanceof PushRejectedError)) throw err;
    return fail(err.detail ?? err.reason);
  }
}

function verifySignature(raw: Buffer, h: PushHeaders, encryptKey: string, nowSeconds: number): void {
  if (!h.timestamp || !h.nonce || !h.signature) {
    throw reject('missing_signature', 401, 'X-Lark-Request-Timestamp, X-Lark-Request-Nonce and X-Lark-Signature are all required');
  }
  const ts = Number(h.timestamp);
  // Seconds are assumed (events.md §5, unconfirmed); tolerate milliseconds too.
  const seconds = ts > 1e12 ? ts / 1000 : ts;
  const age = nowSeconds - seconds;
  if (!Number.isFinite(seconds) || age > SIGNATURE_MAX_AGE_SECONDS || -age > SIGNATURE_MAX_AHEAD_SECONDS) {
    throw reject(
      'stale_timestamp',
      401,
      `X-Lark-Request-Timestamp must be at most ${SIGNATURE_MAX_AGE_SECONDS / 3600} hours old and at most ${SIGNATURE_MAX_AHEAD_SECONDS / 60} minutes ahead`,
    );
  }
  const expected = signPush(h.timestamp, h.nonce, encryptKey, raw);
  if (!safeEqual(expected, h.signature.toLowerCase())) {
    throw reject('invalid_signature', 401, 'X-Lark-Signature does not match the body');
  }
}

function checkToken(token: unknown, app: PushKeys): void {
  if (typeof token !== 'string' || !safeEqual(token, app.verificationToken)) {
    throw reject('invalid_token', 401, `verification token does not match ${(app.names ?? STORE_NAMES).token}`);
  }
}

function challenge(body: Record<string, unknown>, app: PushKeys): ParsedPush {
  checkToken(body.token, app);
  const value = str(body.challenge);
  if (!value) throw reject('unknown_schema', 400, 'url_verification without a challenge');
  return { kind: 'challenge', challenge: value };
}

function event(body: Record<string, unknown>, plaintext: string, app: PushKeys): ParsedPush {
  if (body.schema === '2.0') {
    const header = (body.header ?? {}) as Record<string, unknown>;
    checkToken(header.token, app);
    const eventId = storable(str(header.event_id), 'header.event_id');
    const eventType = storable(str(header.event_type), 'header.event_type');
    if (!eventId || !eventType) throw reject('missing_event_id', 400, 'v2 event needs header.event_id and header.event_type');
    return {
      kind: 'event',
      schemaVersion: 'v2',
      eventId,
      eventType,
      appId: storable(str(header.app_id), 'header.app_id') ?? null,
      tenantKey: storable(str(header.tenant_key), 'header.tenant_key') ?? null,
      plaintext,
    };
  }
  // v1 is the envelope without a schema field (events.md §6.1); any other schema is one we do not know.
  if (body.type === 'event_callback' && body.schema === undefined) {
    checkToken(body.token, app);
    const inner = (body.event ?? {}) as Record<string, unknown>;
    const eventId = storable(str(body.uuid), 'uuid');
    const eventType = storable(str(inner.type), 'event.type');
    if (!eventId || !eventType) throw reject('missing_event_id', 400, 'v1 event needs uuid and event.type');
    return {
      kind: 'event',
      schemaVersion: 'v1',
      eventId,
      eventType,
      appId: storable(str(inner.app_id), 'event.app_id') ?? null,
      tenantKey: storable(str(inner.tenant_key), 'event.tenant_key') ?? null,
      plaintext,
    };
  }
  throw reject('unknown_schema', 400, 'body is neither a url_verification, a v1 event_callback nor a schema "2.0" event');
}

import { createHash } from 'node:crypto';
import { parseEncryptionKey } from '../../src/crypto/encryption-key.js';
import { tokenContext } from '../../src/tokens/tokens.repository.js';
import { STORE_APP, type Stack } from './stack.js';

/**
 * The secrets larksync holds or was issued, and the text shapes they could leak in. Used by the
 * fuzzers: every captured log line and every answer is searched for every form.
 */
export class SecretSet {
  private readonly byValue = new Map<string, string>();

  /** Adds a secret under a label; empty values are ignored. */
  add(label: string, value: string | undefined): void {
    if (value && !this.byValue.has(value)) this.byValue.set(value, label);
  }

  /** The plain values (what a fuzzer tries to smuggle into requests). */
  values(): string[] {
    return [...this.byValue.keys()];
  }

  /** Every value with its forms: as is, hex and base64 of its UTF-8 bytes. */
  forms(): Array<{ label: string; value: string; form: string }> {
    const out: Array<{ label: string; value: string; form: string }> = [];
    for (const [value, label] of this.byValue) {
      const bytes = Buffer.from(value, 'utf8');
      for (const form of new Set([value, bytes.toString('hex'), bytes.toString('base64').replace(/=+$/, ''), bytes.toString('base64url')])) {
        out.push({ label, value, form });
      }
    }
    return out;
  }

  /**
   * Labels of the secrets found in `text`, except inside `tolerated` strings: text the caller
   * itself sent where an echo is fine (a challenge echoed back, a path segment named in a 404).
   */
  find(text: string, tolerated: ReadonlySet<string> = new Set()): string[] {
    const found = new Set<string>();
    for (const { label, value, form } of this.forms()) {
      if (!text.includes(form)) continue;
      if ([...tolerated].some((t) => t.includes(form))) continue;
      found.add(`${label} (${form === value ? 'plain' : 'encoded'})`);
    }
    return [...found];
  }
}

/** Raw key bytes as base64 and hex, however ENCRYPTION_KEY was written. */
function addKeyBytes(set: SecretSet, label: string, key: Buffer): void {
  set.add(`${label} (hex)`, key.toString('hex'));
  set.add(`${label} (base64)`, key.toString('base64'));
  set.add(`${label} (base64url)`, key.toString('base64url'));
}

/** Configured secrets of a stack: app secret, verification token, encrypt key, ENCRYPTION_KEY, API token. */
export function configuredSecrets(stack: Stack, set = new SecretSet()): SecretSet {
  set.add('store app secret', STORE_APP.appSecret);
  set.add('verification token', STORE_APP.verificationToken);
  set.add('encrypt key', STORE_APP.encryptKey);
  // The AES key Lark's scheme derives from the encrypt key is as good as the key itself.
  addKeyBytes(set, 'encrypt key AES key', createHash('sha256').update(STORE_APP.encryptKey, 'utf8').digest());
  const encryptionKey = stack.env.ENCRYPTION_KEY;
  set.add('ENCRYPTION_KEY', encryptionKey);
  const raw = encryptionKey ? parseEncryptionKey(encryptionKey) : undefined;
  if (raw) addKeyBytes(set, 'ENCRYPTION_KEY bytes', raw);
  set.add('API token', stack.env.API_TOKEN);
  return set;
}

/**
 * Adds what was issued at run time: the simulator's current ticket and the tenant tokens it
 * issued for `tenants`, plus whatever larksync stored sealed (tickets, app and tenant tokens,
 * custom app secrets), opened with its own sealer. Reads only; never mints.
 */
export async function addIssuedSecrets(
  stack: Stack,
  set: SecretSet,
  tenants: Array<{ appId: string; tenantKey: string }> = [],
): Promise<SecretSet> {
  const { services } = stack.larksync;
  set.add('app ticket (simulator)', stack.sim.currentTicket(STORE_APP.appId));
  set.add('app ticket (stored)', (await services.tickets.get(STORE_APP.appId))?.ticket);
  for (const t of tenants) for (const v of stack.sim.validTenantTokens(t.appId, t.tenantKey)) set.add('tenant access token (simulator)', v);
  const tokens = await services.db
    .selectFrom('access_tokens')
    .select(['kind', 'app_id', 'tenant_key', 'token_sealed'])
    .where('token_sealed', 'is not', null)
    .execute();
  for (const row of tokens) {
    if (!row.token_sealed) continue;
    const value = services.sealer.open(row.token_sealed, tokenContext({ kind: row.kind, appId: row.app_id, tenantKey: row.tenant_key }));
    set.add(`${row.kind} access token (stored)`, value);
  }
  return set;
}

/**
 * Secrets found in log lines. The access log records the URL and Host a caller sent, verbatim;
 * a secret a fuzzer put there is the caller's own text, so those two fields are left out.
 */
export function findLogLeaks(lines: string[], secrets: SecretSet): Array<{ line: string; found: string[] }> {
  const leaks: Array<{ line: string; found: string[] }> = [];
  for (const line of lines) {
    let text = line;
    try {
      const entry = JSON.parse(line) as { req?: Record<string, unknown> };
      if (entry.req && typeof entry.req === 'object') {
        delete entry.req.url;
        delete entry.req.host;
        delete entry.req.hostname;
      }
      text = JSON.stringify(entry);
    } catch {
      // Not JSON: search the whole line.
    }
    const found = secrets.find(text);
    if (found.length > 0) leaks.push({ line: line.slice(0, 500), found });
  }
  return leaks;
}

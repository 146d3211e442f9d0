import { randomBytes } from 'node:crypto';
import type { Sealer } from '../crypto/sealer.js';

/** The seal's context of a webhook's signing secrets: a value copied to another row or column does not open. */
export const secretContext = (webhookId: string, which: 'current' | 'previous') => `webhooks.${which}_secret:${webhookId}`;

/** A Standard Webhooks secret: `whsec_` and 32 random bytes in base64 (the spec asks for 24 to 64). */
export function generateSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export function openSecrets(
  sealer: Sealer,
  row: { id: string; secret_sealed: Buffer; previous_secret_sealed: Buffer | null; previous_secret_expires_at: Date | null },
  now: Date,
): string[] {
  const out = [sealer.open(row.secret_sealed, secretContext(row.id, 'current'))];
  if (row.previous_secret_sealed && row.previous_secret_expires_at && row.previous_secret_expires_at > now) {
    out.push(sealer.open(row.previous_secret_sealed, secretContext(row.id, 'previous')));
  }
  return out;
}

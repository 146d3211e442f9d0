import type { MintErrorClass } from './mint-errors.js';
import type { AccessTokenRow } from './tokens.table.js';

export interface TokenHealth {
  /** `failing`: the last mint failed (a stored token may still be valid: see expiresAt). */
  status: 'valid' | 'refresh_due' | 'expired' | 'missing' | 'failing';
  expiresAt: string | null;
  refreshAt: string | null;
  mintedAt: string | null;
  mintCount: number;
  /** Mints failed in a row. */
  failures: number;
  /** While backing off: the earliest next mint. */
  nextAttemptAt: string | null;
  lastError: { code: string; class: MintErrorClass; message: string; at: string } | null;
}

/** What the API shows of a token row at `now`: its times and its failures, never the token. */
export function toTokenHealth(row: AccessTokenRow | undefined, now: Date): TokenHealth {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  const failures = row?.failures ?? 0;
  const lastError =
    row?.last_error_code && row.last_error_at
      ? {
          code: row.last_error_code,
          class: (row.last_error_class ?? 'internal') as MintErrorClass,
          message: row.last_error_message ?? '',
          at: row.last_error_at.toISOString(),
        }
      : null;
  let status: TokenHealth['status'] = 'missing';
  const nowMs = now.getTime();
  if (failures > 0) status = 'failing';
  else if (row?.token_sealed && row.expires_at) {
    if (row.expires_at.getTime() <= nowMs) status = 'expired';
    else if (row.refresh_at && row.refresh_at.getTime() <= nowMs) status = 'refresh_due';
    else status = 'valid';
  }
  return {
    status,
    expiresAt: iso(row?.token_sealed ? row.expires_at : null),
    refreshAt: iso(row?.token_sealed ? row.refresh_at : null),
    mintedAt: iso(row?.minted_at ?? null),
    mintCount: row?.mint_count ?? 0,
    failures,
    nextAttemptAt: row?.next_attempt_at && row.next_attempt_at.getTime() > nowMs ? row.next_attempt_at.toISOString() : null,
    lastError,
  };
}

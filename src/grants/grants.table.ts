import type { ColumnType, Generated, Selectable } from 'kysely';

export type GrantStatus = 'active' | 'needs_reauth' | 'revoked';

/** A user's authorization of an app in one tenant (OAuth code flow), tokens sealed. */
export interface UserGrantsTable {
  app_id: string;
  tenant_key: string;
  open_id: string;
  union_id: string | null;
  user_id: string | null;
  name: string | null;
  scopes: ColumnType<string[], string[] | undefined, string[]>;
  access_sealed: Buffer | null;
  refresh_sealed: Buffer | null;
  access_expires_at: Date | null;
  refresh_expires_at: Date | null;
  /** when to refresh ahead of the access token's expiry */
  refresh_at: Date | null;
  status: GrantStatus;
  status_reason: string | null;
  status_at: ColumnType<Date, Date | undefined, Date>;
  authorized_at: ColumnType<Date, Date | undefined, Date>;
  refreshed_at: Date | null;
  refresh_count: Generated<number>;
  /** the claim of the refresh in progress, if any */
  mint_lease: string | null;
  minting_until: Date | null;
  failures: Generated<number>;
  next_attempt_at: Date | null;
  last_error_class: string | null;
  last_error_code: string | null;
  last_error_at: Date | null;
}
export type UserGrantRow = Selectable<UserGrantsTable>;

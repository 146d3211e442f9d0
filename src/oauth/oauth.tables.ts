import type { ColumnType } from 'kysely';

export interface OAuthStatesTable {
  id: string;
  app_id: string;
  purpose: string;
  verifier_sealed: Buffer;
  redirect_uri: string;
  return_to: string;
  tenant_hint: string | null;
  created_at: ColumnType<Date, never, never>;
  expires_at: ColumnType<Date, Date, Date>;
  used_at: Date | null;
}

export interface WebSessionsTable {
  id: string;
  data: ColumnType<Record<string, unknown>, string, string>;
  expires_at: Date;
}

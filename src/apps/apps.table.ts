import type { ColumnType, Insertable, Selectable } from 'kysely';

export type AppKind = 'store' | 'custom';

export interface AppsTable {
  app_id: string;
  kind: AppKind;
  domain: string;
  secret_sealed: Buffer;
  /** A custom app's push credentials (its console's Verification Token and Encrypt Key), sealed; null: none registered. */
  verification_token_sealed: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  encrypt_key_sealed: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export type AppRow = Selectable<AppsTable>;
export type NewAppRow = Insertable<AppsTable>;

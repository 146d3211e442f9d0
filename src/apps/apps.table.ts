import type { ColumnType, Insertable, Selectable } from 'kysely';

export type AppKind = 'store' | 'custom';

export interface AppsTable {
  app_id: string;
  kind: AppKind;
  domain: string;
  secret_sealed: Buffer;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export type AppRow = Selectable<AppsTable>;
export type NewAppRow = Insertable<AppsTable>;

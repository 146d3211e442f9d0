import type { ColumnType } from 'kysely';

/** One row (id = 1): a known value sealed under the key of the first start. */
export interface EncryptionCanaryTable {
  id: ColumnType<number, number | undefined, never>;
  sealed: Buffer;
  created_at: ColumnType<Date, never, never>;
}

import type { ColumnType, Generated, Selectable } from 'kysely';

export type TokenKind = 'app' | 'tenant';

export interface AccessTokensTable {
  app_id: string;
  kind: TokenKind;
  /** '' for app tokens */
  tenant_key: string;
  token_sealed: Buffer | null;
  token_hash: string | null;
  expires_at: Date | null;
  refresh_at: Date | null;
  minted_at: Date | null;
  mint_count: Generated<number>;
  last_error_code: string | null;
  last_error_message: string | null;
  last_error_at: Date | null;
}
export type AccessTokenRow = Selectable<AccessTokensTable>;

export interface AppTicketsTable {
  app_id: string;
  ticket_sealed: Buffer;
  ticket_hash: string;
  received_at: ColumnType<Date, Date | undefined, Date>;
  event_id: string | null;
}

export interface TicketResendsTable {
  app_id: string;
  last_requested_at: Date;
  requests: Generated<number>;
}

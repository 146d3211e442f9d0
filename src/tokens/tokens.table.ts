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
  /** MintErrorClass of the last failure (mint-errors.ts) */
  last_error_class: string | null;
  /** the claim of the mint in progress, if any (a random id per claim) */
  mint_lease: string | null;
  /** when that claim lapses, so a process that died mid-mint blocks nobody for longer */
  minting_until: Date | null;
  /** mints failed in a row; 0 after a success */
  failures: Generated<number>;
  /** no mint before this (exponential backoff after repeated failures) */
  next_attempt_at: Date | null;
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

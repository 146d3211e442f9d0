import type { ColumnType, Generated, Selectable } from 'kysely';

/**
 * - `pending`: to be made (new, reconfigured, or reinstalled);
 * - `subscribed`: Lark accepted it (or said it already existed);
 * - `refused`: Lark will not, until someone acts (no manage right, unknown code): a warning on the
 *   connector, retried now and then in case they did;
 * - `failed`: a transient failure, retried with backoff.
 */
export type SubscriptionStatus = 'pending' | 'subscribed' | 'refused' | 'failed';

export interface LarkSubscriptionsTable {
  tenant_key: string;
  module: string;
  object_token: string;
  object_type: string;
  source: string | null;
  wanted: Generated<boolean>;
  status: Generated<SubscriptionStatus>;
  error_code: number | null;
  last_error: string | null;
  attempts: Generated<number>;
  next_attempt_at: Generated<Date>;
  subscribed_at: Date | null;
  created_at: ColumnType<Date, never, never>;
  updated_at: Generated<Date>;
}
export type LarkSubscriptionRow = Selectable<LarkSubscriptionsTable>;

export interface LarkEventMarksTable {
  tenant_key: string;
  module: string;
  last_event_at: Date;
}

export interface LarkEventMarkScanTable {
  id: Generated<number>;
  last_id: string;
  prev_id: string;
}

export interface ConnectorEventHealthTable {
  tenant_key: string;
  module: string;
  healthy: boolean;
  gap_reason: string | null;
  behind_since: Date | null;
  last_event_at: Date | null;
  checked_at: Generated<Date>;
}
export type ConnectorEventHealthRow = Selectable<ConnectorEventHealthTable>;

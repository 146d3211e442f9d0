import type { ColumnType, Generated, Selectable } from 'kysely';
import type { WebhookEventType } from './event-types.js';

export type WebhookStatus = 'enabled' | 'disabled';
export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'coalesced';

export interface WebhooksTable {
  id: Generated<string>;
  url: string;
  description: string | null;
  event_types: WebhookEventType[];
  /** null: every tenant */
  tenant_keys: string[] | null;
  status: ColumnType<WebhookStatus, WebhookStatus | undefined, WebhookStatus>;
  disabled_reason: string | null;
  disabled_at: Date | null;
  secret_sealed: Buffer;
  previous_secret_sealed: Buffer | null;
  previous_secret_expires_at: Date | null;
  failing_since: Date | null;
  last_failure_at: Date | null;
  last_success_at: Date | null;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}
export type WebhookRow = Selectable<WebhooksTable>;

/** The outbox: one row per event, written in the transaction of the change that caused it. */
export interface WebhookEventsTable {
  id: Generated<string>;
  type: WebhookEventType;
  tenant_key: string;
  data: ColumnType<Record<string, unknown>, string, never>;
  occurred_at: ColumnType<Date, never, never>;
}
export type WebhookEventRow = Selectable<WebhookEventsTable>;

export interface WebhookDeliveriesTable {
  id: Generated<string>;
  webhook_id: string;
  tenant_key: string;
  event_id: string;
  event_type: WebhookEventType;
  stream: string | null;
  xid: ColumnType<string, never, never>;
  message_id: string;
  status: ColumnType<DeliveryStatus, DeliveryStatus | undefined, DeliveryStatus>;
  body: string | null;
  coalesced_into: string | null;
  /** a records.changed head has taken in its later deliveries (migration 2026_12_12_0900) */
  takes_fixed: ColumnType<boolean, boolean | undefined, boolean>;
  attempts: Generated<number>;
  next_attempt_at: Date | null;
  retry_from: ColumnType<Date, Date | undefined, Date>;
  last_status_code: number | null;
  last_error: string | null;
  last_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: ColumnType<Date, never, never>;
}
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;

export interface WebhookAttemptsTable {
  id: Generated<string>;
  delivery_id: string;
  attempted_at: Date;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
}
export type WebhookAttemptRow = Selectable<WebhookAttemptsTable>;

export interface WebhookLanesTable {
  webhook_id: string;
  tenant_key: string;
  awake: ColumnType<boolean, boolean | undefined, boolean>;
}

import type { AppsTable } from '../apps/apps.table.js';
import type { AccessTokensTable, AppTicketsTable, TicketResendsTable } from '../tokens/tokens.table.js';
import type { TenantAuditTable, TenantsTable } from '../tenants/tenants.table.js';
import type { LarkEventShardsTable, LarkEventsTable } from '../events/events.table.js';
import type { UserGrantsTable } from '../grants/grants.table.js';
import type { BaseWriteBatchesTable, BaseWriteRecordsTable, BaseWritesTable } from '../writes/writes.table.js';
import type { OAuthStatesTable, WebSessionsTable } from '../oauth/oauth.tables.js';
import type { WorkerProcessesTable } from '../worker/worker-processes.table.js';
import type { EncryptionCanaryTable } from '../keys/keys.table.js';
import type { SinkDocumentsTable, SinksTable } from '../sinks/sinks.table.js';
import type {
  WebhookAttemptsTable,
  WebhookDeliveriesTable,
  WebhookEventsTable,
  WebhookLanesTable,
  WebhooksTable,
} from '../webhooks/webhooks.table.js';
import type {
  ConnectorEventHealthTable,
  LarkEventMarkScanTable,
  LarkEventMarksTable,
  LarkSubscriptionsTable,
} from '../subscriptions/subscriptions.table.js';
import type {
  ConnectorsTable,
  RateBucketsTable,
  StreamStatesTable,
  SyncRunsTable,
  SyncDeleteCandidatesTable,
  SyncSeenPagesTable,
} from '../sync/sync.tables.js';

export interface Database {
  apps: AppsTable;
  app_tickets: AppTicketsTable;
  ticket_resends: TicketResendsTable;
  tenants: TenantsTable;
  tenant_audit: TenantAuditTable;
  access_tokens: AccessTokensTable;
  lark_events: LarkEventsTable;
  lark_event_shards: LarkEventShardsTable;
  connectors: ConnectorsTable;
  sync_runs: SyncRunsTable;
  stream_states: StreamStatesTable;
  sync_seen_pages: SyncSeenPagesTable;
  sync_delete_candidates: SyncDeleteCandidatesTable;
  rate_buckets: RateBucketsTable;
  worker_processes: WorkerProcessesTable;
  user_grants: UserGrantsTable;
  oauth_states: OAuthStatesTable;
  web_sessions: WebSessionsTable;
  base_writes: BaseWritesTable;
  base_write_records: BaseWriteRecordsTable;
  base_write_batches: BaseWriteBatchesTable;
  encryption_canary: EncryptionCanaryTable;
  sinks: SinksTable;
  sink_documents: SinkDocumentsTable;
  webhooks: WebhooksTable;
  webhook_events: WebhookEventsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  webhook_lanes: WebhookLanesTable;
  lark_subscriptions: LarkSubscriptionsTable;
  lark_event_marks: LarkEventMarksTable;
  lark_event_mark_scan: LarkEventMarkScanTable;
  connector_event_health: ConnectorEventHealthTable;
  // Stream tables are not listed: modules declare them (connectors/*/index.ts), the engine writes
  // them (sync/write-page.ts) and the records API reads them, through sql.table.
}

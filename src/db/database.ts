import type { AppsTable } from '../apps/apps.table.js';
import type { AccessTokensTable, AppTicketsTable, TicketResendsTable } from '../tokens/tokens.table.js';
import type { TenantAuditTable, TenantsTable } from '../tenants/tenants.table.js';
import type { LarkEventShardsTable, LarkEventsTable } from '../events/events.table.js';
import type { WorkerProcessesTable } from '../worker/worker-processes.js';
import type { EncryptionCanaryTable } from '../keys/keys.table.js';
import type {
  ConnectorsTable,
  RateBucketsTable,
  StreamStatesTable,
  StreamTableBase,
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
  encryption_canary: EncryptionCanaryTable;
  // Stream tables are written by the generic engine (sync/write-page.ts) and read by the records
  // API; their module-specific columns are described in sync/streams.ts.
  approval_instances: StreamTableBase;
  approval_instance_fields: StreamTableBase;
  approval_tasks: StreamTableBase;
  approval_timeline: StreamTableBase;
  base_records: StreamTableBase;
  base_fields: StreamTableBase;
  attendance_flows: StreamTableBase;
  contact_departments: StreamTableBase;
  contact_users: StreamTableBase;
}

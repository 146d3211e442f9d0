import type { AppsTable } from '../apps/apps.table.js';
import type { AccessTokensTable, AppTicketsTable, TicketResendsTable } from '../tokens/tokens.table.js';
import type { TenantAuditTable, TenantsTable } from '../tenants/tenants.table.js';
import type { LarkEventsTable } from '../events/events.table.js';

export interface Database {
  apps: AppsTable;
  app_tickets: AppTicketsTable;
  ticket_resends: TicketResendsTable;
  tenants: TenantsTable;
  tenant_audit: TenantAuditTable;
  access_tokens: AccessTokensTable;
  lark_events: LarkEventsTable;
}

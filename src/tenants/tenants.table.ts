import type { ColumnType, Generated, Insertable, JSONColumnType, Selectable } from 'kysely';

export type TenantStatus = 'active' | 'paused' | 'uninstalled';

export interface TenantsTable {
  tenant_key: string;
  app_id: string;
  status: TenantStatus;
  status_reason: string | null;
  name: string | null;
  installer_open_id: string | null;
  installer_employee_open_id: string | null;
  applicants: JSONColumnType<Array<{ open_id?: string }>, string | undefined, string>;
  installed_at: ColumnType<Date, Date | undefined, Date>;
  status_changed_at: ColumnType<Date, Date | undefined, Date>;
  uninstalled_at: Date | null;
  /** push time of the event that last set `status` */
  status_event_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}
export type TenantRow = Selectable<TenantsTable>;
export type NewTenantRow = Insertable<TenantsTable>;

export interface TenantAuditTable {
  id: Generated<string>;
  tenant_key: string;
  action: string;
  detail: JSONColumnType<Record<string, unknown>, string | undefined, string>;
  event_id: string | null;
  created_at: ColumnType<Date, never, never>;
}
export type TenantAuditRow = Selectable<TenantAuditTable>;

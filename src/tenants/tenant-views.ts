import type { TenantDetailType, TenantSummaryType } from '../schemas/tenants.js';
import type { TokenHealth } from '../tokens/token-health.js';
import type { TenantAuditRow, TenantRow } from './tenants.table.js';

export function toTenantSummary(row: TenantRow): TenantSummaryType {
  return {
    tenantKey: row.tenant_key,
    appId: row.app_id,
    status: row.status,
    name: row.name,
    installedAt: row.installed_at.toISOString(),
    statusChangedAt: row.status_changed_at.toISOString(),
  };
}

export function toTenantDetail(
  row: TenantRow,
  appType: 'store' | 'custom',
  token: TokenHealth,
  audit: TenantAuditRow[],
): TenantDetailType {
  return {
    tenantKey: row.tenant_key,
    appId: row.app_id,
    appType,
    status: row.status,
    statusReason: row.status_reason,
    name: row.name,
    installer: row.installer_open_id,
    installerEmployee: row.installer_employee_open_id,
    applicants: row.applicants.map((a) => a.open_id).filter((id): id is string => typeof id === 'string'),
    installedAt: row.installed_at.toISOString(),
    statusChangedAt: row.status_changed_at.toISOString(),
    uninstalledAt: row.uninstalled_at ? row.uninstalled_at.toISOString() : null,
    token,
    lifecycle: audit.map((a) => ({
      action: a.action,
      at: a.created_at.toISOString(),
      eventId: a.event_id,
      appId: typeof a.detail.appId === 'string' ? a.detail.appId : null,
    })),
  };
}

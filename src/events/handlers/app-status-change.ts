import { str, type EventHandler } from './types.js';

const KNOWN = new Set(['start_by_tenant', 'stop_by_tenant', 'stop_by_platform']);

export const handleAppStatusChange: EventHandler = async (event, ctx) => {
  const tenantKey = str(event.tenant_key);
  const appId = str(event.app_id) ?? ctx.appId;
  const status = str(event.status);
  if (!tenantKey || !appId || !status || !KNOWN.has(status)) return 'ignored';
  const changed = await ctx.services.tenants.changeStatus(tenantKey, appId, status, ctx.eventId, event.operator, ctx.pushedAt);
  // A paused tenant's queued and running syncs stop (a running slice notices at its next beat);
  // judged by the tenant's state, so a stale stop event does not cancel an active tenant's work,
  // nor one of this app's pushes the work of a tenant another app serves.
  const tenant = await ctx.services.tenants.get(tenantKey);
  if (tenant?.status === 'paused' && tenant.app_id === appId) {
    await ctx.services.sync.cancelTenantRuns(tenantKey, `tenant paused (${status})`);
  }
  return changed ? 'processed' : 'ignored';
};

import { str, type EventHandler } from './types.js';

export const handleAppUninstalled: EventHandler = async (event, ctx) => {
  const tenantKey = str(event.tenant_key);
  const appId = str(event.app_id) ?? ctx.appId;
  if (!tenantKey || !appId) return 'ignored';
  const changed = await ctx.services.tenants.uninstall(tenantKey, appId, ctx.eventId, ctx.pushedAt);
  // Follow the tenant's state, not the event: a repeated run still purges (a token minted in
  // between must not outlive the uninstall), a stale one (the tenant reinstalled since) does not,
  // and neither does one for a tenant another app serves (its tokens and runs are not ours).
  const tenant = await ctx.services.tenants.get(tenantKey);
  if (tenant?.status === 'uninstalled' && tenant.app_id === appId) {
    await ctx.services.tokens.purgeTenant(tenantKey, appId);
    await ctx.services.sync.cancelTenantRuns(tenantKey, 'tenant uninstalled the app');
    // Lark dropped the subscriptions with the install; rows left behind would claim otherwise.
    await ctx.services.subscriptions.tenantUninstalled(tenantKey);
  }
  return changed ? 'processed' : 'ignored';
};

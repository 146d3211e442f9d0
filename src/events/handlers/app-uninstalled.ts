import { str, type EventHandler } from './types.js';

export const handleAppUninstalled: EventHandler = async (event, ctx) => {
  const tenantKey = str(event.tenant_key);
  const appId = str(event.app_id) ?? ctx.appId;
  if (!tenantKey || !appId) return 'ignored';
  const changed = await ctx.services.tenants.uninstall(tenantKey, appId, ctx.eventId);
  // Purge even on a repeated run: a token minted in between must not outlive the uninstall.
  await ctx.services.tokens.purgeTenant(tenantKey);
  await ctx.services.sync.cancelTenantRuns(tenantKey, 'tenant uninstalled the app');
  return changed ? 'processed' : 'ignored';
};

import { openId, str, type EventHandler } from './types.js';

export const handleAppOpen: EventHandler = async (event, ctx) => {
  const tenantKey = str(event.tenant_key);
  const appId = str(event.app_id) ?? ctx.appId;
  if (!tenantKey || !appId) return 'ignored';
  const applicants = Array.isArray(event.applicants)
    ? event.applicants.map((a) => ({ open_id: openId(a) ?? undefined }))
    : [];
  const changed = await ctx.services.tenants.install(
    {
      tenantKey,
      appId,
      installerOpenId: openId(event.installer),
      installerEmployeeOpenId: openId(event.installer_employee),
      applicants,
    },
    ctx.eventId,
    'installed',
    ctx.pushedAt,
  );
  // Mint right away so token health is known at once. A failure is recorded in the token's
  // health and retried by the refresher; it does not fail the event. Not for a tenant another
  // app serves: this push changed nothing there.
  const tenant = await ctx.services.tenants.get(tenantKey);
  if (tenant?.app_id === appId && tenant.status !== 'uninstalled') {
    try {
      // From the row: a token this process held from before an uninstall (purged since, here or
      // by another replica) must not stand in for the install's own.
      await ctx.services.tokens.getTenantAccessToken(tenantKey, { reread: true });
    } catch (err) {
      ctx.services.log.warn({ tenantKey, err: (err as Error).message }, 'first tenant token mint failed');
    }
    // A reinstall finds its connectors configured: their change-event subscriptions are made again.
    if (changed) await ctx.services.subscriptions.queue(tenantKey, 'installed');
  }
  return changed ? 'processed' : 'ignored';
};

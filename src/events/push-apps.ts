import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';

/**
 * The app a stored push speaks for, as far as applying it goes:
 * - `store`: the store app (or no app id at all, as before);
 * - `custom`: a registered custom app, with the one tenant it serves (null: none any more, e.g.
 *   the company moved to the store app);
 * - `unknown`: any other app id (a misrouted console setting): stored, never applied.
 */
export type PushApp = { kind: 'store' } | { kind: 'custom'; tenantKey: string | null } | { kind: 'unknown' };

export async function pushAppOf(db: Kysely<Database>, appId: string | null, storeAppId: string | undefined): Promise<PushApp> {
  if (!appId || appId === storeAppId) return { kind: 'store' };
  const app = await db.selectFrom('apps').select('kind').where('app_id', '=', appId).where('kind', '=', 'custom').executeTakeFirst();
  if (!app) return { kind: 'unknown' };
  // A custom app belongs to one tenant (auth.md §2); the tenant row names the app serving it.
  const tenant = await db.selectFrom('tenants').select('tenant_key').where('app_id', '=', appId).orderBy('updated_at', 'desc').limit(1).executeTakeFirst();
  return { kind: 'custom', tenantKey: tenant?.tenant_key ?? null };
}

/**
 * Lifecycle events a custom app's push may carry. Lark sends app_ticket, app_open and
 * app_uninstalled to store apps only (events.md §8), so a custom app's push of one is ignored (an
 * app_open would let whoever holds the app's keys claim another tenant key). app_status_change is
 * documented for store apps too, but its `operator.user_id` is said to come "only for self-built
 * apps" (unconfirmed either way): taken, for the app's own tenant. A user's revoked token
 * concerns the app's own grants.
 */
const CUSTOM_APP_LIFECYCLE = new Set(['app_status_change', 'auth.user_access_token.revoked_v4']);

/**
 * Whether a stored push is applied for the app it speaks for: the store app's always (each
 * handler then checks the tenant is the store app's); a custom app's only for its own tenant and
 * only change events or the lifecycle events above; an unknown app's never.
 */
export function appliesFor(app: PushApp, e: { eventType: string; tenantKey: string | null }, changeEventTypes: ReadonlySet<string>): boolean {
  if (app.kind === 'store') return true;
  if (app.kind === 'unknown' || app.tenantKey === null) return false;
  if (!changeEventTypes.has(e.eventType) && !CUSTOM_APP_LIFECYCLE.has(e.eventType)) return false;
  // A revoked user token may come without a tenant (its grants are looked up by app and user).
  return e.tenantKey === app.tenantKey || (e.tenantKey === null && e.eventType === 'auth.user_access_token.revoked_v4');
}

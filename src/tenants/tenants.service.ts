import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import type { TenantAuditRow, TenantRow, TenantStatus } from './tenants.table.js';
import { lockTenantLifecycle } from './tenant-lock.js';
import { emitWebhookEvent } from '../webhooks/emit.js';

export type LifecycleAction = 'installed' | 'reinstalled' | 'paused' | 'resumed' | 'uninstalled' | 'custom_app_registered';

const STALE_ACTION = 'ignored_stale_event';
/** A lifecycle push of one app for a tenant another app serves: recorded, not applied. */
const OTHER_APP_ACTION = 'ignored_other_app';
const INSTALL_ACTIONS = ['installed', 'reinstalled', 'custom_app_registered', STALE_ACTION, OTHER_APP_ACTION] as const;
const STATUS_ACTIONS = ['paused', 'resumed', 'ignored_status_change', STALE_ACTION, OTHER_APP_ACTION] as const;
const UNINSTALL_ACTIONS = ['uninstalled', STALE_ACTION, OTHER_APP_ACTION] as const;

/** Tenant keys `exists` keeps at most (about 100 bytes each); past it, it starts again. */
const MAX_KNOWN_TENANTS = 100_000;

/** What a lifecycle transaction reads of the tenant, locked. */
interface LockedTenant {
  app_id: string;
  status: TenantStatus;
  status_event_at: Date | null;
}

export interface InstallFacts {
  tenantKey: string;
  appId: string;
  installerOpenId?: string | null;
  installerEmployeeOpenId?: string | null;
  applicants?: Array<{ open_id?: string }>;
  name?: string | null;
}

/**
 * Tenant lifecycle. Every change writes an audit row in the same transaction, naming the app that
 * acted; an event's change is keyed by (event_id, action), so a job that runs twice applies it
 * once. A tenant is served by one app at a time: a lifecycle push of another app for a tenant it
 * does not serve (the store app's app_open or app_uninstalled for a company that registered its
 * own custom app) is recorded as `ignored_other_app` and changes nothing. An uninstalled tenant
 * is served by nobody, so either kind of app may install it again.
 */
export class TenantsService {
  /**
   * Tenant keys found to exist. No code deletes a tenant row (an uninstalled tenant stays
   * readable), so a key once found stays found, on every replica: only keys found are kept, never
   * a miss. Should tenants ever be deleted, this must go.
   */
  private readonly known = new Set<string>();

  constructor(private readonly db: Kysely<Database>) {}

  async get(tenantKey: string): Promise<TenantRow | undefined> {
    return this.db.selectFrom('tenants').selectAll().where('tenant_key', '=', tenantKey).executeTakeFirst();
  }

  /**
   * Whether the tenant exists (in any status). Asked by the records API for each empty page (an
   * unknown tenant is a 404): consumers polling quiet feeds made it ask the database 4,365 times
   * more in a 15 s realtime bench run (200 changes/s) than with this.
   */
  async exists(tenantKey: string): Promise<boolean> {
    if (this.known.has(tenantKey)) return true;
    const row = await this.db.selectFrom('tenants').select('tenant_key').where('tenant_key', '=', tenantKey).executeTakeFirst();
    if (!row) return false;
    if (this.known.size >= MAX_KNOWN_TENANTS) this.known.clear();
    this.known.add(tenantKey);
    return true;
  }

  async list(opts: { status?: TenantStatus; limit: number; after?: string }): Promise<TenantRow[]> {
    let q = this.db.selectFrom('tenants').selectAll().orderBy('tenant_key').limit(opts.limit);
    if (opts.status) q = q.where('status', '=', opts.status);
    if (opts.after) q = q.where('tenant_key', '>', opts.after);
    return q.execute();
  }

  async audit(tenantKey: string, limit = 50): Promise<TenantAuditRow[]> {
    return this.db
      .selectFrom('tenant_audit')
      .selectAll()
      .where('tenant_key', '=', tenantKey)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }

  /** app_open (or a custom app's registration): creates the tenant, or reactivates it. */
  async install(
    facts: InstallFacts,
    eventId: string | null,
    action: 'installed' | 'custom_app_registered' = 'installed',
    pushedAt: Date = new Date(),
  ): Promise<boolean> {
    return this.db.transaction().execute((trx) => this.installIn(trx, facts, eventId, action, pushedAt));
  }

  /**
   * install() inside the caller's transaction (a custom app's registration stores the app, the
   * tenant and its token in one). Returns false when nothing changed: a repeated event, a stale
   * one, or a tenant another app serves.
   */
  async installIn(
    trx: Transaction<Database>,
    facts: InstallFacts,
    eventId: string | null,
    action: 'installed' | 'custom_app_registered',
    pushedAt: Date = new Date(),
  ): Promise<boolean> {
    const existing = await this.lockTenant(trx, facts.tenantKey);
    // The action depends on the state the first run found; a re-run (a job retried after a
    // crash between this commit and marking the event done) sees that run's own result
    // ('reinstalled' leaves the tenant active), so dedupe on the event, not on (event, action).
    if (eventId && (await this.eventApplied(trx, eventId, INSTALL_ACTIONS))) return false;
    if (await this.servedByOther(trx, facts.tenantKey, existing, facts.appId, eventId)) return false;
    if (action === 'custom_app_registered') {
      // An operator registering an app acts now, after every push recorded so far; judged
      // against a push time from Lark's clock (which may run ahead of ours) it could look
      // stale and leave the tenant as it was while the API answered 201.
      if (existing?.status_event_at && existing.status_event_at > pushedAt) pushedAt = existing.status_event_at;
    } else if (await this.isStale(trx, facts.tenantKey, existing?.status_event_at, pushedAt, eventId, facts.appId)) {
      return false;
    }
    const recorded = existing?.status === 'uninstalled' && action === 'installed' ? 'reinstalled' : action;
    if (!(await this.writeAudit(trx, facts.tenantKey, recorded, eventId, { appId: facts.appId }))) return false;
    const applicants = JSON.stringify(facts.applicants ?? []);
    await trx
      .insertInto('tenants')
      .values({
        tenant_key: facts.tenantKey,
        app_id: facts.appId,
        status: 'active',
        status_reason: recorded,
        name: facts.name ?? null,
        installer_open_id: facts.installerOpenId ?? null,
        installer_employee_open_id: facts.installerEmployeeOpenId ?? null,
        applicants,
        status_event_at: pushedAt,
      })
      .onConflict((oc) =>
        oc.column('tenant_key').doUpdateSet({
          app_id: facts.appId,
          status: 'active',
          status_reason: recorded,
          name: (eb) => eb.fn.coalesce(eb.ref('excluded.name'), eb.ref('tenants.name')),
          installer_open_id: (eb) => eb.fn.coalesce(eb.ref('excluded.installer_open_id'), eb.ref('tenants.installer_open_id')),
          installer_employee_open_id: (eb) =>
            eb.fn.coalesce(eb.ref('excluded.installer_employee_open_id'), eb.ref('tenants.installer_employee_open_id')),
          applicants: (eb) => eb.ref('excluded.applicants'),
          // A reinstall is a new installation; a repeated app_open of an active tenant is not.
          installed_at: existing?.status === 'uninstalled' ? sql<Date>`now()` : sql<Date>`tenants.installed_at`,
          status_changed_at: sql<Date>`now()`,
          status_event_at: pushedAt,
          uninstalled_at: null,
          updated_at: sql<Date>`now()`,
        }),
      )
      .execute();
    await emitWebhookEvent(trx, { type: 'tenant.installed', tenantKey: facts.tenantKey, data: { appId: facts.appId, action: recorded, name: facts.name ?? null } });
    return true;
  }

  /**
   * app_status_change. A status for a tenant we never saw opening creates it, since Lark may
   * deliver the enable event before (or without) app_open.
   */
  async changeStatus(
    tenantKey: string,
    appId: string,
    larkStatus: string,
    eventId: string | null,
    operator?: unknown,
    pushedAt: Date = new Date(),
  ): Promise<boolean> {
    const target: TenantStatus = larkStatus === 'start_by_tenant' ? 'active' : 'paused';
    return this.db.transaction().execute(async (trx) => {
      const existing = await this.lockTenant(trx, tenantKey);
      // As in install(): a re-run must not record a second, different outcome for the same event.
      if (eventId && (await this.eventApplied(trx, eventId, STATUS_ACTIONS))) return false;
      if (await this.servedByOther(trx, tenantKey, existing, appId, eventId)) return false;
      if (await this.isStale(trx, tenantKey, existing?.status_event_at, pushedAt, eventId, appId)) return false;
      if (existing?.status === 'uninstalled') {
        // Lark sends no status change after an uninstall; a late one must not revive the tenant.
        await this.writeAudit(trx, tenantKey, 'ignored_status_change', eventId, { appId, larkStatus });
        return false;
      }
      const action = target === 'active' ? 'resumed' : 'paused';
      if (!(await this.writeAudit(trx, tenantKey, action, eventId, { appId, larkStatus, operator: operator ?? null }))) return false;
      await trx
        .insertInto('tenants')
        .values({ tenant_key: tenantKey, app_id: appId, status: target, status_reason: larkStatus, status_event_at: pushedAt })
        .onConflict((oc) =>
          oc.column('tenant_key').doUpdateSet({
            status: target,
            status_reason: larkStatus,
            status_event_at: pushedAt,
            status_changed_at: sql<Date>`now()`,
            updated_at: sql<Date>`now()`,
          }),
        )
        .execute();
      await emitWebhookEvent(trx, { type: 'tenant.status_changed', tenantKey, data: { appId, status: target, previousStatus: existing?.status ?? null, larkStatus } });
      return true;
    });
  }

  /**
   * app_uninstalled: the tenant stays readable, marked uninstalled, and this app's tokens for it
   * are deleted (the caller purges again, after a mint that was in flight).
   */
  async uninstall(tenantKey: string, appId: string, eventId: string | null, pushedAt: Date = new Date()): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const existing = await this.lockTenant(trx, tenantKey);
      if (eventId && (await this.eventApplied(trx, eventId, UNINSTALL_ACTIONS))) return false;
      if (await this.servedByOther(trx, tenantKey, existing, appId, eventId)) return false;
      if (await this.isStale(trx, tenantKey, existing?.status_event_at, pushedAt, eventId, appId)) return false;
      if (!(await this.writeAudit(trx, tenantKey, 'uninstalled', eventId, { appId }))) return false;
      await trx
        .insertInto('tenants')
        .values({
          tenant_key: tenantKey,
          app_id: appId,
          status: 'uninstalled',
          status_reason: 'app_uninstalled',
          uninstalled_at: sql<Date>`now()`,
          status_event_at: pushedAt,
        })
        .onConflict((oc) =>
          oc.column('tenant_key').doUpdateSet({
            status: 'uninstalled',
            status_reason: 'app_uninstalled',
            status_event_at: pushedAt,
            status_changed_at: sql<Date>`now()`,
            uninstalled_at: sql<Date>`now()`,
            updated_at: sql<Date>`now()`,
          }),
        )
        .execute();
      // In the same transaction, so no reader ever sees an uninstalled tenant with a live token.
      // Only this app's: another app's token for the tenant is not this app's to revoke.
      await trx
        .deleteFrom('access_tokens')
        .where('kind', '=', 'tenant')
        .where('tenant_key', '=', tenantKey)
        .where('app_id', '=', appId)
        .execute();
      await emitWebhookEvent(trx, { type: 'tenant.uninstalled', tenantKey, data: { appId } });
      return true;
    });
  }

  /**
   * Serialises lifecycle transactions of one tenant, then reads it locked. The row lock alone
   * does not do when there is no row yet: two transactions (say an app_open's retry and an
   * app_uninstalled, which run in different jobs) would both find nothing, both pass isStale,
   * and the later upsert would win whatever its push time.
   */
  private async lockTenant(trx: Transaction<Database>, tenantKey: string): Promise<LockedTenant | undefined> {
    await lockTenantLifecycle(trx, tenantKey);
    return trx
      .selectFrom('tenants')
      .select(['app_id', 'status', 'status_event_at'])
      .where('tenant_key', '=', tenantKey)
      .forUpdate()
      .executeTakeFirst();
  }

  /** True (and recorded) when another app serves this tenant, so `appId`'s push must not touch it. */
  private async servedByOther(
    trx: Transaction<Database>,
    tenantKey: string,
    existing: LockedTenant | undefined,
    appId: string,
    eventId: string | null,
  ): Promise<boolean> {
    if (!existing || existing.app_id === appId || existing.status === 'uninstalled') return false;
    await this.writeAudit(trx, tenantKey, OTHER_APP_ACTION, eventId, { appId, servedBy: existing.app_id });
    return true;
  }

  /**
   * An event pushed before the one that set the current status is not applied (a retry after a
   * failed job runs behind later events of its tenant, and Lark may reorder pushes too). It is
   * recorded, so its job counts as done.
   */
  private async isStale(
    trx: Transaction<Database>,
    tenantKey: string,
    statusEventAt: Date | null | undefined,
    pushedAt: Date,
    eventId: string | null,
    appId: string,
  ): Promise<boolean> {
    if (!statusEventAt || statusEventAt.getTime() <= pushedAt.getTime()) return false;
    await this.writeAudit(trx, tenantKey, STALE_ACTION, eventId, {
      appId,
      pushedAt: pushedAt.toISOString(),
      statusSetBy: statusEventAt.toISOString(),
    });
    return true;
  }

  private async eventApplied(trx: Transaction<Database>, eventId: string, actions: readonly string[]): Promise<boolean> {
    const row = await trx
      .selectFrom('tenant_audit')
      .select('id')
      .where('event_id', '=', eventId)
      .where('action', 'in', actions)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Returns false when this event already wrote this action (a duplicate run). */
  private async writeAudit(
    trx: Transaction<Database>,
    tenantKey: string,
    action: string,
    eventId: string | null,
    detail: Record<string, unknown>,
  ): Promise<boolean> {
    const row = await trx
      .insertInto('tenant_audit')
      .values({ tenant_key: tenantKey, action, event_id: eventId, detail: JSON.stringify(detail) })
      .onConflict((oc) => oc.columns(['event_id', 'action']).where('event_id', 'is not', null).doNothing())
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }
}

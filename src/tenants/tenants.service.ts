import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import type { TenantAuditRow, TenantRow, TenantStatus } from './tenants.table.js';

export type LifecycleAction = 'installed' | 'reinstalled' | 'paused' | 'resumed' | 'uninstalled' | 'custom_app_registered';

const STALE_ACTION = 'ignored_stale_event';
const INSTALL_ACTIONS = ['installed', 'reinstalled', 'custom_app_registered', STALE_ACTION] as const;
const STATUS_ACTIONS = ['paused', 'resumed', 'ignored_status_change', STALE_ACTION] as const;

export interface InstallFacts {
  tenantKey: string;
  appId: string;
  installerOpenId?: string | null;
  installerEmployeeOpenId?: string | null;
  applicants?: Array<{ open_id?: string }>;
  name?: string | null;
}

/**
 * Tenant lifecycle. Every change writes an audit row in the same transaction; an event's change
 * is keyed by (event_id, action), so a job that runs twice applies it once.
 */
export class TenantsService {
  constructor(private readonly db: Kysely<Database>) {}

  async get(tenantKey: string): Promise<TenantRow | undefined> {
    return this.db.selectFrom('tenants').selectAll().where('tenant_key', '=', tenantKey).executeTakeFirst();
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
    return this.db.transaction().execute(async (trx) => {
      const existing = await trx
        .selectFrom('tenants')
        .select(['status', 'status_event_at'])
        .where('tenant_key', '=', facts.tenantKey)
        .forUpdate()
        .executeTakeFirst();
      // The action depends on the state the first run found; a re-run (a job retried after a
      // crash between this commit and marking the event done) sees that run's own result
      // ('reinstalled' leaves the tenant active), so dedupe on the event, not on (event, action).
      if (eventId && (await this.eventApplied(trx, eventId, INSTALL_ACTIONS))) return false;
      if (await this.isStale(trx, facts.tenantKey, existing?.status_event_at, pushedAt, eventId)) return false;
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
      return true;
    });
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
      const existing = await trx
        .selectFrom('tenants')
        .select(['status', 'status_event_at'])
        .where('tenant_key', '=', tenantKey)
        .forUpdate()
        .executeTakeFirst();
      // As in install(): a re-run must not record a second, different outcome for the same event.
      if (eventId && (await this.eventApplied(trx, eventId, STATUS_ACTIONS))) return false;
      if (await this.isStale(trx, tenantKey, existing?.status_event_at, pushedAt, eventId)) return false;
      if (existing?.status === 'uninstalled') {
        // Lark sends no status change after an uninstall; a late one must not revive the tenant.
        await this.writeAudit(trx, tenantKey, 'ignored_status_change', eventId, { larkStatus });
        return false;
      }
      const action = target === 'active' ? 'resumed' : 'paused';
      if (!(await this.writeAudit(trx, tenantKey, action, eventId, { larkStatus, operator: operator ?? null }))) return false;
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
      return true;
    });
  }

  /** app_uninstalled: the tenant stays readable, marked uninstalled. Tokens are purged by the caller. */
  async uninstall(tenantKey: string, appId: string, eventId: string | null, pushedAt: Date = new Date()): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const existing = await trx
        .selectFrom('tenants')
        .select(['status_event_at'])
        .where('tenant_key', '=', tenantKey)
        .forUpdate()
        .executeTakeFirst();
      if (eventId && (await this.eventApplied(trx, eventId, ['uninstalled', STALE_ACTION]))) return false;
      if (await this.isStale(trx, tenantKey, existing?.status_event_at, pushedAt, eventId)) return false;
      if (!(await this.writeAudit(trx, tenantKey, 'uninstalled', eventId, {}))) return false;
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
      await trx.deleteFrom('access_tokens').where('kind', '=', 'tenant').where('tenant_key', '=', tenantKey).execute();
      return true;
    });
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
  ): Promise<boolean> {
    if (!statusEventAt || statusEventAt.getTime() <= pushedAt.getTime()) return false;
    await this.writeAudit(trx, tenantKey, STALE_ACTION, eventId, {
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

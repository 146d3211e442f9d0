import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import type { AppKind, AppRow, AppsTable } from './apps.table.js';
import type { SyncModuleName } from '../sync/sync.tables.js';
import type { TenantStatus } from '../tenants/tenants.table.js';

/** The error for a tenant whose app is not registered (a caller's 404). */
export const appNotFound = (appId: string) => new AppError(404, 'app_not_found', `app ${appId} is not registered`);

export async function findApp(db: Kysely<Database>, appId: string): Promise<AppRow | undefined> {
  return db.selectFrom('apps').selectAll().where('app_id', '=', appId).executeTakeFirst();
}

/**
 * A tenant's status and the app serving it, in one read (the token service asks it for every
 * holder of a tenant's tokens: each change event group, sync slice and subscription job).
 * `app` is undefined when the tenant names an app that is not registered.
 */
export async function findTenantApp(db: Kysely<Database>, tenantKey: string): Promise<TenantApp | undefined> {
  const row = await tenantAppQuery(db, tenantKey).executeTakeFirst();
  return row && tenantAppOf(row);
}

/**
 * Every column of an app, named: `a.*` would keep the read unnamed (statement-names.ts), and
 * Postgres would plan it again at every call (each change event's handler makes it). A record of
 * every column, so a column added to AppsTable and left out here does not compile.
 */
const APP_COLUMN_SET: Record<keyof AppsTable, true> = {
  app_id: true,
  kind: true,
  domain: true,
  secret_sealed: true,
  verification_token_sealed: true,
  encrypt_key_sealed: true,
  created_at: true,
  updated_at: true,
};
const APP_COLUMNS = Object.keys(APP_COLUMN_SET).map((c) => `a.${c}`) as ReadonlyArray<`a.${keyof AppsTable}`>;

/** The tenant's row joined with its app's (every app column, null when no app matched). */
function tenantAppQuery(db: Kysely<Database>, tenantKey: string) {
  return db
    .selectFrom('tenants as t')
    .leftJoin('apps as a', 'a.app_id', 't.app_id')
    .select(APP_COLUMNS)
    .select(['t.app_id as tenant_app_id', 't.status as tenant_status'])
    .where('t.tenant_key', '=', tenantKey);
}

/**
 * As findTenantApp, with the tenant's connector of `module` (undefined when it has none), in the
 * same read: a change event's handler needs all three before it runs.
 */
export async function findTenantAppConnector(
  db: Kysely<Database>,
  tenantKey: string,
  module: SyncModuleName,
): Promise<(TenantApp & { connector: { config: unknown; enabled: boolean } | undefined }) | undefined> {
  const row = await tenantAppQuery(db, tenantKey)
    .leftJoin('connectors as c', (j) => j.onRef('c.tenant_key', '=', 't.tenant_key').on('c.module', '=', module))
    .select(['c.config as connector_config', 'c.enabled as connector_enabled'])
    .executeTakeFirst();
  if (!row) return undefined;
  const { connector_config, connector_enabled, ...rest } = row;
  return { ...tenantAppOf(rest), connector: connector_enabled === null ? undefined : { config: connector_config, enabled: connector_enabled } };
}

export interface TenantApp {
  appId: string;
  status: TenantStatus;
  /** undefined when the tenant names an app that is not registered */
  app: AppRow | undefined;
}

/** Splits a tenants-join-apps row (the app's columns, null when no app matched) into a TenantApp. */
function tenantAppOf(row: { tenant_app_id: string; tenant_status: TenantStatus } & { [K in keyof AppRow]: AppRow[K] | null }): TenantApp {
  const { tenant_app_id, tenant_status, ...app } = row;
  return { appId: tenant_app_id, status: tenant_status, app: app.app_id === null ? undefined : (app as AppRow) };
}

export async function upsertApp(
  db: Kysely<Database>,
  row: { app_id: string; kind: AppKind; domain: string; secret_sealed: Buffer; verification_token_sealed?: Buffer | null; encrypt_key_sealed?: Buffer | null },
): Promise<void> {
  await db
    .insertInto('apps')
    .values(row)
    .onConflict((oc) =>
      oc.column('app_id').doUpdateSet({
        domain: (eb) => eb.ref('excluded.domain'),
        secret_sealed: (eb) => eb.ref('excluded.secret_sealed'),
        // Registered again without push credentials (a new secret only): the ones it had stay.
        verification_token_sealed: sql<Buffer | null>`coalesce(excluded.verification_token_sealed, apps.verification_token_sealed)`,
        // The Encrypt Key likewise, unless the caller said null (cleared in the app's console).
        encrypt_key_sealed:
          row.encrypt_key_sealed === undefined ? sql<Buffer | null>`apps.encrypt_key_sealed` : sql<Buffer | null>`excluded.encrypt_key_sealed`,
        updated_at: sql<Date>`now()`,
      }),
    )
    .execute();
}

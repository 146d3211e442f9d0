import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // A user's authorization of the app (OAuth code flow): one per (app, tenant, user). The access
  // and refresh tokens are sealed; a refresh token is single-use and rotates, so it is refreshed
  // under a short lease on this row (mint_lease / minting_until), exactly once across processes.
  await db.schema
    .createTable('user_grants')
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('tenant_key', 'text', (c) => c.notNull())
    .addColumn('open_id', 'text', (c) => c.notNull())
    .addColumn('union_id', 'text')
    .addColumn('user_id', 'text')
    .addColumn('name', 'text')
    .addColumn('scopes', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('access_sealed', 'bytea')
    .addColumn('refresh_sealed', 'bytea')
    .addColumn('access_expires_at', 'timestamptz')
    .addColumn('refresh_expires_at', 'timestamptz')
    .addColumn('refresh_at', 'timestamptz')
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'needs_reauth', 'revoked')`))
    .addColumn('status_reason', 'text')
    .addColumn('status_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('authorized_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('refreshed_at', 'timestamptz')
    .addColumn('refresh_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('mint_lease', 'uuid')
    .addColumn('minting_until', 'timestamptz')
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('last_error_class', 'text')
    .addColumn('last_error_code', 'text')
    .addColumn('last_error_at', 'timestamptz')
    .addPrimaryKeyConstraint('user_grants_pk', ['app_id', 'tenant_key', 'open_id'])
    .execute();
  await sql`create index user_grants_tenant_idx on user_grants (tenant_key, open_id)`.execute(db);
  await sql`create index user_grants_refresh_idx on user_grants (refresh_at) where status = 'active'`.execute(db);

  // The other half of a sign-in in flight: the `state` sent to Lark's authorize page names a row
  // here (single use, 10 minutes), which holds the PKCE verifier (sealed) and where to go after.
  await db.schema
    .createTable('oauth_states')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('verifier_sealed', 'bytea', (c) => c.notNull())
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('return_to', 'text', (c) => c.notNull())
    .addColumn('tenant_hint', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();

  // Sessions of the admin page: the cookie holds a random id (signed); the tenant and user come
  // from the sign-in, never from a URL or a form.
  await db.schema
    .createTable('web_sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('data', 'jsonb', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await sql`create index web_sessions_expiry_idx on web_sessions (expires_at)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('web_sessions').execute();
  await db.schema.dropTable('oauth_states').execute();
  await db.schema.dropTable('user_grants').execute();
}

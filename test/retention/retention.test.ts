import { sql } from 'kysely';
import { parseCrontab } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PURGE_ACTION, dropFinishedSeenPages, pruneSyncRuns, purgeUninstalledTenants } from '../../src/retention/retention.js';
import { STREAM_CATALOG } from '../../src/connectors/index.js';
import { CRONTAB, createTaskList } from '../../src/worker/tasks.js';
import type { Services } from '../../src/services.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await t.db.insertInto('apps').values({ app_id: 'cli_r', kind: 'store', domain: 'feishu', secret_sealed: Buffer.from('x') }).execute();
});
afterAll(async () => {
  await t?.drop();
});

async function run(tenant: string, module: string, status: string, daysAgo: number): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    insert into sync_runs (tenant_key, module, mode, trigger, status, created_at)
    values (${tenant}, ${module}, 'full', 'schedule', ${status}, now() - make_interval(days => ${daysAgo}))
    returning id`.execute(t.db);
  return rows[0]!.id;
}

const ids = async () => (await t.db.selectFrom('sync_runs').select('id').orderBy('id').execute()).map((r) => r.id);

describe('sync history retention (RETENTION_DAYS)', () => {
  it('deletes finished runs past the retention, keeping each connector’s latest and every live run', async () => {
    const oldA = await run('t1', 'contact', 'succeeded', 120);
    const oldB = await run('t1', 'contact', 'failed', 100);
    const recent = await run('t1', 'contact', 'succeeded', 2);
    const onlyOld1 = await run('t1', 'base', 'succeeded', 200);
    const onlyOld2 = await run('t1', 'base', 'cancelled', 150);
    const otherTenant = await run('t2', 'contact', 'succeeded', 95);
    const stuck = await run('t2', 'approval', 'running', 300);
    const queued = await run('t2', 'approval2', 'queued', 300);
    const edge = await run('t3', 'contact', 'succeeded', 80);
    const edgeLatest = await run('t3', 'contact', 'succeeded', 1);

    expect(await pruneSyncRuns(t.db, 90)).toBe(3);
    const left = await ids();
    for (const gone of [oldA, oldB, onlyOld1]) expect(left).not.toContain(gone);
    // The latest of a connector stays however old; live runs and runs within 90 days stay.
    for (const kept of [recent, onlyOld2, otherTenant, stuck, queued, edge, edgeLatest]) expect(left).toContain(kept);
    expect(await pruneSyncRuns(t.db, 90)).toBe(0);
  });

  it('drops the seen keys of runs that no longer run', async () => {
    const live = await run('t4', 'contact', 'running', 0);
    const done = await run('t4', 'base', 'succeeded', 0);
    const cancelled = await run('t4', 'approval', 'cancelled', 0);
    for (const runId of [live, done, cancelled, '987654321']) {
      await t.db.insertInto('sync_seen_pages').values({ run_id: runId, stream: 's', partition: '', keys: ['a', 'b'] }).execute();
    }
    expect(await dropFinishedSeenPages(t.db)).toBe(3);
    const left = await t.db.selectFrom('sync_seen_pages').select('run_id').execute();
    expect(left).toEqual([{ run_id: live }]);
  });
});

describe('uninstalled tenants (UNINSTALL_PURGE_DAYS)', () => {
  async function tenant(key: string, status: 'active' | 'uninstalled', uninstalledDaysAgo: number | null) {
    await sql`
      insert into tenants (tenant_key, app_id, status, uninstalled_at)
      values (${key}, 'cli_r', ${status}, ${uninstalledDaysAgo === null ? null : sql`now() - make_interval(days => ${uninstalledDaysAgo})`})`.execute(t.db);
    await sql`insert into contact_users (tenant_key, record_key, raw, content_hash, open_id) values (${key}, 'ou_1', '{}', 'h', 'ou_1'), (${key}, 'ou_2', '{}', 'h', 'ou_2')`.execute(t.db);
    await sql`
      insert into base_records (tenant_key, record_key, raw, content_hash, app_token, table_id, record_id, fields)
      values (${key}, 'r1', '{}', 'h', 'app', 'tbl', 'r1', '{}')`.execute(t.db);
    await sql`insert into stream_states (tenant_key, module, stream, state) values (${key}, 'contact', 'contact_users', '{"cursor":1}')`.execute(t.db);
    await sql`insert into access_tokens (app_id, kind, tenant_key, token_sealed) values ('cli_r', 'tenant', ${key}, '\\x00')`.execute(t.db);
    await sql`insert into connectors (tenant_key, module, enabled, interval_minutes, config) values (${key}, 'contact', true, 60, '{}')`.execute(t.db);
    // A subscription row left from before app_uninstalled forgot them (the purge is the safety net).
    await sql`insert into lark_subscriptions (tenant_key, module, object_token, object_type, status) values (${key}, 'approval', 'CODE-1', 'approval', 'failed')`.execute(t.db);
  }
  const count = async (table: string, key: string) =>
    (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)} where tenant_key = ${key}`.execute(t.db)).rows[0]!.n;

  it('purges synced rows, checkpoints and tokens after the grace period, once, with an audit row', async () => {
    await tenant('t-gone', 'uninstalled', 31);
    await tenant('t-recent', 'uninstalled', 5);
    await tenant('t-active', 'active', null);
    await sql`insert into access_tokens (app_id, kind, tenant_key, token_sealed) values ('cli_r', 'app', '', '\\x00')`.execute(t.db);

    const purged = await purgeUninstalledTenants(t.db, 30, STREAM_CATALOG.names());
    expect(purged).toEqual([
      { tenantKey: 't-gone', tokens: 1, rows: expect.objectContaining({ contact_users: 2, base_records: 1, approval_instances: 0 }) },
    ]);
    expect(Object.keys(purged[0]!.rows).sort()).toEqual(STREAM_CATALOG.names().sort());
    for (const table of ['contact_users', 'base_records', 'stream_states', 'access_tokens', 'lark_subscriptions']) expect(await count(table, 't-gone'), table).toBe(0);
    // Settings and the tenant row stay; others are untouched; the app token stays.
    expect(await count('connectors', 't-gone')).toBe(1);
    expect(await count('tenants', 't-gone')).toBe(1);
    for (const key of ['t-recent', 't-active']) {
      expect(await count('contact_users', key)).toBe(2);
      expect(await count('access_tokens', key)).toBe(1);
      expect(await count('lark_subscriptions', key)).toBe(1);
    }
    expect(await count('access_tokens', '')).toBe(1);
    const audit = await t.db.selectFrom('tenant_audit').selectAll().where('tenant_key', '=', 't-gone').execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: PURGE_ACTION, event_id: null, detail: { afterDays: 30, tokens: 1 } });

    // Again: nothing more, no second audit row.
    expect(await purgeUninstalledTenants(t.db, 30, STREAM_CATALOG.names())).toEqual([]);
    expect(await t.db.selectFrom('tenant_audit').select('id').where('tenant_key', '=', 't-gone').execute()).toHaveLength(1);
  });

  it('leaves a tenant that was reinstalled meanwhile', async () => {
    await tenant('t-back', 'uninstalled', 40);
    await sql`update tenants set status = 'active', uninstalled_at = null where tenant_key = 't-back'`.execute(t.db);
    expect(await purgeUninstalledTenants(t.db, 30, STREAM_CATALOG.names())).toEqual([]);
    expect(await count('contact_users', 't-back')).toBe(2);
  });
});

describe('retention crons', () => {
  it('runs both tasks daily from the crontab, one process at a time', () => {
    const items = parseCrontab(CRONTAB);
    const tasks = items.map((i) => i.task);
    expect(tasks).toEqual(expect.arrayContaining(['prune_sync_history', 'purge_uninstalled_tenants']));
    for (const item of items.filter((i) => i.task.startsWith('pru') || i.task.startsWith('purge_un'))) {
      expect(item.options.maxAttempts).toBe(1);
    }
    const list = createTaskList({} as Services);
    for (const task of tasks) expect(typeof list[task], task).toBe('function');
  });

  it('the tasks use RETENTION_DAYS and UNINSTALL_PURGE_DAYS', async () => {
    const logs: unknown[] = [];
    const services = {
      db: t.db,
      config: { retentionDays: 1, uninstallPurgeDays: 0 },
      log: { info: (o: unknown) => logs.push(o), warn: () => undefined },
    } as unknown as Services;
    const list = createTaskList(services);
    const before = (await ids()).length;
    await (list.prune_sync_history as (p: unknown, h: unknown) => Promise<void>)({}, {});
    expect((await ids()).length).toBeLessThan(before);
    await (list.purge_uninstalled_tenants as (p: unknown, h: unknown) => Promise<void>)({}, {});
    expect(await count('contact_users', 't-recent')).toBe(0);
  });

  const count = async (table: string, key: string) =>
    (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)} where tenant_key = ${key}`.execute(t.db)).rows[0]!.n;
});

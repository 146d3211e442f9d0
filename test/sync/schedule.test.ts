import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startStack, STORE_APP, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const TENANT = 'tenant-schedule';
// Contact reads everything every run anyway; a period here exercises the full-pass rule.
const PERIODS = { contact: 24 };

describe('scheduled syncs', () => {
  let stack: Stack;
  beforeAll(async () => {
    // No worker: the test drives the scheduler and watches the runs it queues.
    stack = await startStack({ encrypt: false, start: { worker: false } });
    await stack.larksync.services.tickets.save(STORE_APP.appId, stack.sim.issueTicket(STORE_APP.appId), new Date(), null);
    stack.sim.installTenant(STORE_APP.appId, TENANT);
    await stack.larksync.services.tenants.install({ tenantKey: TENANT, appId: STORE_APP.appId }, null);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const runs = () => stack.db.db.selectFrom('sync_runs').selectAll().where('tenant_key', '=', TENANT).orderBy('id').execute();

  it('queues a full pass first, nothing while a run is active or the interval has not elapsed, then an incremental run', async () => {
    const s = stack.larksync.services;
    await s.connectors.put(TENANT, 'contact', { enabled: true, intervalMinutes: 30, config: {} }, 'store');
    expect(await s.sync.scheduleDue(PERIODS)).toBe(1);
    let all = await runs();
    expect(all.map((r) => [r.mode, r.trigger, r.status])).toEqual([['full', 'schedule', 'queued']]);

    // Active run: nothing more.
    expect(await s.sync.scheduleDue(PERIODS)).toBe(0);

    // Finished, but within the interval: nothing.
    await sql`update sync_runs set status = 'succeeded', finished_at = now() where tenant_key = ${TENANT}`.execute(stack.db.db);
    expect(await s.sync.scheduleDue(PERIODS)).toBe(0);

    // The interval has passed: an incremental run (the last full pass is recent).
    await sql`update sync_runs set created_at = now() - interval '31 minutes' where tenant_key = ${TENANT}`.execute(stack.db.db);
    expect(await s.sync.scheduleDue(PERIODS)).toBe(1);
    all = await runs();
    expect(all.at(-1)).toMatchObject({ mode: 'incremental', trigger: 'schedule', status: 'queued' });

    // Without a period for the module, scheduled runs stay incremental.
    await sql`update sync_runs set status = 'succeeded', created_at = now() - interval '25 hours' where tenant_key = ${TENANT}`.execute(stack.db.db);
    expect(await s.sync.scheduleDue({})).toBe(1);
    expect((await runs()).at(-1)?.mode).toBe('incremental');

    // A full pass is due again once the last one is older than the full-pass period.
    await sql`update sync_runs set status = 'succeeded', created_at = now() - interval '25 hours' where tenant_key = ${TENANT}`.execute(stack.db.db);
    expect(await s.sync.scheduleDue(PERIODS)).toBe(1);
    expect((await runs()).at(-1)?.mode).toBe('full');
  });

  it('skips disabled connectors and tenants that are not active', async () => {
    const s = stack.larksync.services;
    await sql`update sync_runs set status = 'succeeded', created_at = now() - interval '2 days' where tenant_key = ${TENANT}`.execute(stack.db.db);
    await s.connectors.put(TENANT, 'contact', { enabled: false, intervalMinutes: 30, config: {} }, 'store');
    expect(await s.sync.scheduleDue(PERIODS)).toBe(0);
    await s.connectors.put(TENANT, 'contact', { enabled: true, intervalMinutes: 30, config: {} }, 'store');
    await s.tenants.changeStatus(TENANT, STORE_APP.appId, 'stop_by_tenant', null);
    expect(await s.sync.scheduleDue(PERIODS)).toBe(0);
    await waitFor(async () => (await s.tenants.get(TENANT))?.status === 'paused', 2_000, 'paused');
  });
});

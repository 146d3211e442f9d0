import type pg from 'pg';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenant, startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const DEPARTMENTS_ROOT = '/open-apis/contact/v3/departments/0/children';

/** Jobs of one task still queued or running. */
async function jobsOf(stack: Stack, task: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = ${task}`.execute(stack.db.db);
  return rows[0]?.n ?? 0;
}

describe('urgent work never waits behind sync slices', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      data: { enforceRateLimits: false },
      env: { WORKER_CONCURRENCY: '2' },
      start: { rateLimitScale: 50 },
    });
    await whenReady(stack);
    for (const t of ['tenant-busy-1', 'tenant-busy-2']) {
      await openTenant(stack, t);
      await stack.larksync.services.connectors.put(t, 'contact', { enabled: true, config: {} }, 'store');
    }
  });
  afterAll(async () => {
    stack?.sim.clearFaults();
    await stack?.stop();
  });

  it('with every sync slot held by a slow slice, a drain and a refresh_tokens job still run at once', async () => {
    // Each slice waits 10 s for Lark's first answer: both WORKER_CONCURRENCY slots are taken.
    stack.sim.injectFault({ path: DEPARTMENTS_ROOT, delayMs: 10_000, count: 2 });
    const runs: string[] = [];
    for (const t of ['tenant-busy-1', 'tenant-busy-2']) {
      const res = await stack.api('POST', `/api/v1/tenants/${t}/syncs`, { module: 'contact', mode: 'full' });
      expect(res.status).toBe(202);
      runs.push(((await res.json()) as { id: string }).id);
    }
    await waitFor(
      async () => {
        const rows = await stack.db.db.selectFrom('sync_runs').select('status').where('id', 'in', runs).execute();
        return rows.length === 2 && rows.every((r) => r.status === 'running');
      },
      10_000,
      'both runs running',
    );
    // Both slices are now inside their slow call, and will be for about 10 s more.
    await new Promise((r) => setTimeout(r, 500));
    expect(await jobsOf(stack, 'sync_run')).toBe(2);

    const started = Date.now();
    const push = await stack.sim.appOpen(STORE_APP.appId, 'tenant-urgent-1');
    expect(push.status).toBe(200);
    await waitFor(() => stack.larksync.services.tenants.get('tenant-urgent-1'), 3_000, 'the app_open drained while slices are busy');

    await sql`select graphile_worker.add_job('refresh_tokens', '{}'::json)`.execute(stack.db.db);
    await waitFor(async () => (await jobsOf(stack, 'refresh_tokens')) === 0, 3_000, 'refresh_tokens done while slices are busy');
    expect(Date.now() - started).toBeLessThan(5_000);
    // The slices were still held all along.
    const rows = await stack.db.db.selectFrom('sync_runs').select('status').where('id', 'in', runs).execute();
    expect(rows.every((r) => r.status === 'running')).toBe(true);
  });
});

describe('the event endpoint and heartbeats keep their own connections', () => {
  let stack: Stack;
  const held: pg.PoolClient[] = [];
  beforeAll(async () => {
    stack = await startStack({ start: { workerOptions: { cron: false, maintenanceMs: 300 } } });
    await whenReady(stack);
  });
  afterAll(async () => {
    for (const c of held.splice(0)) c.release();
    await stack?.stop();
  });

  it('answers a push within 3 s, and the worker keeps beating, while the main pool is exhausted', async () => {
    const pool = stack.larksync.services.pool;
    const max = (pool as unknown as { options: { max: number } }).options.max;
    // Every connection the main pool may open is held by someone else (busy slices, say).
    while (pool.totalCount < max || pool.idleCount > 0) held.push(await pool.connect());
    // Queued ahead of the probe, as many as the pool has connections: whatever the worker releases
    // goes to these (and stays held), never to the probe.
    const queued = Array.from({ length: max }, () => pool.connect().then((c) => held.push(c), () => undefined));
    let probeDone = false;
    // Only a probe that got a connection counts: one that timed out waiting (5 s, on a busy
    // machine) still says the pool was dry.
    const probe = sql`select 1`.execute(stack.larksync.services.db).then(
      () => (probeDone = true),
      () => undefined,
    );

    const beatBefore = await stack.db.db.selectFrom('worker_processes').select(sql<Date>`max(heartbeat_at)`.as('at')).executeTakeFirstOrThrow();

    const push = await stack.sim.appOpen(STORE_APP.appId, 'tenant-pool-1');
    expect(push.status).toBe(200);
    expect(push.durationMs).toBeLessThan(3_000);
    // The main pool really was dry while the push was answered.
    expect(probeDone).toBe(false);
    const stored = await stack.db.db.selectFrom('lark_events').select('event_type').where('tenant_key', '=', 'tenant-pool-1').execute();
    expect(stored).toEqual([{ event_type: 'app_open' }]);

    await new Promise((r) => setTimeout(r, 1_000));
    const beatAfter = await stack.db.db.selectFrom('worker_processes').select(sql<Date>`max(heartbeat_at)`.as('at')).executeTakeFirstOrThrow();
    expect(beatAfter.at.getTime()).toBeGreaterThan(beatBefore.at.getTime());

    for (const c of held.splice(0)) c.release();
    await Promise.all(queued);
    for (const c of held.splice(0)) c.release();
    await probe;
  });
});

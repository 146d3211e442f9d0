import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A run's next slice goes on in the same job when no other job wants the slot: queued again, it
 * would sit in its tenant's queue (still held by the job queuing it) until the next poll.
 */
describe('slices of a run with nothing else waiting', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      encrypt: false,
      env: { WORKER_CONCURRENCY: '1' },
      data: { enforceRateLimits: false },
      start: { engineOptions: { sliceMs: 250 }, rateLimitScale: 50 },
    });
    await whenReady(stack);
    stack.data.contactShape = { topLevel: 4, childrenPerDepartment: 3, depth: 3, usersPerDepartment: 8, rootUsers: 5 };
    stack.data.contact('tenant-long');
    await openTenant(stack, 'tenant-long');
    await stack.larksync.services.connectors.put('tenant-long', 'contact', { enabled: true, config: {} }, 'store');
    stack.sim.injectFault({ path: '/open-apis/contact/v3/users/find_by_department', delayMs: 40, count: 1_000_000 });
    // Every sync_run job ever added, as graphile-worker stores it (jobs are deleted once done).
    const db = stack.larksync.services.db;
    await sql`create table test_sync_jobs_added (job_id bigint, at timestamptz default clock_timestamp())`.execute(db);
    await sql`create function test_log_sync_job() returns trigger language plpgsql as $$
      begin
        if (select identifier from graphile_worker._private_tasks where id = new.task_id) = 'sync_run' then
          insert into test_sync_jobs_added (job_id) values (new.id);
        end if;
        return new;
      end $$`.execute(db);
    await sql`create trigger test_log_sync_job after insert on graphile_worker._private_jobs for each row execute function test_log_sync_job()`.execute(db);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('runs slice after slice in one job, and the run is exact', async () => {
    const services = stack.larksync.services;
    // Jobs queued by the tenant's setup (its event subscriptions) go first: one waiting would
    // rightly take the slot at a slice's end.
    await waitFor(async () => {
      const waiting = await sql<{ n: number }>`select count(*)::int as n from graphile_worker._private_jobs where run_at <= now()`.execute(services.db);
      return waiting.rows[0]?.n === 0;
    }, 20_000, 'setup jobs done');
    const started = Date.now();
    const { run } = await services.sync.trigger('tenant-long', 'contact', 'full', 'api');
    const done = await waitFor(async () => {
      const r = await services.sync.get(run.id);
      return r && !['queued', 'running'].includes(r.status) ? r : undefined;
    }, 60_000, 'run done');
    const took = Date.now() - started;
    expect(done.status).toBe('succeeded');
    const users = await sql<{ n: number }>`select count(*)::int as n from contact_users where tenant_key = 'tenant-long' and deleted_at is null`.execute(services.db);
    expect(users.rows[0]?.n).toBe(stack.data.contact('tenant-long').users.size);
    // Several slices' worth of time...
    expect(took).toBeGreaterThan(6 * 250);
    // ...and one job: the one the trigger queued.
    const jobs = await sql<{ n: number }>`select count(*)::int as n from test_sync_jobs_added`.execute(services.db);
    expect(jobs.rows[0]?.n).toBe(1);
  }, 90_000);
});

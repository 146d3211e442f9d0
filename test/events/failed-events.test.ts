import pg from 'pg';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_MAX_ATTEMPTS, retryJobKey } from '../../src/events/events.repository.js';
import { createTaskList } from '../../src/worker/tasks.js';
import type { Larksync } from '../../src/bootstrap.js';
import { spawnLarksync, type LarksyncProcess } from '../helpers/larksync-process.js';
import { FAST_RESUME } from '../helpers/worker-fleet.js';
import { startStack, STORE_APP, type Stack } from '../helpers/stack.js';
import { newId, settleStartupTicket, v1Body, encryptedWire, postRaw } from '../helpers/events-helpers.js';
import { waitFor } from '../helpers/wait.js';

/** The advisory lock key the test holds to stop a retry job's insert mid-statement. */
const GATE = 424_242;

/** Makes every lifecycle change of one tenant fail (its audit insert raises), until dropped. */
async function poison(stack: Stack, tenantKey: string): Promise<() => Promise<void>> {
  await sql`create or replace function larksync_test_poison() returns trigger language plpgsql as $$
    begin
      if new.tenant_key = ${sql.lit(tenantKey)} then raise exception 'poisoned by the test'; end if;
      return new;
    end $$`.execute(stack.db.db);
  await sql`create trigger larksync_test_poison before insert on tenant_audit for each row execute function larksync_test_poison()`.execute(stack.db.db);
  return async () => {
    await sql`drop trigger if exists larksync_test_poison on tenant_audit`.execute(stack.db.db);
  };
}

async function eventRow(stack: Stack, eventId: string) {
  return stack.db.db.selectFrom('lark_events').select(['id', 'status', 'attempts', 'last_error']).where('event_id', '=', eventId).executeTakeFirstOrThrow();
}

/** Retry jobs of the event that can still run (waiting with attempts left, or running). */
async function liveRetryJobs(stack: Stack, id: string): Promise<number> {
  const r = await sql<{ n: number }>`
    select count(*)::int as n from graphile_worker.jobs
     where key = ${retryJobKey(id)} and (attempts < max_attempts or locked_at is not null)`.execute(stack.db.db);
  return r.rows[0]!.n;
}

const appOpen = (tenantKey: string, uuid = newId()) =>
  encryptedWire(JSON.stringify(v1Body({ app_id: STORE_APP.appId, tenant_key: tenantKey, type: 'app_open' }, { uuid })));

describe('a failed event and its retry are recorded in one transaction', () => {
  let stack: Stack;
  let child: LarksyncProcess | undefined;
  let replica: Larksync | undefined;
  let gate: pg.Client | undefined;

  beforeAll(async () => {
    stack = await startStack({ encrypt: true, start: { worker: false } });
    await settleStartupTicket(stack);
  });
  afterAll(async () => {
    await child?.kill('SIGKILL');
    await gate?.end().catch(() => undefined);
    await stack?.stop();
  });

  it('SIGKILL while the retry is being queued leaves the event pending (or failed with a job), and it is applied later', async () => {
    const unpoison = await poison(stack, 'tk-sigkill');
    // A gate on retry jobs: their insert waits for an advisory lock the test holds, so the process
    // stops exactly between "the event failed" and "its retry is queued".
    await sql`create or replace function larksync_test_gate() returns trigger language plpgsql as $$
      begin
        if new.task_id = (select id from graphile_worker._private_tasks where identifier = 'handle_lark_event') then
          perform pg_advisory_xact_lock(${sql.lit(GATE)});
        end if;
        return new;
      end $$`.execute(stack.db.db);
    await sql`create trigger larksync_test_gate before insert on graphile_worker._private_jobs
                for each row execute function larksync_test_gate()`.execute(stack.db.db);
    gate = new pg.Client({ connectionString: stack.db.url });
    await gate.connect();
    await gate.query('select pg_advisory_lock($1)', [GATE]);

    const uuid = newId();
    expect((await postRaw(stack.eventsUrl, appOpen('tk-sigkill', uuid))).status).toBe(200);

    // A real larksync process drains the event; the handler fails; queueing its retry waits at the gate.
    child = await spawnLarksync(stack.env, 30_000, { start: FAST_RESUME });
    const waiting = await waitFor(async () => {
      const r = await sql<{ pid: number }>`
        select pid from pg_locks where locktype = 'advisory' and objid = ${GATE} and not granted`.execute(stack.db.db);
      return r.rows[0]?.pid;
    }, 20_000, 'the retry insert waiting at the gate');

    await child.kill('SIGKILL');
    // The kernel closed the dead process's sockets, but Postgres notices a lost client only when
    // it next talks to it: end the statement the dead process left waiting, as a dropped
    // connection would. Whatever that statement had not committed is rolled back.
    await sql`select pg_terminate_backend(${waiting})`.execute(stack.db.db);
    await gate.query('select pg_advisory_unlock($1)', [GATE]);
    await sql`drop trigger larksync_test_gate on graphile_worker._private_jobs`.execute(stack.db.db);

    const row = await eventRow(stack, uuid);
    const state = { status: row.status, liveRetryJobs: await liveRetryJobs(stack, row.id) };
    // Never failed with nothing left to retry it.
    expect(state.status === 'pending' || (state.status === 'failed' && state.liveRetryJobs === 1), JSON.stringify(state)).toBe(true);

    // The poison is gone; another process (crons off: no sweep to help) picks the event up.
    await unpoison();
    replica = await stack.startReplica({
      worker: true,
      workerPollInterval: 100,
      workerOptions: { cron: false, maintenanceMs: 250, deadWorkerAfterMs: 3_000, staleRunAfterMs: 1_500 },
    });
    await waitFor(async () => (await eventRow(stack, uuid)).status === 'processed', 20_000, 'the event applied');
    expect((await stack.larksync.services.tenants.get('tk-sigkill'))?.status).toBe('active');
    await replica.stop();
    replica = undefined;
  }, 60_000);
});

describe('the minute sweep re-queues failed events whose retry job is gone', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: true, start: { worker: false } });
    await settleStartupTicket(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });
  afterEach(async () => {
    await sql`drop trigger if exists larksync_test_poison on tenant_audit`.execute(stack.db.db);
  });

  const sweep = () =>
    (createTaskList(stack.larksync.services).wake_stalled_event_shards as (p: unknown, h: unknown) => Promise<void>)({}, {});

  async function failedWithoutJob(tenantKey: string, attempts: number): Promise<{ uuid: string; id: string }> {
    const uuid = newId();
    expect((await postRaw(stack.eventsUrl, appOpen(tenantKey, uuid))).status).toBe(200);
    const { id } = await eventRow(stack, uuid);
    // What a version that marked and queued in two steps left behind when it died between them.
    await sql`update lark_events set status = 'failed', attempts = ${attempts}, last_error = 'lost' where id = ${id}`.execute(stack.db.db);
    await sql`delete from graphile_worker._private_jobs j using graphile_worker._private_tasks t
               where t.id = j.task_id and t.identifier = 'drain_lark_events'`.execute(stack.db.db);
    return { uuid, id };
  }

  async function failedGauge(): Promise<{ retrying: number; given_up: number }> {
    const text = await (await fetch(`${stack.larksync.url}/metrics`)).text();
    const value = (state: string) => Number(new RegExp(`^larksync_events_failed\\{state="${state}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { retrying: value('retrying'), given_up: value('given_up') };
  }

  it('queues one retry job for a failed event with attempts left and none for one out of attempts; /metrics shows both', async () => {
    const orphan = await failedWithoutJob('tk-sweep-orphan', 1);
    const spent = await failedWithoutJob('tk-sweep-spent', EVENT_MAX_ATTEMPTS);
    expect(await liveRetryJobs(stack, orphan.id)).toBe(0);
    await waitFor(async () => {
      const g = await failedGauge();
      return g.retrying === 1 && g.given_up === 1;
    }, 10_000, 'the failed-events gauge');

    await sweep();
    expect(await liveRetryJobs(stack, orphan.id)).toBe(1);
    expect(await liveRetryJobs(stack, spent.id)).toBe(0);
    // Sweeping again finds the job and adds none.
    await sweep();
    const jobs = await sql<{ n: number }>`select count(*)::int as n from graphile_worker.jobs where key = ${retryJobKey(orphan.id)}`.execute(stack.db.db);
    expect(jobs.rows[0]!.n).toBe(1);
    // It runs as the rest of the event's attempts.
    const job = await sql<{ max_attempts: number; queue_name: string }>`
      select max_attempts, queue_name from graphile_worker.jobs where key = ${retryJobKey(orphan.id)}`.execute(stack.db.db);
    expect(job.rows[0]).toEqual({ max_attempts: EVENT_MAX_ATTEMPTS - 1, queue_name: 'tenant:tk-sweep-orphan' });

    // A worker applies it; the given-up one stays failed and counted.
    const worker = await stack.startReplica({ worker: true, workerPollInterval: 100, workerOptions: { cron: false } });
    try {
      await waitFor(async () => (await eventRow(stack, orphan.uuid)).status === 'processed', 15_000, 'the re-queued event applied');
    } finally {
      await worker.stop();
    }
    expect((await eventRow(stack, spent.uuid)).status).toBe('failed');
    await waitFor(async () => {
      const g = await failedGauge();
      return g.retrying === 0 && g.given_up === 1;
    }, 10_000, 'the gauge after the retry');
  }, 40_000);

  it('a drain that fails an event queues its retry in the same statement, with the attempts it has left', async () => {
    await poison(stack, 'tk-drain-fail');
    const uuid = newId();
    expect((await postRaw(stack.eventsUrl, appOpen('tk-drain-fail', uuid))).status).toBe(200);
    const { id } = await eventRow(stack, uuid);
    const shard = (await stack.db.db.selectFrom('lark_events').select('shard').where('id', '=', id).executeTakeFirstOrThrow()).shard!;
    await stack.larksync.services.events.drainShard(stack.larksync.services, shard);

    const row = await eventRow(stack, uuid);
    expect(row).toMatchObject({ status: 'failed', attempts: 1, last_error: expect.stringContaining('poisoned by the test') });
    const job = await sql<{ max_attempts: number; queue_name: string; task_identifier: string }>`
      select max_attempts, queue_name, task_identifier from graphile_worker.jobs where key = ${retryJobKey(id)}`.execute(stack.db.db);
    expect(job.rows).toEqual([{ max_attempts: EVENT_MAX_ATTEMPTS - 1, queue_name: 'tenant:tk-drain-fail', task_identifier: 'handle_lark_event' }]);
  });
});

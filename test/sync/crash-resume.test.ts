import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startWorker } from '../../src/worker/worker.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { spawnLarksync, type LarksyncProcess } from '../helpers/larksync-process.js';
import { waitFor } from '../helpers/wait.js';

const USERS = '/open-apis/contact/v3/users/find_by_department';

async function usersInDb(stack: Stack, tenant: string): Promise<Array<{ record_key: string; raw: unknown }>> {
  const res = await sql<{ record_key: string; raw: unknown }>`
    select record_key, raw from contact_users where tenant_key = ${tenant} and deleted_at is null order by record_key`.execute(stack.db.db);
  return res.rows;
}

describe('sync runs across processes', () => {
  let stack: Stack;
  const children: LarksyncProcess[] = [];

  beforeAll(async () => {
    stack = await startStack({
      encrypt: false,
      // ~50 departments with 60 users each: about a hundred user pages per run.
      data: { enforceRateLimits: false, contactShape: { topLevel: 4, childrenPerDepartment: 3, depth: 3, usersPerDepartment: 60, rootUsers: 5 } },
    });
    await whenReady(stack);
    for (const t of ['tenant-crash', 'tenant-q1', 'tenant-q2', 'tenant-q3']) {
      await openTenant(stack, t);
      // Disabled: the child process runs the real crons, and scheduled runs must not join the count.
      await stack.larksync.services.connectors.put(t, 'contact', { enabled: false, config: {} }, 'store');
    }
  }, 60_000);

  afterAll(async () => {
    for (const c of children) await c.kill('SIGKILL');
    await stack?.stop();
  });

  it('a run whose worker process is SIGKILLed resumes from its checkpoint within 60 s and ends equal to the source', async () => {
    // Only the child process works the queue at first.
    await stack.larksync.worker?.stop();
    const worker = await spawnLarksync(stack.env);
    children.push(worker);
    stack.sim.injectFault({ path: USERS, delayMs: 60, count: 1_000_000 });

    const { run } = await stack.larksync.services.sync.trigger('tenant-crash', 'contact', 'full', 'api');
    await waitFor(async () => ((await stack.larksync.services.sync.get(run.id))?.pages ?? 0) >= 30, 30_000, '30 pages');
    await worker.kill('SIGKILL');
    const killedAt = Date.now();
    const atKill = await stack.larksync.services.sync.get(run.id);
    const callsAtKill = stack.sim.count(USERS);
    expect(atKill?.status).toBe('running');

    // A larksync process runs again, with default settings.
    const resumed = await startWorker(stack.larksync.services);
    try {
      await waitFor(async () => ((await stack.larksync.services.sync.get(run.id))?.pages ?? 0) > (atKill?.pages ?? 0), 60_000, 'resume');
      const resumeMs = Date.now() - killedAt;
      expect(resumeMs).toBeLessThan(60_000);
      const done = await waitFor(async () => {
        const r = await stack.larksync.services.sync.get(run.id);
        return r?.status === 'succeeded' ? r : undefined;
      }, 60_000, 'completion');
      console.log(
        `crash-resume: resumed ${(resumeMs / 1000).toFixed(1)} s after SIGKILL; pages ${atKill?.pages} before, ${done.pages} in all; ` +
          `${stack.sim.count(USERS)} user-page calls`,
      );
      const stopped = stack.logs.filter((l) => l.includes('sync slice stopped'));
      if (stopped.length > 0) console.log(stopped.join(''));

      const source = [...stack.data.contact('tenant-crash').users.values()].map((u) => u.open_id).sort();
      const rows = await usersInDb(stack, 'tenant-crash');
      expect(rows.map((r) => r.record_key)).toEqual(source);
      // It continued from the checkpoint instead of starting over: starting over would read every
      // page committed before the kill again. (Unloaded, the waste is the one page in flight; a
      // loaded machine can add a few retried calls, never a restart.)
      const wasted = stack.sim.count(USERS) - done.pages;
      expect(wasted).toBeLessThan(atKill?.pages ?? 0);
      expect(callsAtKill).toBeGreaterThan(0);
    } finally {
      await resumed.stop();
      stack.sim.clearFaults();
    }
  }, 150_000);

  it('two worker processes share one queue: every run executes once and completes', async () => {
    const other = await spawnLarksync(stack.env);
    children.push(other);
    const local = await startWorker(stack.larksync.services, { pollInterval: 200 });
    try {
      stack.sim.resetCounts();
      const tenants = ['tenant-q1', 'tenant-q2', 'tenant-q3'];
      const runs = await Promise.all(tenants.map((t) => stack.larksync.services.sync.trigger(t, 'contact', 'full', 'api')));
      const done = await Promise.all(
        runs.map(({ run }) =>
          waitFor(async () => {
            const r = await stack.larksync.services.sync.get(run.id);
            return r && r.status !== 'queued' && r.status !== 'running' ? r : undefined;
          }, 60_000, `run ${run.id}`),
        ),
      );
      expect(done.map((r) => r.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
      // No page was fetched twice: upstream user-page calls equal the pages the runs committed
      // minus the department pages.
      const deptCalls = stack.sim.count('/open-apis/contact/v3/departments/0/children');
      const totalPages = done.reduce((sum, r) => sum + r.pages, 0);
      expect(stack.sim.count(USERS) + deptCalls).toBe(totalPages - tenants.length);
      for (const t of tenants) {
        const rows = await usersInDb(stack, t);
        expect(rows.length).toBe(stack.data.contact(t).users.size);
      }
    } finally {
      await local.stop();
    }
  }, 120_000);
});

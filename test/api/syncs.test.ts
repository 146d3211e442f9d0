import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { STORE_APP, type Stack } from '../helpers/stack.js';
import {
  call,
  expectError,
  getRun,
  installStoreTenant,
  ISO,
  runFinished,
  runWhere,
  startFastStack,
  syncToEnd,
  tenantStatusBecomes,
  USERS_PATH,
  type RunJson,
} from '../helpers/sync-api.js';
import { streamTables } from '../helpers/db.js';

const TENANT = 'tenant-syncs-1';
const syncsOf = (tenantKey: string) => `/api/v1/tenants/${tenantKey}/syncs`;

describe('/api/v1/tenants/{tenantKey}/syncs and /api/v1/syncs/{id}', () => {
  let stack: Stack;
  const trigger = (body: unknown, tenantKey = TENANT) => call<RunJson>(stack, 'POST', syncsOf(tenantKey), body);
  const list = (query = '', tenantKey = TENANT) => call<{ runs: RunJson[] }>(stack, 'GET', `${syncsOf(tenantKey)}${query}`);
  const cancel = (id: string) => call<RunJson>(stack, 'POST', `/api/v1/syncs/${id}/cancel`);
  /** Every users page waits this long, so a run stays queued or running while the test looks at it. */
  const slowUsers = (delayMs: number) => stack.sim.injectFault({ path: USERS_PATH, delayMs, count: 1_000_000 });

  beforeAll(async () => {
    stack = await startFastStack();
    await installStoreTenant(stack, TENANT);
    expect((await call(stack, 'PUT', `/api/v1/tenants/${TENANT}/connectors/contact`, { enabled: true })).status).toBe(200);
  });
  afterEach(() => {
    stack.sim.clearFaults();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers 202 with a new run, then 200 with that same run while it is queued or running, and the run completes', async () => {
    slowUsers(150);
    const first = await trigger({ module: 'contact' });
    expect(first.status).toBe(202);
    expect(first.body).toEqual({
      id: expect.stringMatching(/^\d+$/),
      tenantKey: TENANT,
      module: 'contact',
      mode: 'incremental',
      status: 'queued',
      createdAt: expect.stringMatching(ISO),
      startedAt: null,
      finishedAt: null,
      counts: {},
      pages: 0,
      upstreamCalls: 0,
      throttledWaits: 0,
      deletions: { confirmed: 0, candidatesAlive: 0 },
      valuesSanitized: 0,
      error: null,
      itemErrors: [],
    });
    const again = await trigger({ module: 'contact', mode: 'full' });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(again.body.mode).toBe('incremental');
    expect(['queued', 'running']).toContain(again.body.status);

    await runWhere(stack, first.body.id, (r) => r.status === 'running', 'running');
    const whileRunning = await trigger({ module: 'contact' });
    expect(whileRunning.status).toBe(200);
    expect(whileRunning.body).toMatchObject({ id: first.body.id, status: 'running', startedAt: expect.stringMatching(ISO) });
    stack.sim.clearFaults();

    const done = await runFinished(stack, first.body.id);
    const dir = stack.data.contact(TENANT);
    expect(done).toMatchObject({ status: 'succeeded', error: null, finishedAt: expect.stringMatching(ISO) });
    expect(done.counts.contact_departments).toBe(dir.departments.size);
    // One user sits in two departments, so is listed (and counted) twice but stored once.
    expect(done.counts.contact_users).toBeGreaterThanOrEqual(dir.users.size);
    expect(done.pages).toBeGreaterThan(0);
    expect(done.upstreamCalls).toBeGreaterThan(0);
    expect(done.throttledWaits).toBe(0);
    expect(Date.parse(done.finishedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(done.startedAt ?? ''));
    const stored = await streamTables(stack.db.db).selectFrom('contact_users').select('record_key').where('tenant_key', '=', TENANT).execute();
    expect(stored).toHaveLength(dir.users.size);

    // Finished: the next trigger is a new run.
    const next = await trigger({ module: 'contact', mode: 'full' });
    expect(next.status).toBe(202);
    expect(next.body).toMatchObject({ mode: 'full', status: 'queued' });
    expect(BigInt(next.body.id)).toBeGreaterThan(BigInt(first.body.id));
    expect((await runFinished(stack, next.body.id)).status).toBe('succeeded');
  });

  it('lists recent runs newest first, filtered by module and limited', async () => {
    await syncToEnd(stack, TENANT, 'contact', 'incremental');
    const all = await list();
    expect(all.status).toBe(200);
    expect(all.body.runs.length).toBeGreaterThanOrEqual(3);
    const ids = all.body.runs.map((r) => BigInt(r.id));
    expect([...ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0))).toEqual(ids);
    expect(all.body.runs.every((r) => r.tenantKey === TENANT && r.status === 'succeeded')).toBe(true);
    expect(all.body.runs[0]).toEqual(await getRun(stack, all.body.runs[0]?.id ?? ''));

    const one = await list('?limit=1');
    expect(one.body.runs.map((r) => r.id)).toEqual([all.body.runs[0]?.id]);
    expect((await list('?module=contact')).body.runs).toHaveLength(all.body.runs.length);
    expect((await list('?module=approval')).body.runs).toEqual([]);

    expect(await expectError(stack, 'GET', `${syncsOf(TENANT)}?limit=101`, undefined, 400, 'invalid_request')).toMatch(/^querystring\.limit: /);
    expect(await expectError(stack, 'GET', `${syncsOf(TENANT)}?limit=0`, undefined, 400, 'invalid_request')).toMatch(/^querystring\.limit: /);
    expect(await expectError(stack, 'GET', `${syncsOf(TENANT)}?module=calendar`, undefined, 400, 'invalid_request')).toMatch(/^querystring\.module: must be one of/);
    await expectError(stack, 'GET', syncsOf('tenant-nobody'), undefined, 404, 'tenant_not_found');
  });

  it('refuses bad triggers: unknown tenant 404, unconfigured connector 409, bad body 400', async () => {
    await expectError(stack, 'POST', syncsOf('tenant-nobody'), { module: 'contact' }, 404, 'tenant_not_found');
    const unconfigured = await expectError(stack, 'POST', syncsOf(TENANT), { module: 'approval' }, 409, 'connector_not_configured');
    expect(unconfigured).toContain(`PUT /api/v1/tenants/${TENANT}/connectors/approval`);
    expect(await expectError(stack, 'POST', syncsOf(TENANT), {}, 400, 'invalid_request')).toBe('body.module: is required');
    expect(await expectError(stack, 'POST', syncsOf(TENANT), { module: 'calendar' }, 400, 'invalid_request')).toBe(
      'body.module: must be one of: approval, base, attendance, contact, docs',
    );
    expect(await expectError(stack, 'POST', syncsOf(TENANT), { module: 'contact', mode: 'partial' }, 400, 'invalid_request')).toBe(
      'body.mode: must be one of: incremental, full',
    );
    expect(await expectError(stack, 'POST', syncsOf(TENANT), { module: 'contact', when: 'now' }, 400, 'invalid_request')).toBe(
      'body.when: is not a known property',
    );
    const runs = await stack.db.db.selectFrom('sync_runs').select('id').where('status', 'in', ['queued', 'running']).execute();
    expect(runs).toEqual([]);
  });

  it('runs a disabled connector on demand: enabled only governs the schedule', async () => {
    expect((await call(stack, 'PUT', `/api/v1/tenants/${TENANT}/connectors/contact`, { enabled: false })).status).toBe(200);
    try {
      expect((await syncToEnd(stack, TENANT, 'contact')).status).toBe('succeeded');
    } finally {
      await call(stack, 'PUT', `/api/v1/tenants/${TENANT}/connectors/contact`, { enabled: true });
    }
  });

  it('answers 404 sync_not_found for an unknown run and 400 for an id that is not one', async () => {
    expect(await expectError(stack, 'GET', '/api/v1/syncs/987654321', undefined, 404, 'sync_not_found')).toContain('987654321');
    await expectError(stack, 'POST', '/api/v1/syncs/987654321/cancel', undefined, 404, 'sync_not_found');
    for (const bad of ['abc', '-1', '1234567890123456789']) {
      expect(await expectError(stack, 'GET', `/api/v1/syncs/${bad}`, undefined, 400, 'invalid_request')).toMatch(/^params\.id: /);
      await expectError(stack, 'POST', `/api/v1/syncs/${bad}/cancel`, undefined, 400, 'invalid_request');
    }
  });

  it('cancels a running run, which then writes nothing more; cancelling again, or a finished run, changes nothing', async () => {
    slowUsers(300);
    const started = await trigger({ module: 'contact', mode: 'full' });
    expect(started.status).toBe(202);
    await runWhere(stack, started.body.id, (r) => r.status === 'running' && r.pages > 0, 'running with a page committed');

    const cancelled = await cancel(started.body.id);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({
      id: started.body.id,
      status: 'cancelled',
      finishedAt: expect.stringMatching(ISO),
      error: { class: 'cancelled', message: expect.any(String) },
    });
    // The slice is still inside a slow call; what it reads after the cancel is not committed.
    await new Promise((r) => setTimeout(r, 800));
    const later = await getRun(stack, started.body.id);
    expect(later).toEqual(cancelled.body);

    const twice = await cancel(started.body.id);
    expect(twice.status).toBe(200);
    expect(twice.body).toEqual(cancelled.body);

    stack.sim.clearFaults();
    // A cancelled run is not active: the next trigger makes a new one.
    const fresh = await trigger({ module: 'contact', mode: 'full' });
    expect(fresh.status).toBe(202);
    expect(fresh.body.id).not.toBe(started.body.id);
    const done = await runFinished(stack, fresh.body.id);
    expect(done.status).toBe('succeeded');
    const unchanged = await cancel(done.id);
    expect(unchanged.status).toBe(200);
    expect(unchanged.body).toEqual(done);
  });

  it('refuses a paused tenant with 409 tenant_not_active and cancels its queued and running runs; an uninstalled one too', async () => {
    const key = 'tenant-syncs-paused';
    await installStoreTenant(stack, key);
    for (const [module, config] of [['contact', {}], ['approval', { approvalCodes: ['APPROVAL-P'] }]] as const) {
      expect((await call(stack, 'PUT', `/api/v1/tenants/${key}/connectors/${module}`, { enabled: true, config })).status).toBe(200);
    }
    // Runs of one tenant go one at a time: while the slow contact run holds the tenant, approval waits queued.
    slowUsers(2_000);
    const running = await trigger({ module: 'contact' }, key);
    expect(running.status).toBe(202);
    await runWhere(stack, running.body.id, (r) => r.status === 'running', 'running');
    const queued = await trigger({ module: 'approval' }, key);
    expect(queued.status).toBe(202);
    expect(queued.body.status).toBe('queued');

    await stack.sim.appStatusChange(STORE_APP.appId, key, 'stop_by_tenant');
    await tenantStatusBecomes(stack, key, 'paused');
    const message = await expectError(stack, 'POST', syncsOf(key), { module: 'contact' }, 409, 'tenant_not_active');
    expect(message).toContain('paused');
    for (const id of [queued.body.id, running.body.id]) {
      const run = await getRun(stack, id);
      expect(run).toMatchObject({ status: 'cancelled', finishedAt: expect.stringMatching(ISO), error: { class: 'tenant_not_active' } });
    }

    // The pause handler cancels runs too; a run created as the pause landed (a trigger racing it)
    // is what the refused trigger itself cleans up.
    const raced = await stack.db.db
      .insertInto('sync_runs')
      .values({ tenant_key: key, module: 'contact', mode: 'incremental', trigger: 'api', status: 'queued', counts: '{}' })
      .returning('id')
      .executeTakeFirstOrThrow();
    await expectError(stack, 'POST', syncsOf(key), { module: 'approval' }, 409, 'tenant_not_active');
    expect(await getRun(stack, raced.id)).toMatchObject({ status: 'cancelled', error: { class: 'tenant_not_active' } });
    const active = await stack.db.db.selectFrom('sync_runs').select('id').where('tenant_key', '=', key).where('status', 'in', ['queued', 'running']).execute();
    expect(active).toEqual([]);
    // Refusals create no run.
    expect((await list('', key)).body.runs).toHaveLength(3);

    await stack.sim.appUninstalled(STORE_APP.appId, key);
    await tenantStatusBecomes(stack, key, 'uninstalled');
    expect(await expectError(stack, 'POST', syncsOf(key), { module: 'contact' }, 409, 'tenant_not_active')).toContain('uninstalled');
    // The run history stays readable.
    expect((await list('', key)).body.runs.map((r) => r.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
  });

  it('is behind the bearer token', async () => {
    expect((await stack.api('POST', syncsOf(TENANT), { module: 'contact' }, '')).status).toBe(401);
    expect((await stack.api('GET', '/api/v1/syncs/1', undefined, '')).status).toBe(401);
    expect((await stack.api('POST', '/api/v1/syncs/1/cancel', undefined, 'wrong-token-0123456789')).status).toBe(401);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_APP, type Stack } from '../helpers/stack.js';
import { call, expectError, installStoreTenant, ISO, startFastStack, tenantStatusBecomes } from '../helpers/sync-api.js';

interface ConnectorJson {
  tenantKey: string;
  module: string;
  enabled: boolean;
  intervalMinutes: number;
  config: Record<string, unknown>;
  updatedAt: string;
  warnings: string[];
}

const TENANT = 'tenant-conn-1';
const CUSTOM = { appId: 'cli_custom_conn_01', appSecret: 'custom-secret-conn-0001', tenantKey: 'tenant-conn-custom' };
const path = (module: string, tenantKey = TENANT) => `/api/v1/tenants/${tenantKey}/connectors/${module}`;

describe('/api/v1/tenants/{tenantKey}/connectors/{module}', () => {
  let stack: Stack;
  const put = (module: string, body: unknown, tenantKey = TENANT) => call<ConnectorJson>(stack, 'PUT', path(module, tenantKey), body);
  const get = (module: string, tenantKey = TENANT) => call<ConnectorJson>(stack, 'GET', path(module, tenantKey));
  const badConfig = (module: string, config: unknown) => expectError(stack, 'PUT', path(module), { enabled: true, config }, 400, 'invalid_config');
  const badRequest = (method: string, p: string, body?: unknown) => expectError(stack, method, p, body, 400, 'invalid_request');

  beforeAll(async () => {
    stack = await startFastStack();
    await installStoreTenant(stack, TENANT);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers 404 connector_not_found until the connector is configured, pointing at the PUT', async () => {
    const message = await expectError(stack, 'GET', path('contact'), undefined, 404, 'connector_not_found');
    expect(message).toContain(`PUT /api/v1/tenants/${TENANT}/connectors/contact`);
  });

  it('creates a connector with defaults filled in, and reads it back', async () => {
    const created = await put('contact', { enabled: true });
    expect(created.status).toBe(200);
    expect(created.body).toEqual({
      tenantKey: TENANT,
      module: 'contact',
      enabled: true,
      intervalMinutes: 60,
      config: { departmentIdType: 'open_department_id', userIdType: 'open_id' },
      updatedAt: expect.stringMatching(ISO),
      warnings: [],
      // Contact's events need no subscribe call; not judged yet (the minute's check has not run).
      eventsIntervalMinutes: 1440,
      events: {
        status: 'unknown',
        reason: null,
        detail: null,
        lagSeconds: null,
        lastEventAt: null,
        pollingIntervalMinutes: 60,
        subscriptions: { subscribed: 0, pending: 0, refused: 0, failed: 0, problems: [] },
      },
    });
    expect((await get('contact')).body).toEqual(created.body);
    const row = await stack.db.db.selectFrom('connectors').selectAll().where('tenant_key', '=', TENANT).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ module: 'contact', enabled: true, interval_minutes: 60 });
  });

  it('replaces the whole connector on PUT and shows warnings for settings a store app cannot honour', async () => {
    const first = (await get('contact')).body;
    const replaced = await put('contact', { enabled: false, intervalMinutes: 15, config: { userIdType: 'user_id', departmentIds: ['od-1'] } });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({
      enabled: false,
      intervalMinutes: 15,
      config: { departmentIds: ['od-1'], departmentIdType: 'open_department_id', userIdType: 'user_id' },
    });
    expect(replaced.body.warnings).toEqual([expect.stringContaining('user_id')]);
    expect(Date.parse(replaced.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(first.updatedAt));

    // PUT replaces: what is left out goes back to its default rather than keeping the old value.
    const again = await put('contact', { enabled: true });
    expect(again.body).toMatchObject({ enabled: true, intervalMinutes: 60, config: { departmentIdType: 'open_department_id', userIdType: 'open_id' }, warnings: [] });
    expect(again.body.config).not.toHaveProperty('departmentIds');
    const rows = await stack.db.db.selectFrom('connectors').select('module').where('tenant_key', '=', TENANT).execute();
    expect(rows).toHaveLength(1);
  });

  it('rejects a module config with a message naming the bad field, and stores nothing', async () => {
    expect(await badConfig('approval', {})).toMatch(/^config\.approvalCodes: /);
    expect(await badConfig('approval', { approvalCodes: [] })).toMatch(/^config\.approvalCodes: /);
    expect(await badConfig('approval', { approvalCodes: ['A'], backfillDays: 0 })).toMatch(/^config\.backfillDays: /);
    expect(await badConfig('approval', { approvalCodes: ['A'], surprise: true })).toMatch(/^config\.surprise: /);

    // A table entry with neither ids nor a URL: the message says which entry and what it needs.
    const neither = await badConfig('base', { tables: [{ appToken: 'bascnAAA', tableId: 'tblAAA' }, { viewId: 'vewAAA' }] });
    expect(neither).toMatch(/^config\.tables\.1: /);
    expect(neither).toContain('either both appToken and tableId');
    expect(neither).toContain('or a url');
    expect(await badConfig('base', { tables: [{ appToken: 'bascnAAA', tableId: 'nottbl' }] })).toMatch(/^config\.tables\.0\.tableId: tableId must be a table id starting with "tbl"/);
    expect(await badConfig('base', { tables: [{ url: 'https://example.com/base/x?table=tblA' }] })).toMatch(/^config\.tables\.0\.url: url must be a Base URL/);
    expect(await badConfig('base', {})).toMatch(/^config\.tables: /);
    expect(await badConfig('attendance', { lookbackDays: 91 })).toMatch(/^config\.lookbackDays: /);
    expect(await badConfig('contact', { userIdType: 'email' })).toMatch(/^config\.userIdType: expected one of "open_id", "union_id", "user_id"/);

    for (const module of ['approval', 'base', 'attendance']) {
      await expectError(stack, 'GET', path(module), undefined, 404, 'connector_not_found');
    }
    const approval = await put('approval', { enabled: true, config: { approvalCodes: ['APPROVAL-1'], lookbackDays: 30, backfillDays: 10 } });
    expect(approval.status).toBe(200);
    expect(approval.body.config).toEqual({ approvalCodes: ['APPROVAL-1'], lookbackDays: 30, backfillDays: 10 });
    expect(approval.body.warnings).toEqual([expect.stringContaining('lookbackDays (30) exceeds backfillDays (10)')]);
    const base = await put('base', { enabled: true, config: { tables: [{ url: 'https://acme.feishu.cn/base/bascnAAA?table=tblAAA&view=vewBBB' }] } });
    expect(base.status).toBe(200);
    expect(base.body.warnings).toEqual([expect.stringContaining('view')]);
  });

  it('validates the body itself: enabled required, interval 5..10080, config an object, nothing else', async () => {
    expect(await badRequest('PUT', path('contact'), {})).toBe('body.enabled: is required');
    expect(await badRequest('PUT', path('contact'), { enabled: true, intervalMinutes: 4 })).toMatch(/^body\.intervalMinutes: must be >= 5/);
    expect(await badRequest('PUT', path('contact'), { enabled: true, intervalMinutes: 10_081 })).toMatch(/^body\.intervalMinutes: must be <= 10080/);
    expect(await badRequest('PUT', path('contact'), { enabled: true, intervalMinutes: 7.5 })).toMatch(/^body\.intervalMinutes: /);
    expect(await badRequest('PUT', path('contact'), { enabled: true, config: 'departmentIds=1' })).toMatch(/^body\.config: must be object/);
    expect(await badRequest('PUT', path('contact'), { enabled: true, interval: 30 })).toBe('body.interval: is not a known property');
    expect(await badRequest('PUT', path('contact'))).toMatch(/^body: /);
    const ok = await put('contact', { enabled: true, intervalMinutes: 5 });
    expect(ok.body.intervalMinutes).toBe(5);
    expect((await put('contact', { enabled: true, intervalMinutes: 10_080 })).body.intervalMinutes).toBe(10_080);
  });

  it('answers 400 for an unknown module and 404 tenant_not_found for an unknown tenant', async () => {
    for (const method of ['GET', 'PUT']) {
      const body = method === 'PUT' ? { enabled: true } : undefined;
      expect(await badRequest(method, path('calendar'), body)).toBe('params.module: must be one of: approval, base, attendance, contact, docs');
      const message = await expectError(stack, method, path('contact', 'tenant-nobody'), body, 404, 'tenant_not_found');
      expect(message).toContain('tenant-nobody');
    }
    const rows = await stack.db.db.selectFrom('connectors').select('tenant_key').where('tenant_key', '=', 'tenant-nobody').execute();
    expect(rows).toHaveLength(0);
  });

  it('accepts attendance on a store app with a warning that its runs will fail, and without one on a custom app', async () => {
    const store = await put('attendance', { enabled: true });
    expect(store.status).toBe(200);
    expect(store.body.config).toEqual({ employeeType: 'employee_id', lookbackDays: 7 });
    expect(store.body.warnings).toEqual([expect.stringMatching(/custom \(self-built\) app.*unsupported_for_store_app/)]);
    expect((await get('attendance')).body.warnings).toEqual(store.body.warnings);

    stack.sim.addApp({ ...CUSTOM, kind: 'custom', verificationToken: 'vt-conn-custom' });
    const registered = await call(stack, 'POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret });
    expect(registered.status).toBe(201);
    const custom = await put('attendance', { enabled: true }, CUSTOM.tenantKey);
    expect(custom.status).toBe(200);
    expect(custom.body).toMatchObject({ tenantKey: CUSTOM.tenantKey, module: 'attendance', warnings: [] });
    // The other attendance warning is about settings, so a custom app gets it too.
    const byNumber = await put('attendance', { enabled: true, config: { employeeType: 'employee_no' } }, CUSTOM.tenantKey);
    expect(byNumber.body.warnings).toEqual([expect.stringContaining('employee_number')]);
  });

  it('lets a paused tenant be configured, refuses an uninstalled one with 409 tenant_not_active, and still shows its connectors', async () => {
    const key = 'tenant-conn-leaving';
    await installStoreTenant(stack, key);
    expect((await put('contact', { enabled: true }, key)).status).toBe(200);

    await stack.sim.appStatusChange(STORE_APP.appId, key, 'stop_by_tenant');
    await tenantStatusBecomes(stack, key, 'paused');
    const paused = await put('contact', { enabled: true, intervalMinutes: 120 }, key);
    expect(paused.status).toBe(200);
    expect(paused.body.intervalMinutes).toBe(120);

    await stack.sim.appUninstalled(STORE_APP.appId, key);
    await tenantStatusBecomes(stack, key, 'uninstalled');
    const message = await expectError(stack, 'PUT', path('contact', key), { enabled: true }, 409, 'tenant_not_active');
    expect(message).toContain('uninstalled');
    const kept = await get('contact', key);
    expect(kept.status).toBe(200);
    expect(kept.body.intervalMinutes).toBe(120);
  });

  it('is behind the bearer token', async () => {
    const res = await stack.api('GET', path('contact'), undefined, '');
    expect(res.status).toBe(401);
    const put401 = await stack.api('PUT', path('contact'), { enabled: false }, 'wrong-token-0123456789');
    expect(put401.status).toBe(401);
    expect((await get('contact')).body.enabled).toBe(true);
  });
});

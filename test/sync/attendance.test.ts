import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { runToEnd as runShared } from '../helpers/runs.js';
import type { SyncRunRow } from '../../src/sync/sync.tables.js';
import type { FlowQuery } from '../../simulator/data/attendance.js';

const FLOWS_PATH = '/open-apis/attendance/v1/user_flows/query';
const DAY = 86_400;
const STORE_TENANT = 'tenant-att-store';
const T_DEFAULT = 'tenant-att-default';
const T_EXPLICIT = 'tenant-att-explicit';
const T_NO = 'tenant-att-employee-no';

// 9 departments × 6 + 4 root users = 58 users (one also listed in a second department): two
// batches, one of exactly 50.
const SHAPE = { topLevel: 3, childrenPerDepartment: 2, depth: 2, usersPerDepartment: 6, rootUsers: 4 };

async function runToEnd(stack: Stack, tenant: string, mode: 'incremental' | 'full' = 'incremental'): Promise<SyncRunRow> {
  return runShared(stack, tenant, 'attendance', mode);
}

async function addCustomTenant(stack: Stack, tenantKey: string, config: Record<string, unknown>) {
  const app = { appId: `cli_${tenantKey}`, appSecret: `secret-${tenantKey}` };
  stack.sim.addApp({ ...app, kind: 'custom', verificationToken: 'x', tenantKey, tenantName: tenantKey });
  await stack.larksync.services.apps.registerCustomApp({ ...app, domain: stack.sim.url });
  return stack.larksync.services.connectors.put(tenantKey, 'attendance', { enabled: true, config }, 'custom');
}

async function phaseState(stack: Stack, tenantKey: string) {
  const row = await stack.db.db
    .selectFrom('stream_states')
    .select('state')
    .where('tenant_key', '=', tenantKey)
    .where('module', '=', 'attendance')
    .where('stream', '=', 'attendance_flows')
    .executeTakeFirstOrThrow();
  return (row.state as { s: { cursor: number | null; from: number; until: number } }).s;
}

/** attendance_flows is typed with the shared columns only (db/database.ts), so its own are read by SQL. */
interface FlowRow {
  record_key: string;
  record_id: string;
  user_id: string | null;
  creator_id: string | null;
  check_time: Date | null;
  location_name: string | null;
  type: number | null;
  is_field: boolean | null;
  is_wifi: boolean | null;
  raw: { check_time?: string };
  deleted_at: Date | null;
}

async function flowRows(stack: Stack, tenantKey: string, recordKey?: string): Promise<FlowRow[]> {
  const res = await sql<FlowRow>`
    select * from attendance_flows
     where tenant_key = ${tenantKey} and (${recordKey ?? null}::text is null or record_key = ${recordKey ?? null})`.execute(stack.db.db);
  return res.rows;
}

/** What the simulator holds for these users over [from, to], as record_id -> user id sent back. */
function expectedFlows(stack: Stack, tenantKey: string, userOpenIds: string[], from: number, to: number, type: 'employee_id' | 'employee_no') {
  const book = stack.data.attendance(tenantKey);
  const dir = stack.data.contact(tenantKey);
  const out = new Map<string, { userId: string; checkTime: number }>();
  for (const openId of userOpenIds) {
    const u = dir.users.get(openId)!;
    for (const p of book.punches(u, from, to)) {
      out.set(p.record_id, { userId: type === 'employee_id' ? u.user_id : u.employee_no, checkTime: p.checkTime });
    }
  }
  return out;
}

const byWindow = (queries: FlowQuery[]) => {
  const m = new Map<number, FlowQuery[]>();
  for (const q of queries) m.set(q.from, [...(m.get(q.from) ?? []), q]);
  return m;
};

describe('attendance module', () => {
  let stack: Stack;
  /** Slices that ended with work left: runs resumed from their checkpoint in a later slice. */
  let continued = 0;
  beforeAll(async () => {
    stack = await startStack({
      encrypt: false,
      // Slices of one page, so runs stop and resume from the checkpoint mid-listing and mid-batch
      // whatever the machine's speed (at 150 ms a quiet machine finished a run in one slice).
      start: { rateLimitScale: 20, engineOptions: { sliceMs: 1 } },
      data: { enforceRateLimits: false, contactShape: SHAPE },
    });
    const engine = stack.larksync.services.engine;
    const runSlice = engine.runSlice.bind(engine);
    engine.runSlice = async (runId, lease) => {
      const outcome = await runSlice(runId, lease);
      if (outcome === 'continue') continued += 1;
      return outcome;
    };
    await whenReady(stack);
    // Polling is what this file tests; change events (test/events-in/) would apply changes between runs.
    stack.sim.events.pause();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('rejects a bad config naming the field, and fills defaults', async () => {
    await addCustomTenant(stack, T_DEFAULT, {});
    const view = await stack.larksync.services.connectors.get(T_DEFAULT, 'attendance', 'custom');
    expect(view?.config).toEqual({ employeeType: 'employee_id', lookbackDays: 7 });
    expect(view?.warnings).toEqual([]);
    const put = (config: Record<string, unknown>) =>
      stack.larksync.services.connectors.put(T_DEFAULT, 'attendance', { enabled: true, config }, 'custom');
    await expect(put({ employeeType: 'open_id' })).rejects.toMatchObject({ code: 'invalid_config', message: expect.stringContaining('config.employeeType') });
    await expect(put({ lookbackDays: 0 })).rejects.toMatchObject({ message: expect.stringContaining('config.lookbackDays') });
    await expect(put({ employeeIds: [] })).rejects.toMatchObject({ message: expect.stringContaining('config.employeeIds') });
    await expect(put({ userIds: ['x'] })).rejects.toMatchObject({ code: 'invalid_config' });
  });

  it('lists every contact user by user_id and reads their flows in full batches of at most 50, one day per call', async () => {
    const run = await runToEnd(stack, T_DEFAULT);
    expect(run.error_message).toBeNull();
    expect(run.status).toBe('succeeded');
    expect(continued).toBeGreaterThan(0);

    const dir = stack.data.contact(T_DEFAULT);
    expect(dir.users.size).toBe(58);
    const queries = stack.data.attendance(T_DEFAULT).queries;
    const state = await phaseState(stack, T_DEFAULT);
    expect(state.cursor).toBe(state.until);
    expect(state.until - state.from).toBe(7 * DAY);

    // user_ids are contact user_ids (the simulator only hands those out for user_id_type=user_id).
    const allUserIds = new Set([...dir.users.values()].map((u) => u.user_id));
    expect(new Set(queries.flatMap((q) => q.userIds))).toEqual(allUserIds);
    expect(queries.every((q) => q.employeeType === 'employee_id')).toBe(true);
    const windows = byWindow(queries);
    expect(windows.size).toBe(7);
    for (const [from, qs] of windows) {
      expect(qs.map((q) => q.userIds.length).sort((a, b) => a - b)).toEqual([8, 50]);
      expect(qs.every((q) => q.to === Math.min(from + DAY, state.until) - 1)).toBe(true);
    }
    expect(Math.min(...windows.keys())).toBe(state.from);

    const expected = expectedFlows(stack, T_DEFAULT, [...dir.users.keys()], state.from, state.until - 1, 'employee_id');
    expect(expected.size).toBeGreaterThan(100);
    const rows = await flowRows(stack, T_DEFAULT);
    expect(rows.length).toBe(expected.size);
    expect(run.counts.attendance_flows).toBe(expected.size);
    for (const r of rows) {
      const e = expected.get(r.record_key)!;
      expect(r.record_id).toBe(r.record_key);
      expect(r.user_id).toBe(e.userId);
      expect(r.check_time?.getTime()).toBe(e.checkTime * 1000);
      expect(r.raw.check_time).toBe(String(e.checkTime));
      expect(typeof r.is_wifi).toBe('boolean');
    }
  });

  it('re-reads the lookback window without rewriting unchanged flows, and picks up a correction', async () => {
    const first = await phaseState(stack, T_DEFAULT);
    const before = await sql<{ s: string }>`select max(change_seq)::text as s from attendance_flows where tenant_key = ${T_DEFAULT}`.execute(stack.db.db);
    const user = [...stack.data.contact(T_DEFAULT).users.values()][10]!;
    const correctionAt = first.until - 3 * DAY + 123;
    const correctionId = stack.data.attendance(T_DEFAULT).addCorrection(user.open_id, correctionAt);

    const again = await runToEnd(stack, T_DEFAULT);
    expect(again.status).toBe('succeeded');
    const state = await phaseState(stack, T_DEFAULT);
    expect(state.from).toBe(state.until - 7 * DAY);
    // Changed rows: the correction, plus any punch made since the first run (they are real time).
    const changed = await sql<{ record_key: string }>`
      select record_key from attendance_flows
       where tenant_key = ${T_DEFAULT} and change_seq > ${before.rows[0]!.s}::bigint
         and check_time <= to_timestamp(${first.until})`.execute(stack.db.db);
    expect(changed.rows.map((r) => r.record_key)).toEqual([correctionId]);
    const [row] = await flowRows(stack, T_DEFAULT, correctionId);
    expect(row).toMatchObject({ user_id: user.user_id, creator_id: user.user_id, type: 2, deleted_at: null });
    expect(row?.check_time?.getTime()).toBe(correctionAt * 1000);
  });

  it('after an outage longer than the lookback, reads back to the last complete run', async () => {
    const gapStart = (await phaseState(stack, T_DEFAULT)).until - 10 * DAY;
    await sql`update stream_states set state = jsonb_set(state, '{s,cursor}', to_jsonb(${gapStart}::bigint))
               where tenant_key = ${T_DEFAULT} and module = 'attendance'`.execute(stack.db.db);
    const book = stack.data.attendance(T_DEFAULT);
    book.queries.length = 0;
    const run = await runToEnd(stack, T_DEFAULT, 'full');
    expect(run.status).toBe('succeeded');
    const state = await phaseState(stack, T_DEFAULT);
    expect(state.from).toBe(gapStart);
    expect(Math.min(...book.queries.map((q) => q.from))).toBe(gapStart);
    expect(byWindow(book.queries).size).toBe(Math.ceil((state.until - gapStart) / DAY));
  });

  it('reads only the configured employeeIds, without Contact, and names the ids when Lark rejects one', async () => {
    const users = [...stack.data.contact(T_EXPLICIT).users.values()].slice(0, 3);
    const ids = users.map((u) => u.user_id);
    await addCustomTenant(stack, T_EXPLICIT, { employeeIds: [...ids, ids[0]], lookbackDays: 2 });
    const run = await runToEnd(stack, T_EXPLICIT);
    expect(run.status).toBe('succeeded');
    const queries = stack.data.attendance(T_EXPLICIT).queries;
    expect(queries).toHaveLength(2);
    expect(queries.every((q) => JSON.stringify(q.userIds) === JSON.stringify(ids))).toBe(true);
    expect(run.upstream_calls).toBe(2);
    const state = await phaseState(stack, T_EXPLICIT);
    const expected = expectedFlows(stack, T_EXPLICIT, users.map((u) => u.open_id), state.from, state.until - 1, 'employee_id');
    const rows = await flowRows(stack, T_EXPLICIT);
    expect(new Set(rows.map((r) => r.record_key))).toEqual(new Set(expected.keys()));
    expect(new Set(rows.map((r) => r.user_id))).toEqual(new Set([...expected.values()].map((e) => e.userId)));

    await stack.larksync.services.connectors.put(T_EXPLICIT, 'attendance', { enabled: true, config: { employeeIds: ['uid1', 'nobody'] } }, 'custom');
    const bad = await runToEnd(stack, T_EXPLICIT);
    expect(bad.status).toBe('failed');
    expect(bad.error_class).toBe('invalid_config');
    expect(bad.error_message).toMatch(/1220004/);
    expect(bad.error_message).toMatch(/employee_id uid1, nobody/);
  });

  it('employee_no: fails clearly while Contact withholds job numbers, then syncs by job number', async () => {
    const view = await addCustomTenant(stack, T_NO, { employeeType: 'employee_no', lookbackDays: 1 });
    expect(view.warnings.join(' ')).toMatch(/contact:user\.employee_number:read/);
    const refused = await runToEnd(stack, T_NO);
    expect(refused.status).toBe('failed');
    expect(refused.error_class).toBe('permission_denied');
    expect(refused.error_message).toMatch(/none carried employee_no.*contact:user\.employee_number:read/);
    expect(stack.data.attendance(T_NO).queries).toHaveLength(0);

    const dir = stack.data.contact(T_NO);
    dir.employeeNumberScope = true;
    const run = await runToEnd(stack, T_NO);
    expect(run.status).toBe('succeeded');
    const queries = stack.data.attendance(T_NO).queries;
    expect(queries.every((q) => q.employeeType === 'employee_no')).toBe(true);
    expect(new Set(queries.flatMap((q) => q.userIds))).toEqual(new Set([...dir.users.values()].map((u) => u.employee_no)));
    expect(queries.map((q) => q.userIds.length).sort((a, b) => a - b)).toEqual([8, 50]);
    const state = await phaseState(stack, T_NO);
    const expected = expectedFlows(stack, T_NO, [...dir.users.keys()], state.from, state.until - 1, 'employee_no');
    const rows = await flowRows(stack, T_NO);
    expect(rows.length).toBe(expected.size);
    for (const r of rows) expect(r.user_id).toBe(expected.get(r.record_key)!.userId);
  });

  it('a store-app tenant: the connector is accepted with a warning, and a run fails as unsupported_for_store_app', async () => {
    await openTenant(stack, STORE_TENANT);
    const view = await stack.larksync.services.connectors.put(STORE_TENANT, 'attendance', { enabled: true, config: {} }, 'store');
    expect(view.warnings).toHaveLength(1);
    expect(view.warnings[0]).toMatch(/custom .*app/);
    expect(view.warnings[0]).toMatch(/unsupported_for_store_app/);

    const run = await runToEnd(stack, STORE_TENANT);
    expect(run.status).toBe('failed');
    expect(run.error_class).toBe('unsupported_for_store_app');
    expect(run.error_message).toMatch(/attendance needs a custom \(self-built\) app/);
    expect(run.upstream_calls).toBe(0);
    expect(stack.data.attendance(STORE_TENANT).queries).toHaveLength(0);
  });

  it('the simulated endpoint validates like Lark and refuses a store app', async () => {
    const call = (tenantKey: string, query: string, body: unknown) =>
      stack.larksync.services.tokens.withTenantToken(tenantKey, async (token, baseUrl) => {
        const res = await fetch(`${baseUrl}${FLOWS_PATH}${query}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as { code: number; msg: string } };
      });
    const window = { check_time_from: '1717171200', check_time_to: '1717257599' };
    expect(await call(T_DEFAULT, '?employee_type=open_id', { user_ids: ['uid1'], ...window })).toMatchObject({
      status: 400,
      body: { code: 1220001, msg: 'employee_type invalid' },
    });
    const many = Array.from({ length: 51 }, (_, i) => `uid${i + 1}`);
    expect(await call(T_DEFAULT, '?employee_type=employee_id', { user_ids: many, ...window })).toMatchObject({ status: 400, body: { code: 1220001 } });
    expect(await call(T_DEFAULT, '?employee_type=employee_id', { ...window })).toMatchObject({ body: { code: 1220001, msg: 'user_ids invalid' } });
    expect(await call(T_DEFAULT, '?employee_type=employee_id', { user_ids: ['uid1'], check_time_from: 1717171200, check_time_to: '1717257599' })).toMatchObject({
      body: { code: 1220001, msg: 'check_time_from invalid' },
    });
    expect(await call(T_DEFAULT, '?employee_type=employee_id', { user_ids: ['uid1'], ...window })).toMatchObject({ status: 200, body: { code: 0 } });
    expect(await call(STORE_TENANT, '?employee_type=employee_id', { user_ids: ['uid1'], ...window })).toMatchObject({
      status: 400,
      body: { code: 99991672 },
    });
    expect(stack.sim.count(FLOWS_PATH, 99991672)).toBe(1);
  });
});

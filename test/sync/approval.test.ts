import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { ApprovalListQuery, ApprovalTenant, SimWidget } from '../../simulator/data/approval.js';
import type { SyncRunRow } from '../../src/sync/sync.tables.js';
import { reconcilePass, type Pass } from '../../src/connectors/approval/instances.phase.js';
import { instanceRows, leafWidgets } from '../../src/connectors/approval/rows.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { runToEnd as runShared } from '../helpers/runs.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MAIN = 'tenant-approval-main';
const RESUME = 'tenant-approval-resume';

async function runToEnd(stack: Stack, tenant: string, mode: 'incremental' | 'full' = 'incremental'): Promise<SyncRunRow> {
  return runShared(stack, tenant, 'approval', mode);
}

/** The highest change_seq over the tenant's approval rows: unchanged means nothing was rewritten. */
async function maxChangeSeq(stack: Stack, tenant: string): Promise<string | null> {
  const res = await sql<{ s: string | null }>`
    select max(s)::text as s from (
      select max(change_seq) as s from approval_instances where tenant_key = ${tenant}
      union all select max(change_seq) from approval_instance_fields where tenant_key = ${tenant}
      union all select max(change_seq) from approval_tasks where tenant_key = ${tenant}
      union all select max(change_seq) from approval_timeline where tenant_key = ${tenant}) x`.execute(stack.db.db);
  return res.rows[0]?.s ?? null;
}

async function liveInstanceKeys(stack: Stack, tenant: string): Promise<string[]> {
  const res = await sql<{ k: string }>`
    select record_key as k from approval_instances where tenant_key = ${tenant} and deleted_at is null order by record_key`.execute(stack.db.db);
  return res.rows.map((r) => r.k).sort();
}

async function rowsOf(stack: Stack, table: string, tenant: string, instanceCode: string) {
  const res = await sql<Record<string, unknown> & { record_key: string; deleted_at: Date | null }>`
    select * from ${sql.table(table)} where tenant_key = ${tenant} and instance_code = ${instanceCode} order by record_key`.execute(stack.db.db);
  return res.rows;
}

const windowOf = (q: ApprovalListQuery) => ({ start: Number(q.startTime), end: Number(q.endTime) });

/** Leaf paths the way the contract spells them: top-level index, then items[row].widgetId. */
function expectedLeaves(form: SimWidget[]): Map<string, SimWidget> {
  const out = new Map<string, SimWidget>();
  form.forEach((w, i) => {
    if (w.type === 'fieldList') {
      (w.value as SimWidget[][]).forEach((row, r) => row.forEach((c) => out.set(`${i}.items[${r}].${c.id}`, c)));
    } else {
      out.set(String(i), w);
    }
  });
  return out;
}

describe('approval module', () => {
  let stack: Stack;
  let main: ApprovalTenant;
  let codes: string[];
  let burst: string[];
  /** `until` of the first (backfill) run, read off its last list window. */
  let firstUntil = 0;

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { rateLimitScale: 50 }, data: { enforceRateLimits: false } });
    await whenReady(stack);
    // This file tests what polling reads. Lark's change events (pushed by the simulator once
    // larksync subscribes) would apply the same changes between runs: test/events-in/ covers them.
    stack.sim.events.pause();
    main = stack.data.approval(MAIN, { definitions: 2, instancesPerDay: 8, days: 6 });
    stack.data.approval(RESUME, { definitions: 1, instancesPerDay: 24, days: 4 });
    codes = main.codes();
    // 110 instances inside one hour: one 10 h window then needs two list pages of 100.
    burst = main.addInstances(codes[0]!, 110, main.anchorMs - 30 * HOUR, main.anchorMs - 29 * HOUR);
    for (const t of [MAIN, RESUME]) {
      await openTenant(stack, t);
    }
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('the simulated list and detail APIs validate their parameters like Lark', async () => {
    const get = (path: string) =>
      stack.larksync.services.tokens.withTenantToken(MAIN, async (token, baseUrl) => {
        const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
        return { status: res.status, body: (await res.json()) as { code: number; data?: Record<string, unknown> } };
      });
    const list = '/open-apis/approval/v4/instances';
    const win = `start_time=${main.anchorMs - DAY}&end_time=${main.anchorMs}`;
    expect(await get(`${list}?${win}`)).toMatchObject({ status: 400, body: { code: 1390002 } });
    expect(await get(`${list}?approval_code=nope&${win}`)).toMatchObject({ status: 400, body: { code: 1390002 } });
    expect(await get(`${list}?approval_code=${codes[0]}&start_time=1`)).toMatchObject({ status: 400, body: { code: 1390001 } });
    expect(await get(`${list}?approval_code=${codes[0]}&${win}&page_size=101`)).toMatchObject({ status: 400, body: { code: 1390001 } });
    expect(await get(`${list}?approval_code=${codes[0]}&${win}&page_size=0`)).toMatchObject({ status: 400, body: { code: 1390001 } });
    const page = await get(`${list}?approval_code=${codes[0]}&${win}&page_size=3`);
    expect(page.body.data).toMatchObject({ has_more: true, instance_code_list: main.list(codes[0]!, main.anchorMs - DAY, main.anchorMs).slice(0, 3) });
    expect(await get(`${list}/NOT-AN-INSTANCE`)).toMatchObject({ status: 400, body: { code: 1390003 } });
    const first = (page.body.data!.instance_code_list as string[])[0]!;
    const detail = await get(`${list}/${first}?user_id_type=open_id`);
    expect(detail.body.data).toMatchObject({ instance_code: first, user_id: '', open_id: main.instance(first).open_id });
    expect(JSON.parse(detail.body.data!.form as string)).toEqual(main.instance(first).form);
    main.listQueries.length = 0;
    main.detailCalls.length = 0;
  });

  it('validates the config with a message naming the bad field, and fills defaults', async () => {
    const put = (config: Record<string, unknown>) => stack.larksync.services.connectors.put(MAIN, 'approval', { enabled: true, config }, 'store');
    await expect(put({})).rejects.toThrow('config.approvalCodes: Expected required property');
    await expect(put({ approvalCodes: [] })).rejects.toThrow(/config\.approvalCodes: Expected array length/);
    await expect(put({ approvalCodes: ['a'], backfillDays: 0 })).rejects.toThrow(/config\.backfillDays/);
    await expect(put({ approvalCodes: ['a'], lookback: 3 })).rejects.toThrow('config.lookback: Unexpected property');
    const defaults = await put({ approvalCodes: ['a'] });
    expect(defaults.config).toEqual({ approvalCodes: ['a'], backfillDays: 365, lookbackDays: 7 });
    expect(defaults.warnings).toEqual([]);

    const view = await put({ approvalCodes: codes, backfillDays: 3, lookbackDays: 1 });
    expect(view.config).toEqual({ approvalCodes: codes, backfillDays: 3, lookbackDays: 1 });
  });

  it('backfills in windows of at most 10 h with pages of 100, and stores instances, leaf fields, tasks and timeline', async () => {
    const run = await runToEnd(stack, MAIN);
    expect(run.error_message).toBeNull();
    expect(run.status).toBe('succeeded');

    const queries = main.listQueries;
    expect(queries.every((q) => q.pageSize === '100')).toBe(true);
    expect(queries.every((q) => windowOf(q).end - windowOf(q).start <= 10 * HOUR && windowOf(q).end > windowOf(q).start)).toBe(true);
    firstUntil = Math.max(...queries.map((q) => windowOf(q).end));
    const from = firstUntil - 3 * DAY;
    for (const code of codes) {
      // Windows tile [until - backfillDays, until) without gaps; later pages repeat their window.
      const first = queries.filter((q) => q.approvalCode === code && q.pageToken === undefined).map(windowOf);
      expect(first[0]?.start).toBe(from);
      expect(first.at(-1)?.end).toBe(firstUntil);
      first.slice(1).forEach((w, i) => expect(w.start).toBe(first[i]!.end));
    }
    const paged = queries.filter((q) => q.pageToken !== undefined);
    expect(paged).toHaveLength(1);
    expect(windowOf(paged[0]!).start).toBeLessThanOrEqual(main.anchorMs - 30 * HOUR);

    const expected = main.codesBetween(from, firstUntil).sort();
    expect(expected.length).toBeGreaterThan(110 + 2 * 20);
    expect(await liveInstanceKeys(stack, MAIN)).toEqual(expected);
    expect(burst.every((c) => expected.includes(c))).toBe(true);
    expect(run.counts.approval_instances).toBe(expected.length);

    // An expense claim with at least two item rows: nested widgets become their own rows.
    const withRows = expected.find((c) => {
      const items = main.instance(c).form.find((w) => w.type === 'fieldList');
      return items !== undefined && (items.value as unknown[]).length >= 2;
    })!;
    const inst = main.instance(withRows);
    const fields = await rowsOf(stack, 'approval_instance_fields', MAIN, withRows);
    const leaves = expectedLeaves(inst.form);
    expect(fields.map((f) => f.path).sort()).toEqual([...leaves.keys()].sort());
    expect(fields.map((f) => f.record_key).sort()).toEqual([...leaves.keys()].map((p) => `${withRows}:${p}`).sort());
    expect(fields.some((f) => f.type === 'fieldList')).toBe(false);
    const listIndex = inst.form.findIndex((w) => w.type === 'fieldList');
    const amount = fields.find((f) => f.path === `${listIndex}.items[1].widget_item_amount`)!;
    expect(amount.widget_id).toBe('widget_item_amount');
    expect(amount.name).toBe('Amount');
    expect(amount.value).toBe(((inst.form[listIndex]!.value as SimWidget[][])[1]!.find((w) => w.id === 'widget_item_amount')!).value);
    const contact = fields.find((f) => f.type === 'contact')!;
    expect(contact.value).toEqual(inst.form.find((w) => w.type === 'contact')!.value);

    const tasks = await rowsOf(stack, 'approval_tasks', MAIN, withRows);
    expect(tasks.map((t) => t.record_key).sort()).toEqual(inst.task_list.map((t) => `${withRows}:${t.id}`).sort());
    expect(tasks.map((t) => t.status).sort()).toEqual(inst.task_list.map((t) => t.status).sort());
    const timeline = await rowsOf(stack, 'approval_timeline', MAIN, withRows);
    const byPosition = [...timeline].sort((a, b) => Number(a.position) - Number(b.position));
    expect(byPosition.map((e) => e.position)).toEqual(inst.timeline.map((_, i) => i));
    expect(byPosition.map((e) => e.record_key)).toEqual(inst.timeline.map((_, i) => `${withRows}:${i}`));
    expect(byPosition.map((e) => e.type)).toEqual(inst.timeline.map((e) => e.type));

    const pending = expected.find((c) => main.instance(c).status === 'PENDING')!;
    const [row] = await rowsOf(stack, 'approval_instances', MAIN, pending);
    expect(row).toMatchObject({ status: 'PENDING', end_time: null, user_id: null, approval_code: main.instance(pending).approval_code });
    expect((row!.start_time as Date).getTime()).toBe(Number(main.instance(pending).start_time));
    expect(row!.open_id).toBe(main.instance(pending).open_id);
    expect(row!.partition).toBe(main.instance(pending).approval_code);
  });

  it('an incremental run re-reads only the lookback span, and unchanged instances rewrite nothing', async () => {
    const before = await maxChangeSeq(stack, MAIN);
    main.listQueries.length = 0;
    main.detailCalls.length = 0;
    const run = await runToEnd(stack, MAIN);
    expect(run.status).toBe('succeeded');
    expect(await maxChangeSeq(stack, MAIN)).toBe(before);

    const starts = main.listQueries.map((q) => windowOf(q).start);
    const until = Math.max(...main.listQueries.map((q) => windowOf(q).end));
    // lookbackDays = 1 before the previous run's cursor.
    expect(Math.min(...starts)).toBe(firstUntil - DAY);
    expect(main.listQueries.every((q) => windowOf(q).end - windowOf(q).start <= 10 * HOUR)).toBe(true);
    expect([...main.detailCalls].sort()).toEqual(main.codesBetween(firstUntil - DAY, until).sort());
    expect(run.counts.approval_instances ?? 0).toBe(main.detailCalls.length);
  });

  it('picks up a status change inside the lookback, replaces children, and leaves older changes to a full run', async () => {
    const now = Date.now();
    const recent = main.codesBetween(now - 18 * HOUR, now, codes[0]).find((c) => {
      const i = main.instance(c);
      return i.status === 'PENDING' && ((i.form.find((w) => w.type === 'fieldList')?.value as unknown[]) ?? []).length >= 2;
    });
    const old = main.codesBetween(now - 60 * HOUR, now - 48 * HOUR).find((c) => main.instance(c).status !== 'CANCELED');
    const vanished = main.codesBetween(now - 12 * HOUR, now).find((c) => c !== recent);
    expect(recent && old && vanished).toBeTruthy();
    const recentBefore = await rowsOf(stack, 'approval_timeline', MAIN, recent!);

    main.setStatus(recent!, 'APPROVED');
    main.update(recent!, (inst) => {
      // The applicant dropped the last expense line before approval.
      const list = inst.form.find((w) => w.type === 'fieldList')!;
      (list.value as unknown[]).pop();
    });
    main.setStatus(old!, 'CANCELED');
    main.remove(vanished!, 'detail');

    const run = await runToEnd(stack, MAIN);
    expect(run.status).toBe('succeeded');
    const [inst] = await rowsOf(stack, 'approval_instances', MAIN, recent!);
    expect(inst!.status).toBe('APPROVED');
    expect((inst!.end_time as Date).getTime()).toBe(Number(main.instance(recent!).end_time));
    const tasks = await rowsOf(stack, 'approval_tasks', MAIN, recent!);
    expect(tasks.every((t) => t.status === 'APPROVED' && t.end_time !== null)).toBe(true);
    const timeline = await rowsOf(stack, 'approval_timeline', MAIN, recent!);
    expect(timeline).toHaveLength(recentBefore.length + 1);
    expect(timeline.find((e) => e.position === recentBefore.length)?.type).toBe('PASS');

    const fields = await rowsOf(stack, 'approval_instance_fields', MAIN, recent!);
    const leaves = expectedLeaves(main.instance(recent!).form);
    expect(fields.filter((f) => f.deleted_at === null).map((f) => f.path).sort()).toEqual([...leaves.keys()].sort());
    const dropped = fields.filter((f) => f.deleted_at !== null);
    expect(dropped.length).toBe(3);
    expect(dropped.every((f) => /\.items\[\d+\]\.widget_item_/.test(String(f.path)))).toBe(true);

    // Listed but gone at detail time (1390003): the run goes on; the instance and its children are soft-deleted.
    const [gone] = await rowsOf(stack, 'approval_instances', MAIN, vanished!);
    expect(gone!.deleted_at).not.toBeNull();
    expect((await rowsOf(stack, 'approval_timeline', MAIN, vanished!)).every((e) => e.deleted_at !== null)).toBe(true);

    // Created before the lookback: an incremental run does not see the change...
    const [oldRow] = await rowsOf(stack, 'approval_instances', MAIN, old!);
    expect(oldRow!.status).not.toBe('CANCELED');
    // ...a full run (backfillDays) does, and rewrites nothing else.
    const before = await maxChangeSeq(stack, MAIN);
    main.listQueries.length = 0;
    const full = await runToEnd(stack, MAIN, 'full');
    expect(full.status).toBe('succeeded');
    const fullUntil = Math.max(...main.listQueries.map((q) => windowOf(q).end));
    expect(Math.min(...main.listQueries.map((q) => windowOf(q).start))).toBe(fullUntil - 3 * DAY);
    const [oldAfter] = await rowsOf(stack, 'approval_instances', MAIN, old!);
    expect(oldAfter!.status).toBe('CANCELED');
    const changed = await sql<{ n: number }>`
      select count(*)::int as n from approval_instances where tenant_key = ${MAIN} and change_seq > ${before}::bigint`.execute(stack.db.db);
    expect(changed.rows[0]?.n).toBe(1);
  });

  it('a run that fails on a detail resumes from its checkpoint without listing earlier windows again', async () => {
    const data = stack.data.approval(RESUME);
    await stack.larksync.services.connectors.put(RESUME, 'approval', { enabled: true, config: { approvalCodes: data.codes(), backfillDays: 3 } }, 'store');
    const now = Date.now();
    // About the middle of the backfill: several windows are done before it fails.
    const victim = data.codesBetween(now - 41 * HOUR, now - 38 * HOUR)[0]!;
    const path = `/open-apis/approval/v4/instances/${victim}`;
    stack.sim.injectFault({ path, status: 403, code: 1390009, msg: 'no operation permission', count: 1_000 });

    const failed = await runToEnd(stack, RESUME);
    expect(failed.status).toBe('failed');
    expect(failed.error_class).toBe('permission_denied');
    const failedQueries = [...data.listQueries];
    const lastWindow = windowOf(failedQueries.at(-1)!);
    expect(lastWindow.start).toBeGreaterThan(Math.min(...failedQueries.map((q) => windowOf(q).start)));
    const stored = await liveInstanceKeys(stack, RESUME);
    expect(stored.length).toBeGreaterThan(0);
    expect(stored).not.toContain(victim);

    stack.sim.clearFaults();
    data.listQueries.length = 0;
    data.detailCalls.length = 0;
    const resumed = await runToEnd(stack, RESUME);
    expect(resumed.status).toBe('succeeded');
    // The page that held the victim was not listed again: listing continues after its window.
    expect(data.listQueries.length).toBeGreaterThan(0);
    expect(Math.min(...data.listQueries.map((q) => windowOf(q).start))).toBe(lastWindow.end);
    expect(failedQueries.length + data.listQueries.length).toBe(new Set([...failedQueries, ...data.listQueries].map((q) => q.startTime)).size);
    // Details committed before the failure are not fetched again; the victim is.
    expect(data.detailCalls).toContain(victim);
    expect(data.detailCalls.filter((c) => stored.includes(c))).toEqual([]);

    const from = Math.min(...failedQueries.map((q) => windowOf(q).start));
    const until = Math.max(...data.listQueries.map((q) => windowOf(q).end));
    expect(await liveInstanceKeys(stack, RESUME)).toEqual(data.codesBetween(from, until).sort());
  });

  it('names an unknown approval code on the run while the other codes sync (partial), and fails a run of that code alone', async () => {
    const data = stack.data.approval(RESUME);
    const known = data.codes()[0]!;
    const put = (approvalCodes: string[]) =>
      stack.larksync.services.connectors.put(RESUME, 'approval', { enabled: true, config: { approvalCodes, backfillDays: 3, lookbackDays: 1 } }, 'store');
    await put(['NO-SUCH-CODE', known]);
    data.listQueries.length = 0;
    const partial = await runToEnd(stack, RESUME);
    expect(partial.status).toBe('partial');
    expect(partial.error_class).toBeNull();
    expect(partial.item_errors).toEqual([
      { item: 'approval_code', id: 'NO-SUCH-CODE', errorClass: 'invalid_config', message: expect.stringMatching(/"NO-SUCH-CODE" does not exist.*approvalCodes/) },
    ]);
    expect(data.listQueries[0]?.approvalCode).toBe('NO-SUCH-CODE');
    expect(data.listQueries.slice(1).every((q) => q.approvalCode === known)).toBe(true);
    expect(data.listQueries.length).toBeGreaterThan(1);

    await put(['NO-SUCH-CODE']);
    const failed = await runToEnd(stack, RESUME);
    expect(failed.status).toBe('failed');
    expect(failed.error_class).toBe('invalid_config');
    expect(failed.error_message).toContain('"NO-SUCH-CODE"');

    await put([known]);
    data.listQueries.length = 0;
    const fixed = await runToEnd(stack, RESUME);
    expect(fixed.status).toBe('succeeded');
    expect(data.listQueries.length).toBeGreaterThan(0);
    expect(data.listQueries.every((q) => q.approvalCode === known)).toBe(true);
  });
});

describe('approval rows', () => {
  it('flattens nested fieldLists to leaf paths and keeps stored fields when the form is unreadable', () => {
    const form = [
      { id: 'w_a', name: 'A', type: 'input', value: 'x' },
      {
        id: 'w_list',
        name: 'List',
        type: 'fieldList',
        value: [
          [{ id: 'w_b', type: 'number', value: 1 }],
          [
            { id: 'w_b', type: 'number', value: 2 },
            { id: 'w_inner', type: 'fieldList', value: [[{ id: 'w_c', type: 'input', value: 'deep' }]] },
            { type: 'input', value: 'no id' },
          ],
        ],
      },
      { id: 'w_empty', type: 'fieldList', value: [] },
    ];
    expect(leafWidgets(form).map((l) => l.path)).toEqual(['0', '1.items[0].w_b', '1.items[1].w_b', '1.items[1].w_inner.items[0].w_c', '1.items[1].2']);
    const rows = instanceRows({ form: JSON.stringify(form), start_time: '1717200000000', end_time: '0', user_id: '' }, 'I1', 'A1');
    expect(rows.fields?.map((f) => f.recordKey)).toContain('I1:1.items[1].w_inner.items[0].w_c');
    expect(rows.instance.columns).toMatchObject({ start_time: '2024-06-01T00:00:00.000Z', end_time: null, user_id: null, approval_code: 'A1' });
    expect(instanceRows({ form: '{not json' }, 'I1', 'A1').fields).toBeUndefined();
    expect(instanceRows({}, 'I1', 'A1').fields).toEqual([]);
  });

  it('a resumed pass skips codes removed from the config and appends added ones', () => {
    const pass: Pass = { mode: 'incremental', codes: ['a', 'b', 'c'], until: 10 * DAY, codeIndex: 1, windowStart: 5 * DAY, pageToken: 'pt', pending: ['i1'] };
    const config = { approvalCodes: ['a', 'b', 'c', 'd'], backfillDays: 3, lookbackDays: 1 };
    expect(reconcilePass(pass, config, {})).toEqual({ ...pass, codes: ['a', 'b', 'c', 'd'] });
    // The current code is gone: its page is dropped and the next code starts from its own cursor.
    expect(reconcilePass(pass, { ...config, approvalCodes: ['c', 'a'] }, { c: 9 * DAY })).toEqual({
      ...pass,
      codes: ['a', 'c'],
      codeIndex: 1,
      windowStart: 8 * DAY,
      pageToken: null,
      pending: [],
    });
    expect(reconcilePass(pass, { ...config, approvalCodes: ['a'] }, {})).toMatchObject({ codes: ['a'], codeIndex: 1, windowStart: 10 * DAY });
  });
});

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { ApprovalTenant } from '../../simulator/data/approval.js';
import { STORE_APP, openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';
import { finishedRun, runToEnd } from '../helpers/runs.js';
import { waitFor } from '../helpers/wait.js';
import { countCalls, eventStatuses, eventsSettled, row } from './helpers.js';

// approval_instance, approval_task and approval_cc events in (issue 14): v1 envelope,
// operate_time a string or a number (create_time, a number, for a cc); each re-reads the
// instance's detail with its children (one call), only for configured approval codes, and one
// older than what the instance has applied changes nothing; and the overlap with a running sync:
// an event applied between a sync page's read and its commit is not overwritten by that (older) page.

const TENANT = 'tenant-ev-approval';

describe('approval change events in', () => {
  let stack: Stack;
  let approval: ApprovalTenant;
  let code: string;
  let otherCode: string;
  let calls: Record<string, number>;
  beforeAll(async () => {
    stack = await startStack();
    await whenReady(stack);
    await openTenant(stack, TENANT);
    approval = stack.data.approval(TENANT, { definitions: 2, instancesPerDay: 2, days: 3 });
    [code, otherCode] = approval.codes() as [string, string];
    // Subscribing is another part's work (subscription management): here the simulator is told directly.
    stack.sim.events.subscriptions.subscribeApproval(STORE_APP.appId, TENANT, code);
    stack.sim.events.subscriptions.subscribeApproval(STORE_APP.appId, TENANT, otherCode);
    await stack.larksync.services.connectors.put(TENANT, 'approval', { enabled: true, config: { approvalCodes: [code], backfillDays: 5 } }, 'store');
    expect((await runToEnd(stack, TENANT, 'approval', 'full')).status).toBe('succeeded');
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    await eventsSettled(stack);
    calls = countCalls(stack, TENANT);
  });

  /** The simulator's approval events of an instance, by type (what Lark pushed for it). */
  const pushed = (inst: string) => {
    const byType: Record<string, number> = {};
    for (const e of stack.sim.events.list()) {
      const ev = e.body.event as Record<string, unknown> | undefined;
      if (ev?.instance_code === inst) byType[String(ev.type)] = (byType[String(ev.type)] ?? 0) + 1;
    }
    return byType;
  };
  // Handled: re-read, or found already shown by a re-read that started after it arrived (ignored).
  const allHandled = async () =>
    (await Promise.all(['approval_instance', 'approval_task', 'approval_cc'].map((t) => eventStatuses(stack, t)))).flat().every((x) => x === 'processed' || x === 'ignored');

  it('a new instance and its decision: at most one re-read of the detail per event (instance, task, cc), children follow', async () => {
    stack.sim.events.setOptions({ operateTimeNumberShare: 0.5 });
    const inst = approval.createInstance(code);
    await waitFor(async () => (await row(stack, 'approval_instances', TENANT, inst))?.status === 'PENDING', 10_000, 'pending instance');
    approval.setStatus(inst, 'APPROVED');
    await waitFor(async () => (await row(stack, 'approval_instances', TENANT, inst))?.status === 'APPROVED', 10_000, 'approved instance');
    await eventsSettled(stack);
    // PENDING and APPROVED for the instance, and its open task's PENDING and APPROVED at least.
    const events = pushed(inst);
    expect(events.approval_instance).toBe(2);
    expect(events.approval_task).toBeGreaterThanOrEqual(2);
    // An event that arrived before a re-read of its instance started needs none of its own.
    expect(Object.keys(calls)).toEqual(['approval.instances.get']);
    expect(calls['approval.instances.get']).toBeGreaterThanOrEqual(2);
    expect(calls['approval.instances.get']).toBeLessThanOrEqual(Object.values(events).reduce((a, b) => a + b, 0));
    expect(await allHandled()).toBe(true);
    const tasks = await sql<{ status: string }>`select status from approval_tasks where tenant_key = ${TENANT} and instance_code = ${inst} and deleted_at is null`.execute(stack.db.db);
    expect(tasks.rows.length).toBeGreaterThan(0);
    expect(tasks.rows.every((t) => t.status !== 'PENDING')).toBe(true);
    const timeline = await sql<{ n: number }>`select count(*)::int as n from approval_timeline where tenant_key = ${TENANT} and instance_code = ${inst}`.execute(stack.db.db);
    expect(timeline.rows[0]!.n).toBeGreaterThan(1);
  });

  it('approval_task alone (a node passed, the instance still PENDING): the re-read brings the passed task and the next one', async () => {
    // An instance waiting on its first node (the manager), so passing it opens the next one.
    let inst = approval.createInstance(code);
    while (approval.instance(inst).task_list.find((t) => t.status === 'PENDING')?.node_id !== 'node_manager') inst = approval.createInstance(code);
    await eventsSettled(stack);
    const manager = approval.instance(inst).task_list.find((t) => t.status === 'PENDING')!;
    calls = countCalls(stack, TENANT);
    const tasksBefore = pushed(inst).approval_task ?? 0;
    approval.passTask(inst);
    const finance = approval.instance(inst).task_list.at(-1)!;
    expect(finance).toMatchObject({ node_id: 'node_finance', status: 'PENDING' });
    await waitFor(async () => (await row(stack, 'approval_tasks', TENANT, `${inst}:${finance.id}`)) !== undefined, 10_000, 'the next task');
    await eventsSettled(stack);
    // Two approval_task events (APPROVED, then the next PENDING), no approval_instance: at most two
    // re-reads (one, when the second arrived before the first's re-read started).
    expect(pushed(inst)).toMatchObject({ approval_instance: 1, approval_task: tasksBefore + 2 });
    expect(Object.keys(calls)).toEqual(['approval.instances.get']);
    expect(calls['approval.instances.get']).toBeLessThanOrEqual(2);
    const tasks = await sql<{ task_id: string; status: string }>`
      select task_id, status from approval_tasks where tenant_key = ${TENANT} and instance_code = ${inst} and deleted_at is null order by task_id`.execute(stack.db.db);
    expect(tasks.rows).toEqual(expect.arrayContaining([{ task_id: manager.id, status: 'APPROVED' }, { task_id: finance.id, status: 'PENDING' }]));
    expect((await row(stack, 'approval_instances', TENANT, inst))!.status).toBe('PENDING');
    expect((await eventStatuses(stack, 'approval_task')).slice(-2)[0]).toBe('processed');
  });

  it('approval_cc: a cc (CREATE) re-reads the instance and its timeline gains the CC entry; its reading (READ) re-reads once more', async () => {
    const inst = approval.createInstance(code);
    await eventsSettled(stack);
    const timeline = async () =>
      (await sql<{ type: string }>`select type from approval_timeline where tenant_key = ${TENANT} and instance_code = ${inst} and deleted_at is null order by position`.execute(stack.db.db)).rows.map((r) => r.type);
    const before = await timeline();
    calls = countCalls(stack, TENANT);
    const cc = approval.addCc(inst, { open_id: `ou_${TENANT}-4`, user_id: 'uid4' });
    await waitFor(async () => (await timeline()).length === before.length + 1, 10_000, 'the CC entry');
    expect((await timeline()).at(-1)).toBe('CC');
    approval.readCc(inst, cc);
    await eventsSettled(stack);
    expect(calls).toEqual({ 'approval.instances.get': 2 });
    expect((await eventStatuses(stack, 'approval_cc')).slice(-2)).toEqual(['processed', 'processed']);
  });

  it('ordering: an approval_task or approval_cc older than what the instance has applied is ignored without a call', async () => {
    const inst = approval.createInstance(code);
    await eventsSettled(stack);
    const applied = await sql<{ mark: string }>`select mark from event_marks where tenant_key = ${TENANT} and object_key = ${`approval_instances:${inst}`}`.execute(stack.db.db);
    const mark = Number(applied.rows[0]!.mark);
    calls = countCalls(stack, TENANT);
    const common = { app_id: STORE_APP.appId, tenant_key: TENANT, approval_code: code, instance_code: inst };
    const late = await stack.sim.pushV1(STORE_APP.appId, { ...common, type: 'approval_task', task_id: '1', status: 'PENDING', open_id: '', user_id: '', operate_time: String(mark - 60_000) });
    const lateCc = await stack.sim.pushV1(STORE_APP.appId, { ...common, type: 'approval_cc', id: 'cc1', user_id: '', create_time: mark - 60_000, operate: 'READ', from: '' });
    expect([late.status, lateCc.status]).toEqual([200, 200]);
    await eventsSettled(stack);
    expect(calls).toEqual({});
    expect((await eventStatuses(stack, 'approval_task')).at(-1)).toBe('ignored');
    expect((await eventStatuses(stack, 'approval_cc')).at(-1)).toBe('ignored');
  });

  it('an approval code outside the config: stored, ignored, no call', async () => {
    const inst = approval.createInstance(otherCode);
    await eventsSettled(stack);
    expect(await row(stack, 'approval_instances', TENANT, inst)).toBeUndefined();
    expect(calls).toEqual({});
    expect((await eventStatuses(stack, 'approval_instance')).at(-1)).toBe('ignored');
  });

  it('overlap: an event applied while a sync page that read the instance earlier is still in flight survives that page', async () => {
    const inst = approval.createInstance(code);
    await waitFor(async () => (await row(stack, 'approval_instances', TENANT, inst))?.status === 'PENDING', 10_000, 'pending instance');
    await eventsSettled(stack);
    // The sync's read of this instance is answered at once (PENDING) but its answer is held.
    stack.sim.injectFault({ path: `/open-apis/approval/v4/instances/${inst}`, delayAnswerMs: 2_000, count: 1 });
    const seen = approval.detailCalls.length;
    const { run } = await stack.larksync.services.sync.trigger(TENANT, 'approval', 'incremental', 'api');
    await waitFor(() => approval.detailCalls.slice(seen).includes(inst), 10_000, 'the sync reading the instance');
    // Meanwhile the instance is approved in Lark: the event's re-read (newer) is applied first.
    approval.setStatus(inst, 'APPROVED');
    await waitFor(async () => (await row(stack, 'approval_instances', TENANT, inst))?.status === 'APPROVED', 10_000, 'event applied');
    const done = await finishedRun(stack, run.id);
    expect(done.status).toBe('succeeded');
    // The page read before the event (PENDING) committed after it, and changed nothing.
    const after = await row(stack, 'approval_instances', TENANT, inst);
    expect(after!.status).toBe('APPROVED');
    expect(after!.last_run_id).toBeNull();
    const open = await sql<{ n: number }>`
      select count(*)::int as n from approval_tasks where tenant_key = ${TENANT} and instance_code = ${inst} and status = 'PENDING' and deleted_at is null`.execute(stack.db.db);
    expect(open.rows[0]!.n).toBe(0);
  });
});

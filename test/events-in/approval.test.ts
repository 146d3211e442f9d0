import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { ApprovalTenant } from '../../simulator/data/approval.js';
import { STORE_APP, openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';
import { finishedRun, runToEnd } from '../helpers/runs.js';
import { waitFor } from '../helpers/wait.js';
import { countCalls, eventStatuses, eventsSettled, row } from './helpers.js';

// approval_instance events in (issue 14): v1 envelope, operate_time a string or a number; each
// re-reads the instance's detail with its children (one call), only for configured approval
// codes; and the overlap with a running sync: an event applied between a sync page's read and its
// commit is not overwritten by that (older) page.

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

  it('a new instance and its decision: each event re-reads the detail once, children follow', async () => {
    stack.sim.events.setOptions({ operateTimeNumberShare: 0.5 });
    const inst = approval.createInstance(code);
    await waitFor(async () => (await row(stack, 'approval_instances', TENANT, inst))?.status === 'PENDING', 10_000, 'pending instance');
    approval.setStatus(inst, 'APPROVED');
    await waitFor(async () => (await row(stack, 'approval_instances', TENANT, inst))?.status === 'APPROVED', 10_000, 'approved instance');
    await eventsSettled(stack);
    expect(calls).toEqual({ 'approval.instances.get': 2 });
    const tasks = await sql<{ status: string }>`select status from approval_tasks where tenant_key = ${TENANT} and instance_code = ${inst} and deleted_at is null`.execute(stack.db.db);
    expect(tasks.rows.length).toBeGreaterThan(0);
    expect(tasks.rows.every((t) => t.status !== 'PENDING')).toBe(true);
    const timeline = await sql<{ n: number }>`select count(*)::int as n from approval_timeline where tenant_key = ${TENANT} and instance_code = ${inst}`.execute(stack.db.db);
    expect(timeline.rows[0]!.n).toBeGreaterThan(1);
    expect(await eventStatuses(stack, 'approval_instance')).toEqual(['processed', 'processed']);
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

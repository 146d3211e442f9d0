import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApprovalTenant } from '../../simulator/data/approval.js';
import { startEventsSim, type EventsSim } from './events-setup.js';

// approval_instance events (shared/lark/change-events.md §2.1): v1 envelope, only after the app
// called POST /approval/v4/approvals/:approval_code/subscribe for the tenant (1390007 when it
// already did, 1390002 for an unknown code), operate_time a string or a number, and one
// instance's later events held until the earlier one is acknowledged.

const TENANT = 'tk-ev-approval';
const APP = { appId: 'cli_ev_approval', kind: 'store' as const, encryptKey: 'approval-key-1' };
const OTHER = { appId: 'cli_ev_approval_other', kind: 'store' as const };
const path = (code: string, what: 'subscribe' | 'unsubscribe') => `/open-apis/approval/v4/approvals/${code}/${what}`;

describe('simulator approval change events', () => {
  let s: EventsSim;
  let approval: ApprovalTenant;
  let token: string;
  let code: string;
  let otherCode: string;
  const events = (appId = APP.appId) => s.receiver.acked('approval_instance').filter((p) => p.appId === appId);

  beforeAll(async () => {
    s = await startEventsSim([APP, OTHER], [[APP.appId, TENANT], [OTHER.appId, TENANT]]);
    approval = s.data.approval(TENANT, { definitions: 2, instancesPerDay: 1, days: 5 });
    [code, otherCode] = approval.codes() as [string, string];
    token = await s.tenantToken(APP.appId, TENANT);
  });
  afterAll(async () => {
    await s.stop();
  });
  beforeEach(async () => {
    await s.sim.events.idle();
    s.receiver.clear();
    s.sim.events.setOptions({ operateTimeNumberShare: 0.5 });
    s.sim.events.resetCounters();
  });

  it('subscribe and unsubscribe answer as documented: 0, then 1390007 when repeated; 1390002 for an unknown code', async () => {
    expect((await s.call(token, 'POST', path('NOT-A-CODE', 'subscribe'))).body.code).toBe(1390002);
    const first = await s.call(token, 'POST', path(otherCode, 'subscribe'));
    expect(first).toEqual({ status: 200, body: { code: 0, msg: 'success', data: {} } });
    expect(await s.call(token, 'POST', path(otherCode, 'subscribe'))).toMatchObject({ status: 400, body: { code: 1390007 } });
    expect((await s.call(token, 'POST', path(otherCode, 'unsubscribe'))).body.code).toBe(0);
    expect(await s.call(token, 'POST', path(otherCode, 'unsubscribe'))).toMatchObject({ status: 400, body: { code: 1390007 } });
    // A service fault, as Lark's 1395001, through the generic fault injection.
    s.sim.injectFault({ path: path(otherCode, 'subscribe'), status: 400, code: 1395001, msg: 'There have been some errors. Please try again later' });
    expect((await s.call(token, 'POST', path(otherCode, 'subscribe'))).body.code).toBe(1395001);
    expect(s.sim.events.subscriptions.hasApproval(APP.appId, TENANT, otherCode)).toBe(false);
  });

  it('no events before the subscribe call; afterwards only the subscribed app gets them, as v1 approval_instance', async () => {
    const [inst] = approval.codesBetween(0, Date.now(), code);
    approval.advance(inst!, 'PENDING');
    await s.sim.events.idle();
    expect(s.receiver.requests).toHaveLength(0);

    expect((await s.call(token, 'POST', path(code, 'subscribe'))).body.code).toBe(0);
    const created = approval.createInstance(code, 1_718_000_000_000);
    await s.sim.events.idle();
    const [push] = events();
    expect(push!.signatureOk).toBe(true);
    expect(push!.body).toMatchObject({ uuid: push!.id, type: 'event_callback', token: `vtok-${APP.appId}` });
    // ts is when Lark pushed it; operate_time when the instance changed (here: long before).
    expect(Math.abs(Number(push!.body.ts) * 1000 - s.sim.now())).toBeLessThan(5_000);
    expect(push!.event).toMatchObject({
      app_id: APP.appId,
      tenant_key: TENANT,
      type: 'approval_instance',
      approval_code: code,
      instance_code: created,
      status: 'PENDING',
      instance_operate_time: '1718000000000',
      uuid: approval.instance(created).uuid,
    });
    expect(Number(push!.event.operate_time)).toBe(1_718_000_000_000);
    expect(approval.instance(created).status).toBe('PENDING');
    expect(events(OTHER.appId)).toHaveLength(0);
  });

  it('operate_time: a number for REVERTED, both forms (seeded) otherwise; a string only with operateTimeNumberShare 0', async () => {
    const codes = Array.from({ length: 12 }, () => approval.createInstance(code));
    await s.sim.events.idle();
    const forms = new Set(events().map((p) => typeof p.event.operate_time));
    expect(forms).toEqual(new Set(['string', 'number']));

    s.receiver.clear();
    s.sim.events.setOptions({ operateTimeNumberShare: 0 });
    approval.advance(codes[0]!, 'APPROVED');
    approval.advance(codes[1]!, 'REJECTED');
    await s.sim.events.idle();
    approval.advance(codes[0]!, 'REVERTED');
    await s.sim.events.idle();
    const byStatus = Object.fromEntries(events().map((p) => [p.event.status, typeof p.event.operate_time]));
    expect(byStatus).toEqual({ APPROVED: 'string', REJECTED: 'string', REVERTED: 'number' });
    expect(approval.instance(codes[0]!)).toMatchObject({ status: 'APPROVED', reverted: true });
    expect(approval.instance(codes[1]!).status).toBe('REJECTED');
  });

  it("holds an instance's later events until the earlier one is acknowledged; other instances go on", async () => {
    const x = approval.createInstance(code);
    const y = approval.createInstance(code);
    await s.sim.events.idle();
    s.receiver.clear();
    s.sim.events.resetCounters();
    // x's approval_instance APPROVED fails twice before it is acknowledged. A decision also
    // reports the task it closed (approval_task), first: one order per instance across the types.
    const isInstance = (e: Record<string, unknown>) => e.type === 'approval_instance';
    s.receiver.answer = (p, n) => (isInstance(p.event) && p.event.instance_code === x && p.event.status === 'APPROVED' && n < 2 ? 500 : 200);
    approval.advance(x, 'APPROVED');
    approval.advance(x, 'REVERTED');
    approval.advance(y, 'REJECTED');
    const label = (e: Record<string, unknown>) => `${e.instance_code === x ? 'x' : 'y'}:${String(e.type).slice(9)}:${e.status}`;
    // Each instance's first event (its task's) goes out; the rest wait behind it.
    expect(s.sim.events.heldEvents().map((e) => label(e.body.event as Record<string, unknown>))).toEqual(['x:instance:APPROVED', 'x:instance:REVERTED', 'y:instance:REJECTED']);
    await s.sim.events.idle();
    const seen = s.receiver.requests.map((r) => `${label(r.event)}:${r.status}`);
    expect(seen.filter((e) => e.startsWith('x'))).toEqual([
      'x:task:APPROVED:200',
      'x:instance:APPROVED:500',
      'x:instance:APPROVED:500',
      'x:instance:APPROVED:200',
      'x:instance:REVERTED:200',
    ]);
    expect(seen.indexOf('y:instance:REJECTED:200')).toBeLessThan(seen.indexOf('x:instance:APPROVED:200'));
    expect(s.sim.events.counters).toMatchObject({ emitted: 5, delivered: 5, held: 3, retried: 2, failed: 0 });
  });

  it('addInstances while subscribed: each instance reports PENDING, then its decision, in order', async () => {
    const now = Date.now();
    const added = approval.addInstances(code, 4, now - 3_600_000, now);
    await s.sim.events.idle();
    for (const c of added) {
      const mine = events().filter((p) => p.event.instance_code === c).map((p) => p.event.status);
      const status = approval.instance(c).status;
      expect(mine).toEqual(status === 'PENDING' ? ['PENDING'] : ['PENDING', status]);
      // Its tasks too: each opened (PENDING), and each closed one with its status, before the decision.
      const tasks = s.receiver.acked('approval_task').filter((p) => p.event.instance_code === c).map((p) => `${p.event.task_id}:${p.event.status}`);
      const expected = approval.instance(c).task_list.flatMap((t) => (t.status === 'PENDING' ? [`${t.id}:PENDING`] : [`${t.id}:PENDING`, `${t.id}:${t.status}`]));
      expect(tasks.sort()).toEqual(expected.sort());
    }
  });

  it('approval_task and approval_cc as documented: a node passed reports its task and the next one, no instance event; a cc and its reading', async () => {
    const tasks = () => s.receiver.acked('approval_task').map((p) => p.event);
    const ccs = () => s.receiver.acked('approval_cc').map((p) => p.event);
    const inst = approval.createInstance(code, 1_718_000_000_000);
    await s.sim.events.idle();
    const first = approval.instance(inst).task_list.find((t) => t.status === 'PENDING')!;
    expect(tasks()).toEqual([
      expect.objectContaining({ app_id: APP.appId, tenant_key: TENANT, type: 'approval_task', approval_code: code, instance_code: inst, task_id: first.id, status: 'PENDING', operate_time: '1718000000000', open_id: first.open_id, user_id: '', custom_key: first.node_id }),
    ]);
    expect(typeof tasks()[0]!.def_key).toBe('string');

    // Walk the flow to its end: every node's task reports APPROVED (the next one PENDING); only
    // the last decision is an instance event.
    while (approval.instance(inst).status === 'PENDING') approval.passTask(inst);
    await s.sim.events.idle();
    const idsWith = (status: string) => tasks().filter((e) => e.status === status).map((e) => e.task_id);
    expect(idsWith('APPROVED')).toEqual(idsWith('PENDING'));
    expect(idsWith('APPROVED').length).toBeGreaterThan(0);
    expect(events().filter((p) => p.event.instance_code === inst).map((p) => p.event.status)).toEqual(['PENDING', 'APPROVED']);
    const ids = s.receiver.acked('approval_task').concat(s.receiver.acked('approval_instance')).map((p) => p.event.type);
    expect(ids.at(-1)).toBe('approval_instance');

    s.receiver.clear();
    const cc = approval.addCc(inst, { open_id: `ou_${TENANT}-3`, user_id: 'uid3' }, 1_718_000_100_000);
    approval.readCc(inst, cc, 1_718_000_200_000);
    await s.sim.events.idle();
    expect(ccs()).toEqual([
      { app_id: APP.appId, tenant_key: TENANT, type: 'approval_cc', approval_code: code, instance_code: inst, id: cc.id, user_id: '', create_time: 1_718_000_100_000, operate: 'CREATE', from: '' },
      { app_id: APP.appId, tenant_key: TENANT, type: 'approval_cc', approval_code: code, instance_code: inst, id: cc.id, user_id: '', create_time: 1_718_000_200_000, operate: 'READ', from: '' },
    ]);
    expect(approval.instance(inst).timeline.at(-1)).toMatchObject({ type: 'CC', cc_user_list: [{ cc_id: cc.id, open_id: `ou_${TENANT}-3`, user_id: 'uid3' }] });
  });

  it('unsubscribe stops the events', async () => {
    expect((await s.call(token, 'POST', path(code, 'unsubscribe'))).body.code).toBe(0);
    approval.createInstance(code);
    await s.sim.events.idle();
    expect(s.receiver.requests).toHaveLength(0);
  });
});

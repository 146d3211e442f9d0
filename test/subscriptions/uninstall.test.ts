import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { ApprovalTenant } from '../../simulator/data/approval.js';
import { STORE_APP, openTenant, startStack, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

// Issue 14: an uninstall ends the install's change-event subscriptions in Lark, and the tenant's
// token is dead, so nothing can be undone with it. larksync forgets the tenant's subscription
// rows and its queued job at app_uninstalled (nothing retries them, no row claims a live
// subscription), and a reinstall makes them again from the connectors.

const TENANT = 'tenant-subs-uninstall';
const approvalPath = (code: string) => `/open-apis/approval/v4/approvals/${code}/subscribe`;

describe('subscriptions of an uninstalled tenant', () => {
  let stack: Stack;
  let approval: ApprovalTenant;
  let codes: string[];

  beforeAll(async () => {
    stack = await startStack({ encrypt: false, data: { enforceRateLimits: false }, start: { rateLimitScale: 50 } });
    await whenReady(stack);
    approval = stack.data.approval(TENANT, { definitions: 2, instancesPerDay: 1, days: 2 });
    codes = approval.codes();
    await openTenant(stack, TENANT);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const rows = () => stack.db.db.selectFrom('lark_subscriptions').selectAll().where('tenant_key', '=', TENANT).orderBy('object_token').execute();
  const jobs = async () =>
    (await sql<{ n: number }>`select count(*)::int as n from graphile_worker.jobs where key = ${'subscriptions:' + TENANT}`.execute(stack.db.db)).rows[0]!.n;

  it('app_uninstalled forgets the rows and the queued retry; a reinstall subscribes afresh', async () => {
    const [a, b] = codes as [string, string];
    // b fails for now: its row waits for a retry, with the tenant's job queued for then.
    stack.sim.injectFault({ path: approvalPath(b), status: 400, code: 1395001, msg: 'There have been some errors. Please try again later', count: 3 });
    const res = await stack.api('PUT', `/api/v1/tenants/${TENANT}/connectors/approval`, { enabled: true, config: { approvalCodes: [a, b] } });
    expect(res.status).toBe(200);
    await waitFor(async () => {
      const all = await rows();
      return all.length === 2 && all.find((r) => r.object_token === a)?.status === 'subscribed' && all.find((r) => r.object_token === b)?.status === 'failed';
    }, 15_000, 'a subscribed, b failed');
    await waitFor(async () => (await jobs()) === 1, 10_000, 'the retry job queued');
    stack.sim.clearFaults();

    const gone = await stack.sim.appUninstalled(STORE_APP.appId, TENANT);
    await waitFor(async () => {
      const row = await stack.db.db.selectFrom('lark_events').select('status').where('event_id', '=', gone.uuid).executeTakeFirst();
      return row?.status === 'processed';
    }, 10_000, 'app_uninstalled applied');
    expect(await rows()).toEqual([]);
    expect(await jobs()).toBe(0);
    // Lark dropped them too (the simulator does, unconfirmed upstream).
    expect(stack.sim.events.subscriptions.approvalApps(TENANT, a)).toEqual([]);
    // The minute sweep finds nothing to retry.
    stack.sim.resetCounts();
    await sql`update lark_subscriptions set next_attempt_at = now()`.execute(stack.db.db);
    await stack.larksync.services.subscriptions.refreshHealth();
    expect(await jobs()).toBe(0);
    expect(stack.sim.count(approvalPath(a)) + stack.sim.count(approvalPath(b))).toBe(0);

    // Installed again: the connector is still configured, so both are made again (not "existed").
    await stack.sim.appOpen(STORE_APP.appId, TENANT);
    await waitFor(async () => {
      const all = await rows();
      return all.length === 2 && all.every((r) => r.status === 'subscribed');
    }, 15_000, 'subscribed again');
    expect([stack.sim.count(approvalPath(a), 0), stack.sim.count(approvalPath(b), 0)]).toEqual([1, 1]);
    expect(stack.sim.events.subscriptions.hasApproval(STORE_APP.appId, TENANT, b)).toBe(true);
  });
});

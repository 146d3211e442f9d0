import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { encryptedWire, postRaw, settleStartupTicket, v1Body } from '../helpers/events-helpers.js';

const appId = STORE_APP.appId;
const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');

interface TenantJson {
  tenantKey: string;
  status: string;
  statusReason: string | null;
  installer: string | null;
  installerEmployee: string | null;
  applicants: string[];
  installedAt: string;
  uninstalledAt: string | null;
  token: { status: string; mintCount: number };
  lifecycle: Array<{ action: string; eventId: string | null }>;
}

describe('store app lifecycle', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({ encrypt: true });
    await settleStartupTicket(stack);
    await whenReady(stack);
  });
  afterAll(async () => {
    await stack?.sim.settle();
    await stack?.stop();
  });

  async function tenant(key: string): Promise<{ status: number; text: string; body: TenantJson }> {
    const res = await stack.api('GET', `/api/v1/tenants/${key}`);
    const text = await res.text();
    return { status: res.status, text, body: JSON.parse(text) as TenantJson };
  }

  async function processed(uuid: string) {
    return waitFor(async () => {
      const row = await stack.db.db.selectFrom('lark_events').select(['status', 'last_error']).where('event_id', '=', uuid).executeTakeFirst();
      return row && row.status !== 'pending' && row.status !== 'failed' ? row.status : undefined;
    }, 10_000, `event ${uuid} to be processed`);
  }

  const audit = (key: string) =>
    stack.db.db.selectFrom('tenant_audit').select(['action', 'event_id']).where('tenant_key', '=', key).orderBy('id').execute();

  const tenantTokenRows = (key: string) =>
    stack.db.db.selectFrom('access_tokens').selectAll().where('kind', '=', 'tenant').where('tenant_key', '=', key).execute();

  it('keeps the newest app_ticket by push time, sealed', async () => {
    const ticketRow = () => stack.db.db.selectFrom('app_tickets').selectAll().where('app_id', '=', appId).executeTakeFirstOrThrow();
    const pushTicket = async (ticket: string, ts: number) => {
      const body = v1Body({ app_id: appId, app_ticket: ticket, type: 'app_ticket' }, { ts });
      const res = await postRaw(stack.eventsUrl, encryptedWire(JSON.stringify(body)));
      expect(res.status).toBe(200);
      return processed(body.uuid);
    };

    const newer = stack.sim.issueTicket(appId);
    expect(await pushTicket(newer, Date.now())).toBe('processed');
    expect((await ticketRow()).ticket_hash).toBe(sha256(newer));

    // Lark's retries can deliver an older push after a newer one: it must not win.
    const older = stack.sim.issueTicket(appId);
    expect(await pushTicket(older, Date.now() - 120_000)).toBe('ignored');
    const row = await ticketRow();
    expect(row.ticket_hash).toBe(sha256(newer));
    expect(await stack.larksync.services.tickets.get(appId)).toMatchObject({ ticket: newer });

    // Sealed: neither the ticket nor its hex shows up in the table.
    const text = (await sql<{ t: string }>`select t::text as t from app_tickets t`.execute(stack.db.db)).rows.map((r) => r.t).join('');
    expect(text).not.toContain(newer);
    expect(row.ticket_sealed.includes(Buffer.from(newer))).toBe(false);

    const latest = await stack.sim.pushTicket(appId);
    expect(latest.status).toBe(200);
    expect(await processed(latest.uuid)).toBe('processed');
    expect((await ticketRow()).ticket_hash).toBe(sha256(stack.sim.currentTicket(appId)!));
  });

  it('app_open creates the tenant with its install facts and mints its token at once', async () => {
    const mintsBefore = stack.sim.count(AUTH_PATHS.tenantAccessToken);
    const before = Date.now();
    const push = await stack.sim.appOpen(appId, 't-life', {
      applicants: [{ open_id: 'ou_app_1' }, { open_id: 'ou_app_2' }],
      installer: { open_id: 'ou_admin_life' },
    });
    expect(push.status).toBe(200);
    expect(await processed(push.uuid)).toBe('processed');

    // Minted by the event job itself, not lazily by this GET.
    expect(stack.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(mintsBefore + 1);
    expect(await tenantTokenRows('t-life')).toHaveLength(1);
    const t = await tenant('t-life');
    expect(t.status).toBe(200);
    expect(t.body).toMatchObject({
      tenantKey: 't-life',
      status: 'active',
      installer: 'ou_admin_life',
      installerEmployee: null,
      applicants: ['ou_app_1', 'ou_app_2'],
      token: { status: 'valid', mintCount: 1 },
      lifecycle: [{ action: 'installed', eventId: push.uuid }],
    });
    expect(new Date(t.body.installedAt).getTime()).toBeGreaterThanOrEqual(before - 1_000);
    const tokens = stack.sim.validTenantTokens(appId, 't-life');
    expect(tokens).toHaveLength(1);
    for (const value of tokens) {
      expect(t.text).not.toContain(value);
      expect(stack.logs.join('')).not.toContain(value);
    }
    expect(stack.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(mintsBefore + 1);
  });

  it('records an ordinary member`s install as installer_employee', async () => {
    const push = await stack.sim.appOpen(appId, 't-member', { installer: undefined, installer_employee: { open_id: 'ou_member_1' } });
    expect(await processed(push.uuid)).toBe('processed');
    expect((await tenant('t-member')).body).toMatchObject({ installer: null, installerEmployee: 'ou_member_1', status: 'active' });
  });

  it('pauses and resumes on app_status_change, one audit row per change', async () => {
    const steps: Array<['stop_by_tenant' | 'start_by_tenant' | 'stop_by_platform', string, string]> = [
      ['stop_by_tenant', 'paused', 'paused'],
      ['start_by_tenant', 'active', 'resumed'],
      ['stop_by_platform', 'paused', 'paused'],
      ['start_by_tenant', 'active', 'resumed'],
    ];
    const expected = [{ action: 'installed', event_id: expect.any(String) }];
    for (const [larkStatus, status, action] of steps) {
      const push = await stack.sim.appStatusChange(appId, 't-life', larkStatus);
      expect(await processed(push.uuid)).toBe('processed');
      const t = await tenant('t-life');
      expect(t.body).toMatchObject({ status, statusReason: larkStatus });
      expected.push({ action, event_id: push.uuid });
      expect(await audit('t-life')).toEqual(expected);
    }
  });

  it('ignores an unknown app_status_change status without touching the tenant', async () => {
    const push = await stack.sim.pushV1(appId, { app_id: appId, tenant_key: 't-life', type: 'app_status_change', status: 'exploded' });
    expect(await processed(push.uuid)).toBe('ignored');
    expect((await tenant('t-life')).body.status).toBe('active');
  });

  it('app_uninstalled marks the tenant uninstalled, purges its tokens and keeps it readable', async () => {
    expect(await tenantTokenRows('t-life')).toHaveLength(1);
    const push = await stack.sim.appUninstalled(appId, 't-life');
    expect(await processed(push.uuid)).toBe('processed');
    expect(await tenantTokenRows('t-life')).toEqual([]);
    const t = await tenant('t-life');
    expect(t.status).toBe(200);
    expect(t.body).toMatchObject({ status: 'uninstalled', token: { status: 'missing' } });
    expect(t.body.uninstalledAt).not.toBeNull();
    expect(t.body.lifecycle[0]).toEqual({ action: 'uninstalled', eventId: push.uuid, appId, at: expect.any(String) });
    // Asking for a token now is refused rather than minting one for a tenant that left.
    await expect(stack.larksync.services.tokens.getTenantAccessToken('t-life')).rejects.toMatchObject({ code: 'tenant_not_active' });
  });

  it('does not revive an uninstalled tenant on a late status change or a retried app_open', async () => {
    const late = await stack.sim.appStatusChange(appId, 't-life', 'start_by_tenant');
    expect(await processed(late.uuid)).toBe('ignored');
    expect((await tenant('t-life')).body.status).toBe('uninstalled');
    const firstOpen = (await audit('t-life')).find((a) => a.action === 'installed')!.event_id!;
    expect((await stack.sim.redeliver(firstOpen)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect((await tenant('t-life')).body.status).toBe('uninstalled');
  });

  it('a reinstall after uninstall makes the tenant active again as "reinstalled" with a fresh token', async () => {
    const uninstalled = (await tenant('t-life')).body;
    const push = await stack.sim.appOpen(appId, 't-life');
    expect(await processed(push.uuid)).toBe('processed');
    const t = await tenant('t-life');
    expect(t.body).toMatchObject({
      status: 'active',
      statusReason: 'reinstalled',
      uninstalledAt: null,
      token: { status: 'valid' },
    });
    expect(t.body.lifecycle[0]).toMatchObject({ action: 'reinstalled', eventId: push.uuid });
    expect(new Date(t.body.installedAt).getTime()).toBeGreaterThan(new Date(uninstalled.installedAt).getTime());
    expect(await tenantTokenRows('t-life')).toHaveLength(1);
    const actions = (await audit('t-life')).map((a) => a.action);
    expect(actions).toEqual(['installed', 'paused', 'resumed', 'paused', 'resumed', 'uninstalled', 'ignored_status_change', 'reinstalled']);
  });

  it('a job that runs again (crash before its event was marked done) applies nothing twice', async () => {
    const rerun = async (uuid: string) => {
      const row = await stack.db.db.selectFrom('lark_events').select(['id', 'tenant_key']).where('event_id', '=', uuid).executeTakeFirstOrThrow();
      // The state a crash leaves: the handler's change committed, the event still pending, its job queued again.
      await stack.db.db.updateTable('lark_events').set({ status: 'pending', processed_at: null }).where('id', '=', row.id).execute();
      await sql`select graphile_worker.add_job('handle_lark_event', json_build_object('id', ${row.id}::text), queue_name => ${`tenant:${row.tenant_key}`})`.execute(stack.db.db);
      return processed(uuid);
    };
    const reinstall = (await audit('t-life')).find((a) => a.action === 'reinstalled')!.event_id!;
    const pause = await stack.sim.appStatusChange(appId, 't-life', 'stop_by_tenant');
    expect(await processed(pause.uuid)).toBe('processed');
    const auditBefore = await audit('t-life');
    const mintsBefore = stack.sim.count(AUTH_PATHS.tenantAccessToken);

    expect(await rerun(reinstall)).toBe('ignored');
    expect(await rerun(pause.uuid)).toBe('ignored');
    expect(await audit('t-life')).toEqual(auditBefore);
    // The re-run of an old app_open must not undo the later pause either.
    expect((await tenant('t-life')).body.status).toBe('paused');
    expect(stack.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(mintsBefore);

    const resume = await stack.sim.appStatusChange(appId, 't-life', 'start_by_tenant');
    expect(await processed(resume.uuid)).toBe('processed');
  });

  it('a status change for a tenant never seen opening creates it', async () => {
    const push = await stack.sim.appStatusChange(appId, 't-status-first', 'stop_by_tenant');
    expect(await processed(push.uuid)).toBe('processed');
    expect((await tenant('t-status-first')).body).toMatchObject({ status: 'paused' });
    const open = await stack.sim.appOpen(appId, 't-status-first');
    expect(await processed(open.uuid)).toBe('processed');
    expect((await tenant('t-status-first')).body).toMatchObject({ status: 'active', token: { status: 'valid' } });
  });

  it('orders lifecycle events by push time: an older event processed later changes nothing', async () => {
    const key = 't-order';
    stack.sim.installTenant(appId, key);
    const now = Date.now();
    const post = async (event: Record<string, unknown>, ts: number) => {
      const body = v1Body({ app_id: appId, tenant_key: key, ...event }, { ts });
      expect((await postRaw(stack.eventsUrl, encryptedWire(JSON.stringify(body)))).status).toBe(200);
      return processed(body.uuid);
    };
    // The tenant disabled the app (pushed at now) before an app_open pushed 10 s earlier, whose
    // first delivery failed, finally got through.
    expect(await post({ type: 'app_status_change', status: 'stop_by_tenant' }, now)).toBe('processed');
    expect(await post({ type: 'app_open', applicants: [], installer: { open_id: 'ou_x' } }, now - 10_000)).toBe('ignored');
    expect((await tenant(key)).body.status).toBe('paused');

    // A stale uninstall (pushed before the tenant's latest change) neither uninstalls nor purges.
    expect(await post({ type: 'app_status_change', status: 'start_by_tenant' }, now + 1_000)).toBe('processed');
    // The tenant was first seen through a status change (no app_open applied), so mint its token now.
    await stack.larksync.services.tokens.getTenantAccessToken(key);
    expect(await post({ type: 'app_uninstalled' }, now - 5_000)).toBe('ignored');
    const after = await tenant(key);
    expect(after.body.status).toBe('active');
    expect((await tenantTokenRows(key)).filter((r) => r.token_sealed !== null)).toHaveLength(1);
    expect((await audit(key)).map((a) => a.action)).toEqual(['paused', 'ignored_stale_event', 'resumed', 'ignored_stale_event']);
  });

  it('GET of an unknown tenant is a clean 404', async () => {
    const res = await stack.api('GET', '/api/v1/tenants/t-never');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'tenant_not_found', message: expect.any(String) } });
  });
});

describe('per-tenant ordering of a backlog', () => {
  let stack: Stack;
  beforeAll(async () => {
    // No worker: events pile up, then one worker with concurrency drains them all at once.
    stack = await startStack({ encrypt: true, start: { worker: false } });
    await settleStartupTicket(stack);
  });
  afterAll(async () => {
    await stack?.sim.settle();
    await stack?.stop();
  });

  it('applies each tenant`s events in arrival order even when many tenants drain concurrently', async () => {
    const tenants = Array.from({ length: 6 }, (_, i) => `t-order-${i}`);
    const script = (i: number): Array<'open' | 'stop_by_tenant' | 'start_by_tenant' | 'stop_by_platform' | 'uninstall'> =>
      i % 2 === 0
        ? ['open', 'stop_by_tenant', 'start_by_tenant', 'stop_by_platform', 'start_by_tenant', 'uninstall']
        : ['open', 'start_by_tenant', 'stop_by_tenant', 'start_by_tenant', 'stop_by_platform'];
    const ids = new Map<string, string[]>();
    // Each tenant's events sit next to each other in the backlog, so a worker running several jobs
    // at once would pick up one tenant's consecutive events together unless its queue holds them.
    await Promise.all(
      tenants.map(async (key, i) => {
        for (const action of script(i)) {
          const res =
            action === 'open'
              ? await stack.sim.appOpen(appId, key)
              : action === 'uninstall'
                ? await stack.sim.appUninstalled(appId, key)
                : await stack.sim.appStatusChange(appId, key, action);
          expect(res.status).toBe(200);
          ids.set(key, [...(ids.get(key) ?? []), res.uuid]);
        }
      }),
    );
    // A slow first mint keeps each app_open job busy after its audit row is written, so a
    // tenant's next event would visibly overlap it if the queue did not hold it back.
    stack.sim.injectFault({ path: AUTH_PATHS.tenantAccessToken, delayMs: 300, count: tenants.length });
    await stack.startReplica({ worker: true });
    const all = [...ids.values()].flat();
    await waitFor(async () => {
      const r = await stack.db.db.selectFrom('lark_events').select('status').where('event_id', 'in', all).execute();
      return r.length === all.length && r.every((x) => x.status === 'processed');
    }, 20_000, 'the backlog to be processed');

    for (const [i, key] of tenants.entries()) {
      const rows = await stack.db.db.selectFrom('tenant_audit').select(['event_id', 'action']).where('tenant_key', '=', key).orderBy('id').execute();
      // Applied in exactly the order Lark delivered them.
      expect(rows.map((r) => r.event_id)).toEqual(ids.get(key));
      // And one at a time: each event's change began only after the previous event was finished.
      const timing = await sql<{ event_id: string; processed_at: Date; applied_at: Date }>`
        select e.event_id, e.processed_at, a.created_at as applied_at
        from lark_events e join tenant_audit a on a.event_id = e.event_id
        where e.tenant_key = ${key} order by a.id`.execute(stack.db.db);
      for (let k = 1; k < timing.rows.length; k += 1) {
        expect(timing.rows[k]!.applied_at.getTime()).toBeGreaterThanOrEqual(timing.rows[k - 1]!.processed_at.getTime());
      }
      const t = await stack.db.db.selectFrom('tenants').select('status').where('tenant_key', '=', key).executeTakeFirstOrThrow();
      expect(t.status).toBe(i % 2 === 0 ? 'uninstalled' : 'paused');
    }
  });
});

describe('tenants installed in a burst while the app_ticket is still on its way', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Fewer worker slots than waiting installs, and Lark taking a second to push the ticket.
    stack = await startStack({ encrypt: true, sim: { resendPushDelayMs: 1_000 }, env: { WORKER_CONCURRENCY: '2' } });
  });
  afterAll(async () => {
    await stack?.sim.settle();
    await stack?.stop();
  });

  // Each app_open job waits for the ticket inside a worker slot; with every slot waiting, the
  // ticket's own job could not run. The waiters apply the stored ticket push themselves.
  it('all get their token at once: the ticket does not wait behind jobs that wait for it', async () => {
    const keys = ['t-burst-1', 't-burst-2', 't-burst-3', 't-burst-4'];
    const started = Date.now();
    for (const key of keys) expect((await stack.sim.appOpen(appId, key)).status).toBe(200);
    await waitFor(async () => {
      const rows = await stack.db.db
        .selectFrom('access_tokens')
        .select('tenant_key')
        .where('kind', '=', 'tenant')
        .where('token_sealed', 'is not', null)
        .where('tenant_key', 'in', keys)
        .execute();
      return rows.length === keys.length;
    }, 15_000, 'a token for every tenant');
    // Minted by the app_open jobs themselves, not rescued by the minute's refresh run.
    expect(stack.logs.join('')).not.toContain('first tenant token mint failed');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(stack.sim.count(AUTH_PATHS.ticketResend)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(keys.length);
  });
});

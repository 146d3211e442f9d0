import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { endGrant } from '../../src/grants/grants.repository.js';
import { STORE_APP, openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';
import { runToEnd } from '../helpers/runs.js';
import { WebhookReceiver, type Received } from '../helpers/webhook-receiver.js';
import { waitFor } from '../helpers/wait.js';
import { WEBHOOK_EVENT_TYPES } from '../../src/webhooks/event-types.js';

/**
 * Every event type from its real producer: Lark's lifecycle pushes, a sync run, a grant that can
 * no longer be refreshed, a write that ends. Each is written in the producer's own transaction.
 */
const TENANT = 'tenant-hooks-1';

let stack: Stack;
let receiver: WebhookReceiver;

const ofType = (type: string) => receiver.received.filter((r) => r.payload.type === type && r.payload.data.tenantKey === TENANT);
async function next(type: string, count = 1): Promise<Received[]> {
  return waitFor(() => (ofType(type).length >= count ? ofType(type) : undefined), 15_000, `${count} ${type}`);
}

beforeAll(async () => {
  receiver = new WebhookReceiver();
  await receiver.start();
  stack = await startStack({ encrypt: false, data: { enforceRateLimits: false }, start: { rateLimitScale: 50 } });
  await whenReady(stack);
  const res = await stack.api('POST', '/api/v1/webhooks', { url: receiver.url, eventTypes: [...WEBHOOK_EVENT_TYPES] });
  receiver.accept(((await res.json()) as { secret: string }).secret);
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.stop();
});

describe('producers', () => {
  it('tenant.installed, tenant.status_changed, tenant.uninstalled from Lark pushes', async () => {
    await openTenant(stack, TENANT);
    const [installed] = await next('tenant.installed');
    expect(installed!.payload.data).toMatchObject({ tenantKey: TENANT, appId: STORE_APP.appId, action: 'installed' });
    await stack.sim.appStatusChange(STORE_APP.appId, TENANT, 'stop_by_tenant');
    const [paused] = await next('tenant.status_changed');
    expect(paused!.payload.data).toMatchObject({ status: 'paused', previousStatus: 'active', larkStatus: 'stop_by_tenant' });
    await stack.sim.appStatusChange(STORE_APP.appId, TENANT, 'start_by_tenant');
    const changes = await next('tenant.status_changed', 2);
    expect(changes[1]!.payload.data).toMatchObject({ status: 'active', previousStatus: 'paused' });
  });

  it('records.changed per stream with feed cursors that read exactly the changes, then sync.finished', async () => {
    await stack.larksync.services.connectors.put(TENANT, 'contact', { enabled: true, config: {} }, 'store');
    const run = await runToEnd(stack, TENANT, 'contact', 'full');
    expect(run.status).toBe('succeeded');
    const [finished] = await next('sync.finished');
    expect(finished!.payload.data).toMatchObject({ tenantKey: TENANT, run: { id: run.id, module: 'contact', status: 'succeeded', counts: run.counts } });
    // sync.finished comes after every records.changed of its run.
    const changed = ofType('records.changed');
    expect(receiver.received.indexOf(finished!)).toBeGreaterThan(receiver.received.indexOf(changed.at(-1)!));
    for (const stream of ['contact_users', 'contact_departments']) {
      const announced = changed.filter((r) => r.payload.data.stream === stream);
      const total = announced.reduce((n, r) => n + (r.payload.data.count as number), 0);
      const rows = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(stream)} where tenant_key = ${TENANT}`.execute(stack.db.db);
      expect(total, stream).toBe(rows.rows[0]!.n);
      // A consumer holding the cursor before the first announcement reads every announced row.
      const first = announced[0]!.payload.data.cursor as { after: string };
      const page = (await (await stack.api('GET', `/api/v1/tenants/${TENANT}/streams/${stream}/records?limit=1000&cursor=${first.after}`)).json()) as { records: unknown[] };
      expect(page.records.length).toBe(total);
    }
    // An unchanged re-read announces no records, only the run.
    const before = ofType('records.changed').length;
    await runToEnd(stack, TENANT, 'contact', 'full');
    await next('sync.finished', 2);
    expect(ofType('records.changed').length).toBe(before);
  });

  it('grant.needs_reauth once, when a grant can no longer be refreshed', async () => {
    await sql`insert into user_grants (app_id, tenant_key, open_id, name, status, scopes) values (${STORE_APP.appId}, ${TENANT}, 'ou_hooks_1', 'Mei', 'active', '{}')`.execute(stack.db.db);
    const key = { appId: STORE_APP.appId, tenantKey: TENANT, openId: 'ou_hooks_1' };
    await endGrant(stack.db.db, key, 'needs_reauth', 'the refresh token expired (20037)', { errorClass: 'refresh_rejected' });
    await endGrant(stack.db.db, key, 'needs_reauth', 'again', { errorClass: 'refresh_rejected' });
    const [grant] = await next('grant.needs_reauth');
    expect(grant!.payload.data).toMatchObject({ tenantKey: TENANT, openId: 'ou_hooks_1', name: 'Mei', reason: 'the refresh token expired (20037)' });
    await new Promise((r) => setTimeout(r, 300));
    expect(ofType('grant.needs_reauth')).toHaveLength(1);
  });

  it('write.finished when a write reaches its final status', async () => {
    const write = await sql<{ id: string }>`
      insert into base_writes (tenant_key, app_id, app_token, table_id, op, status, request_hash, record_count)
      values (${TENANT}, ${STORE_APP.appId}, 'bascnHooks', 'tblHooks', 'create', 'queued', 'h', 1) returning id`.execute(stack.db.db);
    const id = write.rows[0]!.id;
    await sql`insert into base_write_records (write_id, idx, input, state) values (${id}::bigint, 0, '{}'::jsonb, 'pending')`.execute(stack.db.db);
    await stack.larksync.services.writes.cancel(id);
    const [finished] = await next('write.finished');
    expect(finished!.payload.data).toMatchObject({
      tenantKey: TENANT,
      write: { id, status: 'cancelled', op: 'create', table: { appToken: 'bascnHooks', tableId: 'tblHooks' }, counts: { total: 1, ok: 0, failed: 0, cancelled: 1 } },
    });
  });

  it('tenant.uninstalled, and every delivery of the tenant arrived in the order of its changes', async () => {
    await stack.sim.appUninstalled(STORE_APP.appId, TENANT);
    await next('tenant.uninstalled');
    const seen = receiver.of(TENANT).map((r) => r.id);
    const delivered = () => stack.db.db.selectFrom('webhook_deliveries').select(['message_id']).where('tenant_key', '=', TENANT).where('status', '=', 'delivered').orderBy('id').execute();
    const events = await waitFor(async () => ((await delivered()).length === seen.length ? delivered() : undefined), 5_000, 'every delivery recorded');
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(events.map((e) => e.message_id));
    expect(receiver.rejected).toEqual([]);
  });
});

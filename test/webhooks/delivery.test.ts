import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { STORE_APP, startStack, type Stack } from '../helpers/stack.js';
import { createWebhook as createHook, WebhookReceiver } from '../helpers/webhook-receiver.js';
import { waitFor } from '../helpers/wait.js';
import { emitWebhookEvent, wakeStalledLanes } from '../../src/webhooks/emit.js';

/**
 * Deliveries end to end: a real larksync (HTTP + worker) and a receiver verifying every message
 * with the standardwebhooks package. The retry schedule runs 200 times faster than production
 * (5 s doubling to 1 h becomes 25 ms doubling to 18 s), so ten minutes down take three seconds.
 */
const SCALE = 200;
const FAST = {
  firstRetryDelayMs: 5_000 / SCALE,
  maxRetryDelayMs: 3_600_000 / SCALE,
  retryWindowMs: 86_400_000 / SCALE,
  disableAfterMs: 3 * 86_400_000 / SCALE,
};

let stack: Stack;
let receiver: WebhookReceiver;

const createWebhook = (body: Record<string, unknown>) => createHook(stack, body);

/** A producer's transaction: the event commits with it (or not at all). */
async function emit(tenantKey: string, seq: number, type: 'tenant.status_changed' | 'sync.finished' = 'tenant.status_changed') {
  await stack.db.db.transaction().execute((trx) => emitWebhookEvent(trx, { type, tenantKey, data: { seq } }));
}

beforeAll(async () => {
  receiver = new WebhookReceiver();
  await receiver.start();
  stack = await startStack({ start: { webhookOptions: FAST } });
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.stop();
});

beforeEach(async () => {
  await stack.db.db.deleteFrom('webhooks').execute();
  receiver.received.length = 0;
  receiver.rejected.length = 0;
  receiver.failWhen = undefined;
  receiver.delayMs = 0;
  receiver.up();
});

describe('webhook deliveries', () => {
  it('signs every delivery as Standard Webhooks says, verified by the standardwebhooks package', async () => {
    const hook = await createWebhook({ url: receiver.url, eventTypes: ['tenant.status_changed'] });
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    receiver.accept(hook.secret);
    await emit('t-sign', 1);
    await waitFor(() => receiver.received.length === 1, 5_000, 'the delivery');
    const [got] = receiver.received;
    expect(receiver.rejected).toEqual([]);
    expect(got!.id).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(Math.abs(Number(got!.timestamp) - Date.now() / 1000)).toBeLessThan(10);
    expect(got!.signature).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(got!.payload).toMatchObject({ type: 'tenant.status_changed', data: { tenantKey: 't-sign', seq: 1 } });
    expect(new Date(got!.payload.timestamp).toISOString()).toBe(got!.payload.timestamp);
    // Another secret does not verify it.
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(got!.body, { 'webhook-id': got!.id, 'webhook-timestamp': got!.timestamp, 'webhook-signature': got!.signature })).toThrow();
  });

  it('writes nothing when the producer rolls back, and only to webhooks that want the event and tenant', async () => {
    const all = await createWebhook({ url: receiver.url, eventTypes: ['tenant.status_changed'] });
    const onlyA = await createWebhook({ url: receiver.url, eventTypes: ['tenant.status_changed'], tenantKeys: ['t-a'] });
    await createWebhook({ url: receiver.url, eventTypes: ['write.finished'] });
    receiver.accept(all.secret, onlyA.secret);
    await stack.db.db
      .transaction()
      .execute(async (trx) => {
        await emitWebhookEvent(trx, { type: 'tenant.status_changed', tenantKey: 't-a', data: { seq: 0 } });
        throw new Error('rolled back');
      })
      .catch(() => undefined);
    await emit('t-a', 1);
    await emit('t-b', 2);
    await waitFor(() => receiver.received.length === 3, 5_000, 'three deliveries');
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received.map((r) => r.payload.data.seq).sort()).toEqual([1, 1, 2]);
    const rows = await stack.db.db.selectFrom('webhook_deliveries').select(['webhook_id', 'tenant_key']).orderBy('id').execute();
    expect(rows).toEqual([
      { webhook_id: all.id, tenant_key: 't-a' },
      { webhook_id: onlyA.id, tenant_key: 't-a' },
      { webhook_id: all.id, tenant_key: 't-b' },
    ]);
  });

  it('receiver down for 10 minutes, then up: every delivery arrives, in order per tenant, none under two ids', async () => {
    const hook = await createWebhook({ url: receiver.url, eventTypes: ['tenant.status_changed', 'sync.finished'] });
    receiver.accept(hook.secret);
    const tenants = ['t-down-1', 't-down-2', 't-down-3'];
    receiver.down('reset');
    const started = performance.now();
    let seq = 0;
    // Events keep coming while the receiver is down (10 minutes at 1/200: 3 s).
    while (performance.now() - started < 600_000 / SCALE) {
      for (const t of tenants) await emit(t, (seq += 1), seq % 2 === 0 ? 'sync.finished' : 'tenant.status_changed');
      await new Promise((r) => setTimeout(r, 100));
    }
    const failedAttempts = await stack.db.db.selectFrom('webhook_attempts').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow();
    expect(failedAttempts.n).toBeGreaterThan(3);
    expect(receiver.received).toEqual([]);
    receiver.up();
    const upAt = performance.now();
    await waitFor(() => new Set(receiver.received.map((r) => r.payload.data.seq)).size === seq, 30_000, `all ${seq} events`);
    const catchUpMs = performance.now() - upAt;

    const idsOf = new Map<number, Set<string>>();
    for (const r of receiver.received) (idsOf.get(r.payload.data.seq as number) ?? idsOf.set(r.payload.data.seq as number, new Set()).get(r.payload.data.seq as number)!).add(r.id);
    expect([...idsOf.values()].every((ids) => ids.size === 1)).toBe(true);
    for (const t of tenants) {
      const seqs = receiver.of(t).map((r) => r.payload.data.seq as number);
      expect(seqs.length).toBeGreaterThan(5);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
    expect(receiver.rejected).toEqual([]);
    // The last answer may be on its way back: its delivery is marked once the 2xx is read.
    await waitFor(
      async () => (await stack.db.db.selectFrom('webhook_deliveries').select('id').where('status', '!=', 'delivered').execute()).length === 0,
      5_000,
      'every delivery marked delivered',
    );
    console.log(`webhooks: ${seq} events over 3 tenants, receiver down 3 s (10 min scaled); all delivered ${Math.round(catchUpMs)} ms after it came up`);
  });

  it('retries a failing message with backoff and holds its lane behind it, while other tenants go on', async () => {
    const hook = await createWebhook({ url: receiver.url, eventTypes: ['tenant.status_changed'] });
    receiver.accept(hook.secret);
    const failures = new Map<string, number>();
    // The first message of tenant slow fails four times.
    receiver.failWhen = (id, p) => {
      if (p.data.tenantKey !== 't-slow' || p.data.seq !== 1) return undefined;
      const n = (failures.get(id) ?? 0) + 1;
      failures.set(id, n);
      return n <= 4 ? 500 : undefined;
    };
    for (let i = 1; i <= 3; i += 1) {
      await emit('t-slow', i);
      await emit('t-fast', i);
    }
    await waitFor(() => receiver.of('t-fast').length === 3, 5_000, 'the other tenant');
    expect(receiver.of('t-slow').length).toBe(0);
    await waitFor(() => receiver.of('t-slow').length === 3, 10_000, 'the failing lane');
    expect(receiver.of('t-slow').map((r) => r.payload.data.seq)).toEqual([1, 2, 3]);
    expect([...failures.values()]).toEqual([5]);

    const res = await stack.api('GET', `/api/v1/webhooks/${hook.id}/deliveries?tenantKey=t-slow`);
    const { deliveries } = (await res.json()) as { deliveries: Array<{ status: string; attempts: Array<{ statusCode: number; latencyMs: number; at: string }> }> };
    const first = deliveries.at(-1)!;
    expect(first.status).toBe('delivered');
    expect(first.attempts.map((a) => a.statusCode)).toEqual([500, 500, 500, 500, 204]);
    expect(first.attempts.every((a) => Number.isInteger(a.latencyMs) && a.latencyMs >= 0)).toBe(true);
    // Backoff: 25 ms doubling (this test's scale), ±20 % jitter, plus the job's pickup.
    const gaps = first.attempts.slice(1).map((a, i) => Date.parse(a.at) - Date.parse(first.attempts[i]!.at));
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(FAST.firstRetryDelayMs * 2 ** i * 0.8 - 2));
  });

  it('gives a lane whose job was lost a job again (the minute sweep)', async () => {
    const hook = await createWebhook({ url: receiver.url, eventTypes: ['tenant.status_changed'] });
    receiver.accept(hook.secret);
    await stack.db.db.transaction().execute(async (trx) => {
      await emitWebhookEvent(trx, { type: 'tenant.status_changed', tenantKey: 't-lost', data: { seq: 1 } });
      // The job the emit queued is lost (deleted by hand, say).
      await sql`delete from graphile_worker._private_jobs j using graphile_worker._private_job_queues q
                 where q.id = j.job_queue_id and q.queue_name = ${`webhook:${hook.id}:t-lost`}`.execute(trx);
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received).toEqual([]);
    expect(await wakeStalledLanes(stack.db.db)).toBe(0); // due for less than a minute
    await sql`update webhook_deliveries set created_at = now() - interval '2 minutes' where tenant_key = 't-lost'`.execute(stack.db.db);
    expect(await wakeStalledLanes(stack.db.db)).toBe(1);
    await waitFor(() => receiver.received.length === 1, 5_000, 'the delivery');
  });

  it('sends the same webhook-id and body again on resend', async () => {
    const hook = await createWebhook({ url: receiver.url, eventTypes: ['tenant.status_changed'] });
    receiver.accept(hook.secret);
    await emit('t-resend', 1);
    await waitFor(() => receiver.received.length === 1, 5_000, 'the delivery');
    const listed = (await (await stack.api('GET', `/api/v1/webhooks/${hook.id}/deliveries`)).json()) as { deliveries: Array<{ id: string; messageId: string }> };
    const delivery = listed.deliveries[0]!;
    expect(delivery.messageId).toBe(receiver.received[0]!.id);
    const res = await stack.api('POST', `/api/v1/webhooks/${hook.id}/deliveries/${delivery.id}/resend`);
    expect(res.status).toBe(202);
    await waitFor(() => receiver.received.length === 2, 5_000, 'the resend');
    expect(receiver.received[1]!.id).toBe(receiver.received[0]!.id);
    expect(receiver.received[1]!.body).toBe(receiver.received[0]!.body);
    expect((await stack.api('POST', `/api/v1/webhooks/${hook.id}/deliveries/999999/resend`)).status).toBe(404);
  });

  it('signs with both secrets during a rotation overlap, then with the new one only', async () => {
    const hook = await createWebhook({ url: receiver.url, eventTypes: ['tenant.status_changed'] });
    const old = hook.secret;
    const rotated = (await (await stack.api('POST', `/api/v1/webhooks/${hook.id}/rotate-secret`, { overlapSeconds: 3600 })).json()) as { secret: string; previousSecretExpiresAt: string };
    expect(rotated.secret).not.toBe(old);
    expect(Date.parse(rotated.previousSecretExpiresAt)).toBeGreaterThan(Date.now() + 3_500_000);
    // A receiver still on the old secret, and one already on the new.
    receiver.accept(old);
    await emit('t-rot', 1);
    await waitFor(() => receiver.received.length === 1, 5_000, 'a delivery the old secret verifies');
    const first = receiver.received[0]!;
    expect(first.signature.split(' ')).toHaveLength(2);
    const headers = { 'webhook-id': first.id, 'webhook-timestamp': first.timestamp, 'webhook-signature': first.signature };
    expect(() => new Webhook(rotated.secret).verify(first.body, headers)).not.toThrow();

    const ended = (await (await stack.api('POST', `/api/v1/webhooks/${hook.id}/rotate-secret`, { overlapSeconds: 0 })).json()) as { secret: string; previousSecretExpiresAt: string | null };
    expect(ended.previousSecretExpiresAt).toBeNull();
    receiver.accept(ended.secret);
    await emit('t-rot', 2);
    await waitFor(() => receiver.received.length === 2, 5_000, 'a delivery the newest secret verifies');
    const second = receiver.received[1]!;
    expect(second.signature.split(' ')).toHaveLength(1);
    const h2 = { 'webhook-id': second.id, 'webhook-timestamp': second.timestamp, 'webhook-signature': second.signature };
    expect(() => new Webhook(old).verify(second.body, h2)).toThrow();
    expect(() => new Webhook(rotated.secret).verify(second.body, h2)).toThrow();
  });

  it('merges pending records.changed of one stream into one delivery while the receiver is down, never across another event', async () => {
    const hook = await createWebhook({ url: receiver.url, eventTypes: ['records.changed', 'sync.finished'] });
    receiver.accept(hook.secret);
    await sql`insert into tenants (tenant_key, app_id, status) values ('t-merge', ${STORE_APP.appId}, 'active') on conflict do nothing`.execute(stack.db.db);
    receiver.down(503);
    let rows = 0;
    const pages = async (n: number) => {
      for (let i = 0; i < n; i += 1) {
        await stack.db.db.transaction().execute(async (trx) => {
          for (let r = 0; r < 2; r += 1) {
            const key = `u-${(rows += 1)}`;
            await sql`insert into contact_users (tenant_key, record_key, open_id, raw, content_hash) values ('t-merge', ${key}, ${key}, '{}'::jsonb, 'h')`.execute(trx);
          }
          await emitWebhookEvent(trx, { type: 'records.changed', tenantKey: 't-merge', data: { streams: ['contact_users', 'contact_departments'] } });
        });
      }
    };
    await pages(30);
    await emit('t-merge', 99, 'sync.finished');
    await pages(20);
    await waitFor(async () => (await stack.db.db.selectFrom('webhook_attempts').select('id').execute()).length >= 2, 5_000, 'failed attempts');
    receiver.up();
    await waitFor(() => receiver.received.some((r) => r.payload.type === 'sync.finished') && receiver.received.filter((r) => r.payload.type === 'records.changed').reduce((n, r) => n + (r.payload.data.count as number), 0) === 100, 15_000, 'every change announced');
    const types = receiver.received.map((r) => r.payload.type);
    // What was attempted while down (the first pages, frozen at their first attempt), the rest of
    // the 30 in one, then the sync, then the 20 after it in one: never merged across the sync.
    const sync = types.indexOf('sync.finished');
    expect(sync).toBeGreaterThanOrEqual(1);
    expect(sync).toBeLessThanOrEqual(2);
    expect(types.slice(sync + 1)).toEqual(['records.changed']);
    const events = receiver.received.map((r) => r.payload.data.events as number);
    expect(events.slice(0, sync).reduce((a, b) => a + b, 0)).toBe(30);
    expect(events[sync + 1]).toBe(20);
    const changed = receiver.received.filter((r) => r.payload.type === 'records.changed');
    expect(changed.every((r) => r.payload.data.stream === 'contact_users')).toBe(true);
    // The cursors read exactly the announced rows through the records API.
    for (const r of changed) {
      const cursor = r.payload.data.cursor as { after: string; upTo: string };
      const page = (await (await stack.api('GET', `/api/v1/tenants/t-merge/streams/contact_users/records?limit=1000&cursor=${cursor.after}`)).json()) as { records: unknown[] };
      const upTo = (await (await stack.api('GET', `/api/v1/tenants/t-merge/streams/contact_users/records?limit=1000&cursor=${cursor.upTo}`)).json()) as { records: unknown[] };
      expect(page.records.length - upTo.records.length).toBe(r.payload.data.count);
    }
  });

  it('announces only the deliveries it really took in: one that refuses to be taken stays pending and is announced on its own', async () => {
    const hook = await createWebhook({ url: receiver.url, eventTypes: ['records.changed'] });
    receiver.accept(hook.secret);
    const tenant = 't-merge-race';
    await sql`insert into tenants (tenant_key, app_id, status) values (${tenant}, ${STORE_APP.appId}, 'active') on conflict do nothing`.execute(stack.db.db);
    // Stands for a row changed by something else as the head takes it in: every such row refuses
    // to be taken while the trigger is there. The head's body is made of the rows the statement
    // really took (its RETURNING), never of those it only read.
    await sql`create function refuse_coalesce() returns trigger language plpgsql as $$
                begin if new.status = 'coalesced' and old.tenant_key = 't-merge-race' then return null; end if; return new; end $$`.execute(stack.db.db);
    await sql`create trigger refuse_coalesce before update on webhook_deliveries for each row execute function refuse_coalesce()`.execute(stack.db.db);
    try {
      receiver.down(503);
      let rows = 0;
      for (let i = 0; i < 6; i += 1) {
        await stack.db.db.transaction().execute(async (trx) => {
          const key = `race-${(rows += 1)}`;
          await sql`insert into contact_users (tenant_key, record_key, open_id, raw, content_hash) values (${tenant}, ${key}, ${key}, '{}'::jsonb, 'h')`.execute(trx);
          await emitWebhookEvent(trx, { type: 'records.changed', tenantKey: tenant, data: { streams: ['contact_users'] } });
        });
      }
      receiver.up();
      const announced = () => receiver.received.filter((r) => r.payload.type === 'records.changed').reduce((n, r) => n + (r.payload.data.count as number), 0);
      await waitFor(() => announced() >= 6, 30_000, 'every change announced');
      const coalesced = await sql<{ n: number }>`select count(*)::int as n from webhook_deliveries where tenant_key = ${tenant} and status = 'coalesced'`.execute(stack.db.db);
      expect(coalesced.rows[0]!.n).toBe(0);
    } finally {
      await sql`drop trigger refuse_coalesce on webhook_deliveries`.execute(stack.db.db);
      await sql`drop function refuse_coalesce()`.execute(stack.db.db);
    }
    // Each change announced exactly once, each delivery on its own.
    const announced = () => receiver.received.filter((r) => r.payload.type === 'records.changed').reduce((n, r) => n + (r.payload.data.count as number), 0);
    await new Promise((r) => setTimeout(r, 300));
    expect(announced()).toBe(6);
    expect(receiver.received.reduce((n, r) => n + (r.payload.data.events as number), 0)).toBe(6);
  });
});

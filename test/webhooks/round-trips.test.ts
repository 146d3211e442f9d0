import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { emitWebhookEvent } from '../../src/webhooks/emit.js';
import { WebhookDispatcher, defaultWebhookOptions } from '../../src/webhooks/lane-drain.js';
import { WebhookSender } from '../../src/webhooks/sender.js';
import { countingKysely } from '../helpers/db.js';
import { STORE_APP, startStack, type Stack } from '../helpers/stack.js';
import { createWebhook, WebhookReceiver } from '../helpers/webhook-receiver.js';

/**
 * What webhooks cost in round trips. At 200 change events a second every event's transaction
 * writes an outbox row and every records.changed delivery is a lane drain of its own, so each
 * statement counts. The worker is off: the tests drain lanes themselves, through a dispatcher
 * whose statements they count.
 */
describe('webhook round trips', () => {
  let stack: Stack;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = new WebhookReceiver();
    await receiver.start();
    stack = await startStack({ start: { worker: false } });
  });
  afterAll(async () => {
    await stack?.stop();
    await receiver?.stop();
  });

  it('sends three records.changed of a stream and a sync.finished in two deliveries, in four statements', async () => {
    const hook = await createWebhook(stack, { url: receiver.url, eventTypes: ['records.changed', 'sync.finished'] });
    receiver.accept(hook.secret);
    const tenant = 't-lane';
    await sql`insert into tenants (tenant_key, app_id, status) values (${tenant}, ${STORE_APP.appId}, 'active')`.execute(stack.db.db);
    for (let i = 1; i <= 3; i += 1) {
      await stack.db.db.transaction().execute(async (trx) => {
        await sql`insert into contact_users (tenant_key, record_key, open_id, raw, content_hash) values (${tenant}, ${`u-${i}`}, ${`u-${i}`}, '{}'::jsonb, 'h')`.execute(trx);
        await emitWebhookEvent(trx, { type: 'records.changed', tenantKey: tenant, data: { streams: ['contact_users'] } });
      });
    }
    await stack.db.db.transaction().execute((trx) => emitWebhookEvent(trx, { type: 'sync.finished', tenantKey: tenant, data: { runId: '1' } }));

    const counted = countingKysely(stack.db, /./);
    const services = stack.larksync.services;
    const dispatcher = new WebhookDispatcher(
      { db: counted.db, sealer: services.sealer, log: services.log, metrics: services.metrics, sender: new WebhookSender({ allowPrivate: true, timeoutMs: 10_000, maxResponseBytes: 4096 }) },
      defaultWebhookOptions,
    );
    await dispatcher.drainLane(hook.id, tenant);
    dispatcher.close();

    expect(receiver.received.map((r) => [r.payload.type, r.payload.data.events ?? null])).toEqual([
      ['records.changed', 3],
      ['sync.finished', null],
    ]);
    expect(receiver.received[0]!.payload.data.count).toBe(3);
    // The lane set asleep; the first head, taking the others in; delivered with the next head
    // read; delivered with the (empty) next head read. Eight before: the take-in list was read
    // apart, each delivery read the next head apart, and the body was fixed apart (five since).
    expect(counted.seen.map((q) => q.replace(/\s+/g, ' ').slice(0, 40))).toHaveLength(4);
  });

  it('a head read again after a process died before its first attempt announces what it took in then, not what came since', async () => {
    await sql`update webhooks set status = 'disabled'`.execute(stack.db.db);
    const hook = await createWebhook(stack, { url: receiver.url, eventTypes: ['records.changed'], tenantKeys: ['t-fixed'] });
    receiver.accept(hook.secret);
    await sql`insert into tenants (tenant_key, app_id, status) values ('t-fixed', ${STORE_APP.appId}, 'active')`.execute(stack.db.db);
    const change = (key: string) =>
      stack.db.db.transaction().execute(async (trx) => {
        await sql`insert into contact_users (tenant_key, record_key, open_id, raw, content_hash) values ('t-fixed', ${key}, ${key}, '{}'::jsonb, 'h')`.execute(trx);
        await emitWebhookEvent(trx, { type: 'records.changed', tenantKey: 't-fixed', data: { streams: ['contact_users'] } });
      });
    await change('a');
    await change('b');
    const services = stack.larksync.services;
    const dispatcher = new WebhookDispatcher(
      { db: stack.db.db, sealer: services.sealer, log: services.log, metrics: services.metrics, sender: new WebhookSender({ allowPrivate: true, timeoutMs: 10_000, maxResponseBytes: 4096 }) },
      defaultWebhookOptions,
    );
    // A process reads the lane's head (taking b in) and dies before its attempt is recorded: it may
    // have sent a body announcing a and b under the head's webhook-id, which the receiver keeps.
    const read = (dispatcher as unknown as { head(id: string, tenant: string): Promise<{ absorbable: unknown[] | null }> }).head.bind(dispatcher);
    expect((await read(hook.id, 't-fixed'))?.absorbable).toHaveLength(1);
    await change('c');
    const before = receiver.received.length;
    await dispatcher.drainLane(hook.id, 't-fixed');
    dispatcher.close();
    // The retry sends the same rows under that webhook-id; c goes in a delivery of its own (taken in
    // with the head, it would be lost to a receiver that drops the repeated webhook-id).
    const sent = receiver.received.slice(before).map((r) => [r.payload.data.events, r.payload.data.count]);
    expect(sent).toEqual([
      [2, 2],
      [1, 1],
    ]);
  });

  it('writes the records.changed of a transaction that changed two streams in one statement, an event per stream with its rows\' positions', async () => {
    await sql`update webhooks set status = 'disabled'`.execute(stack.db.db);
    const hook = await createWebhook(stack, { url: receiver.url, eventTypes: ['records.changed'], tenantKeys: ['t-two'] });
    await sql`insert into tenants (tenant_key, app_id, status) values ('t-two', ${STORE_APP.appId}, 'active')`.execute(stack.db.db);
    const counted = countingKysely(stack.db, /webhook/);
    const queued = await counted.db.transaction().execute(async (trx) => {
      await sql`insert into contact_users (tenant_key, record_key, open_id, raw, content_hash) values ('t-two', 'u-1', 'u-1', '{}'::jsonb, 'h'), ('t-two', 'u-2', 'u-2', '{}'::jsonb, 'h')`.execute(trx);
      await sql`insert into contact_departments (tenant_key, record_key, open_department_id, raw, content_hash) values ('t-two', 'd-1', 'd-1', '{}'::jsonb, 'h')`.execute(trx);
      return emitWebhookEvent(trx, { type: 'records.changed', tenantKey: 't-two', data: { streams: ['contact_users', 'contact_departments', 'approval_tasks'] } });
    });
    expect(queued).toBe(2);
    expect(counted.seen).toHaveLength(1);
    const rows = await sql<{ stream: string; data: { stream: string; count: number; from: { xid: string; seq: string }; to: { xid: string; seq: string } } }>`
      select d.stream, e.data from webhook_deliveries d join webhook_events e on e.id = d.event_id
       where d.webhook_id = ${hook.id}::bigint order by d.id`.execute(stack.db.db);
    expect(rows.rows.map((r) => [r.stream, r.data.stream, r.data.count]).sort()).toEqual([
      ['contact_departments', 'contact_departments', 1],
      ['contact_users', 'contact_users', 2],
    ]);
    // The positions bound exactly the stream's rows of that transaction.
    for (const { data } of rows.rows) {
      const inRange = await sql<{ n: number }>`
        select count(*)::int as n from ${sql.table(data.stream)}
         where tenant_key = 't-two' and change_xid::text = ${data.to.xid} and change_seq > ${data.from.seq}::bigint and change_seq <= ${data.to.seq}::bigint`.execute(stack.db.db);
      expect(inRange.rows[0]!.n).toBe(data.count);
      expect(data.from.xid).toBe(data.to.xid);
    }
  });
});

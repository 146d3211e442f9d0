import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { emitWebhookEvent } from '../../src/webhooks/emit.js';
import { WebhookDispatcher, defaultWebhookOptions } from '../../src/webhooks/lane-drain.js';
import { WebhookSender } from '../../src/webhooks/sender.js';
import { countingKysely } from '../helpers/db.js';
import { STORE_APP, startStack, type Stack } from '../helpers/stack.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

/**
 * What a lane's drain costs in round trips. At 200 change events a second every records.changed
 * delivery is a lane drain of its own, so each statement of it counts: the head is read with what
 * it can take in, and a delivered attempt reads the next head in the statement that records it.
 * The worker is off: the test drains the lane itself, through a dispatcher whose statements it counts.
 */
describe('a webhook lane drain', () => {
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

  it('sends three records.changed of a stream and a sync.finished in two deliveries, in five statements', async () => {
    const res = await stack.api('POST', '/api/v1/webhooks', { url: receiver.url, eventTypes: ['records.changed', 'sync.finished'] });
    const hook = (await res.json()) as { id: string; secret: string };
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
    // The lane set asleep; the first head with what it takes in; its body frozen and the others
    // taken; delivered with the next head read; delivered with the (empty) next head read. Eight
    // before: the take-in list was read apart, and each delivery read the next head apart.
    expect(counted.seen.map((q) => q.replace(/\s+/g, ' ').slice(0, 40))).toHaveLength(5);
  });
});

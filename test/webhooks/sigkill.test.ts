import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitWebhookEvent } from '../../src/webhooks/emit.js';
import { spawnLarksync, type LarksyncProcess } from '../helpers/larksync-process.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { waitFor } from '../helpers/wait.js';
import { FAST_RESUME } from '../helpers/worker-fleet.js';

/**
 * A larksync process (a real OS process) is SIGKILLed while a delivery is on the wire: its job and
 * its lane's queue stay locked by a dead worker until another process releases them (3 s here),
 * then that process sends the delivery again under the same webhook-id. Nothing is lost, nothing
 * arrives under a second id, and each tenant's order holds.
 */
let stack: Stack;
let receiver: WebhookReceiver;
const procs: LarksyncProcess[] = [];
const START = { ...FAST_RESUME, webhookOptions: { firstRetryDelayMs: 50, maxRetryDelayMs: 500 } };

beforeAll(async () => {
  receiver = new WebhookReceiver();
  await receiver.start();
  // The stack's own larksync serves the API only: deliveries are the child processes' work.
  stack = await startStack({ start: { worker: false } });
});

afterAll(async () => {
  for (const p of procs) await p.kill('SIGKILL').catch(() => undefined);
  await stack?.stop();
  await receiver?.stop();
});

describe('SIGKILL during delivery', () => {
  it('loses nothing: the killed delivery is sent again by another process with the same webhook-id', async () => {
    const res = await stack.api('POST', '/api/v1/webhooks', { url: receiver.url, eventTypes: ['tenant.status_changed'] });
    receiver.accept(((await res.json()) as { secret: string }).secret);
    receiver.delayMs = 1_500;
    const tenants = ['t-kill-1', 't-kill-2'];
    let seq = 0;
    for (let i = 0; i < 5; i += 1) {
      for (const t of tenants) {
        seq += 1;
        await stack.db.db.transaction().execute((trx) => emitWebhookEvent(trx, { type: 'tenant.status_changed', tenantKey: t, data: { seq } }));
      }
    }
    const first = await spawnLarksync(stack.env, 30_000, { start: START });
    procs.push(first);
    // Both lanes have a delivery on the wire (the receiver holds each for 1.5 s): kill now.
    await waitFor(() => receiver.requests >= 2, 15_000, 'deliveries in flight');
    await first.kill('SIGKILL');
    const inFlight = receiver.requests;
    receiver.delayMs = 0;
    const second = await spawnLarksync(stack.env, 30_000, { start: START });
    procs.push(second);
    await waitFor(() => new Set(receiver.received.map((r) => r.payload.data.seq)).size === seq, 30_000, `all ${seq} events`);

    const idsOf = new Map<unknown, Set<string>>();
    for (const r of receiver.received) (idsOf.get(r.payload.data.seq) ?? idsOf.set(r.payload.data.seq, new Set()).get(r.payload.data.seq)!).add(r.id);
    expect([...idsOf.values()].every((ids) => ids.size === 1)).toBe(true);
    for (const t of tenants) {
      const firstSeen = [...new Set(receiver.of(t).map((r) => r.payload.data.seq as number))];
      expect(firstSeen).toEqual([...firstSeen].sort((a, b) => a - b));
      expect(firstSeen).toHaveLength(5);
    }
    // The killed deliveries came again (the receiver had taken them, so it saw them twice, same id).
    expect(receiver.received.length).toBeGreaterThan(seq);
    expect(inFlight).toBeGreaterThanOrEqual(2);
    await waitFor(async () => (await stack.db.db.selectFrom('webhook_deliveries').select('id').where('status', '!=', 'delivered').execute()).length === 0, 5_000, 'every delivery recorded as delivered');
    expect(receiver.rejected).toEqual([]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/clock.js';
import { emitWebhookEvent } from '../../src/webhooks/emit.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The production schedule (24 h retry window, 3 days to disable) on a simulated clock: the test
 * moves the clock by hours, the worker retries 50 ms later in real time.
 */
const HOUR = 3_600_000;

let stack: Stack;
let receiver: WebhookReceiver;
const clock = new SimulatedClock(Date.now());

beforeAll(async () => {
  receiver = new WebhookReceiver();
  await receiver.start();
  stack = await startStack({ start: { webhookOptions: { clock, firstRetryDelayMs: 50, maxRetryDelayMs: 50 } } });
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.stop();
});

const attempts = async () => (await stack.db.db.selectFrom('webhook_attempts').select('id').execute()).length;
const emit = (seq: number) =>
  stack.db.db.transaction().execute((trx) => emitWebhookEvent(trx, { type: 'tenant.installed', tenantKey: 't-dis', data: { seq } }));

/** Moves the clock and waits for the attempt that is then due. */
async function advanceAndAttempt(ms: number): Promise<void> {
  const before = await attempts();
  clock.advance(ms);
  await waitFor(async () => (await attempts()) > before, 5_000, 'an attempt once due');
}

describe('an endpoint failing for 3 days', () => {
  it('gives a delivery up after 24 h, is disabled after 3 days with the reason shown, and goes on once enabled again', async () => {
    const res = await stack.api('POST', '/api/v1/webhooks', { url: receiver.url, eventTypes: ['tenant.installed'] });
    const hook = (await res.json()) as { id: string; secret: string };
    receiver.accept(hook.secret);
    receiver.down(503);

    await emit(1);
    await waitFor(async () => (await attempts()) === 1, 5_000, 'the first attempt');
    // Not due before its backoff on the simulated clock: nothing more happens in real time.
    await new Promise((r) => setTimeout(r, 300));
    expect(await attempts()).toBe(1);
    await advanceAndAttempt(13 * HOUR);
    await advanceAndAttempt(12 * HOUR); // 25 h after the event: given up
    const first = await stack.db.db.selectFrom('webhook_deliveries').selectAll().executeTakeFirstOrThrow();
    expect(first).toMatchObject({ status: 'failed', attempts: 3, last_status_code: 503, last_error: 'HTTP 503' });

    let view = (await (await stack.api('GET', `/api/v1/webhooks/${hook.id}`)).json()) as Record<string, unknown>;
    expect(view).toMatchObject({ status: 'enabled', disabledReason: null });
    expect(Date.parse(view.failingSince as string)).toBeLessThan(clock.now().getTime() - 24 * HOUR);

    // More events keep failing; 3 days after the first failure the webhook is disabled.
    await emit(2);
    await waitFor(async () => (await attempts()) === 4, 5_000, 'the second event attempted');
    await advanceAndAttempt(24 * HOUR);
    await emit(3);
    await waitFor(async () => (await attempts()) === 6, 5_000, 'the third event attempted');
    await advanceAndAttempt(23 * HOUR); // 72 h after the first failure; the third event's window is not over
    view = (await (await stack.api('GET', `/api/v1/webhooks/${hook.id}`)).json()) as Record<string, unknown>;
    expect(view.status).toBe('disabled');
    expect(view.disabledReason).toMatch(/^every delivery attempt failed since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(72 hours\); the last: HTTP 503$/);
    expect(view.disabledAt).toBeTruthy();
    expect(stack.logs.some((l) => l.includes('webhook disabled'))).toBe(true);

    // Disabled: nothing is attempted, no new delivery is even written.
    const frozen = await attempts();
    clock.advance(2 * HOUR);
    await emit(4);
    await new Promise((r) => setTimeout(r, 500));
    expect(await attempts()).toBe(frozen);
    expect(await stack.db.db.selectFrom('webhook_deliveries').select('id').execute()).toHaveLength(3);

    // Enabled again with the receiver back: the pending delivery goes out.
    receiver.up();
    const patched = await stack.api('PATCH', `/api/v1/webhooks/${hook.id}`, { enabled: true });
    expect(await patched.json()).toMatchObject({ status: 'enabled', disabledReason: null, failingSince: null });
    await waitFor(() => receiver.received.length === 1, 5_000, 'the pending delivery');
    expect(receiver.received[0]!.payload.data.seq).toBe(3);
  });
});

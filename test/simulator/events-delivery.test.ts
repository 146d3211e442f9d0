import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEventsSim, FAST_RETRIES, type EventsSim } from './events-setup.js';

// How the simulator pushes change events (shared/lark/events.md §4–7): v2 and v1 envelopes,
// encrypted and signed like lifecycle pushes, acknowledged only by HTTP 200, retried with the same
// id on Lark's schedule (scaled down here), ordered keys held until acknowledged; and the test
// controls: pause/resume, idle(), out-of-order delivery, duplicates, counters.

const ENC = { appId: 'cli_ev_enc', kind: 'store' as const, encryptKey: 'ev-encrypt-key-1' };
const PLAIN = { appId: 'cli_ev_plain', kind: 'store' as const };
const TENANT = 'tk-ev-delivery';

describe('simulator change-event delivery', () => {
  let s: EventsSim;

  beforeAll(async () => {
    s = await startEventsSim([ENC, PLAIN], [[ENC.appId, TENANT], [PLAIN.appId, TENANT]]);
  });
  afterAll(async () => {
    await s.stop();
  });
  beforeEach(async () => {
    await s.sim.events.idle();
    s.receiver.clear();
    s.sim.events.resume();
    s.sim.events.setOptions({ ...FAST_RETRIES, timeoutMs: 3_000, duplicateShare: 0 });
    s.sim.events.resetCounters();
  });

  it('v2: encrypted and signed, decrypts to the v2 envelope with the push time as header.create_time', async () => {
    const ev = s.sim.events.emitV2(ENC.appId, TENANT, 'contact.user.created_v3', { object: { open_id: 'ou_x' } }, { createdAt: 1_718_000_000_123 });
    await s.sim.events.idle();
    const [push] = s.receiver.requests;
    expect(push).toMatchObject({ id: ev.id, schema: '2.0', type: 'contact.user.created_v3', signatureOk: true, status: 200 });
    expect(push!.body.header).toEqual({
      event_id: ev.id,
      event_type: 'contact.user.created_v3',
      create_time: '1718000000123',
      token: `vtok-${ENC.appId}`,
      app_id: ENC.appId,
      tenant_key: TENANT,
    });
    expect(push!.event).toEqual({ object: { open_id: 'ou_x' } });
    expect(String(push!.headers['x-lark-request-timestamp'])).toMatch(/^\d{10}$/);
    expect(ev.state).toBe('delivered');
    expect(s.sim.events.counters).toMatchObject({ emitted: 1, delivered: 1, attempts: 1, retried: 0, failed: 0 });
  });

  it('v1: a plain app gets the JSON body without signature headers', async () => {
    const ev = s.sim.events.emitV1(PLAIN.appId, TENANT, { type: 'approval_instance', app_id: PLAIN.appId, tenant_key: TENANT }, { createdAt: 1_718_000_000_500 });
    await s.sim.events.idle();
    const [push] = s.receiver.requests;
    expect(push!.headers['x-lark-signature']).toBeUndefined();
    expect(push!.body).toEqual({
      ts: '1718000000.500000',
      uuid: ev.id,
      token: `vtok-${PLAIN.appId}`,
      type: 'event_callback',
      event: { type: 'approval_instance', app_id: PLAIN.appId, tenant_key: TENANT },
    });
  });

  it('retries a failed push with the same id and a fresh signature on the scaled schedule, then gives up', async () => {
    s.receiver.answer = () => 500;
    const ev = s.sim.events.emitV2(ENC.appId, TENANT, 'contact.user.updated_v3', {});
    await s.sim.events.idle();
    const attempts = s.receiver.requests;
    expect(attempts).toHaveLength(5);
    expect(new Set(attempts.map((a) => a.id))).toEqual(new Set([ev.id]));
    expect(attempts.every((a) => a.signatureOk)).toBe(true);
    expect(new Set(attempts.map((a) => a.headers['x-lark-request-nonce'])).size).toBe(5);
    // The same plaintext every time: create_time stays the push time of the change.
    expect(new Set(attempts.map((a) => a.body.header.create_time)).size).toBe(1);
    const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i]!.at);
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(FAST_RETRIES.retryDelaysMs![i]! - 5));
    expect(ev.state).toBe('failed');
    expect(s.sim.events.counters).toMatchObject({ emitted: 1, delivered: 0, attempts: 5, retried: 4, failed: 1 });
  });

  it('only HTTP 200 acknowledges: a 204, then a timeout, then 200', async () => {
    s.sim.events.setOptions({ timeoutMs: 500 });
    let n = 0;
    s.receiver.answer = () => {
      n += 1;
      // The second answer comes after the simulator stopped waiting.
      s.receiver.delayMs = n === 2 ? 900 : 0;
      return n === 1 ? 204 : 200;
    };
    const ev = s.sim.events.emitV2(ENC.appId, TENANT, 'contact.user.updated_v3', {});
    await s.sim.events.idle();
    // (On a very loaded machine a later answer may be late too: more timeouts before the 200.)
    expect(ev.attempts.map((a) => a.status).join(',')).toMatch(/^204,0(,0)*,200$/);
    expect(s.sim.events.counters).toMatchObject({ delivered: 1, failed: 0 });
    expect(s.sim.events.counters.retried).toBe(ev.attempts.length - 1);
  });

  it('pause holds events (idle resolves while paused); resume with order "reverse" sends the newest first', async () => {
    s.sim.events.pause();
    const evs = [1, 2, 3].map((i) => s.sim.events.emitV2(ENC.appId, TENANT, 'contact.user.updated_v3', { i }));
    await s.sim.events.idle();
    expect(s.receiver.requests).toHaveLength(0);
    expect(s.sim.events.queued().map((e) => e.id)).toEqual(evs.map((e) => e.id));
    s.sim.events.setOptions({ concurrency: 1 });
    s.sim.events.resume({ order: 'reverse' });
    await s.sim.events.idle();
    s.sim.events.setOptions({ concurrency: 16 });
    expect(s.receiver.requests.map((r) => r.event.i)).toEqual([3, 2, 1]);
  });

  it('out-of-order injection and duplicates: deliver() the newer event first, then the older; duplicate() the same id again', async () => {
    s.sim.events.pause();
    const older = s.sim.events.emitV2(ENC.appId, TENANT, 'drive.file.edit_v1', { v: 'older' });
    const newer = s.sim.events.emitV2(ENC.appId, TENANT, 'drive.file.edit_v1', { v: 'newer' });
    expect((await s.sim.events.deliver(newer.id)).status).toBe(200);
    expect((await s.sim.events.deliver(older.id)).status).toBe(200);
    expect((await s.sim.events.duplicate(newer.id)).status).toBe(200);
    await s.sim.events.idle();
    expect(s.receiver.requests.map((r) => [r.event.v, r.id])).toEqual([
      ['newer', newer.id],
      ['older', older.id],
      ['newer', newer.id],
    ]);
    const createTime = (id: string) => Number(s.receiver.requests.find((r) => r.id === id)!.body.header.create_time);
    expect(createTime(older.id)).toBeLessThanOrEqual(createTime(newer.id));
    expect(s.sim.events.counters).toMatchObject({ emitted: 2, delivered: 2, duplicates: 1, attempts: 3 });
    s.sim.events.resume();
  });

  it('events of one order key wait for the acknowledgement of the earlier one; other keys do not', async () => {
    s.receiver.answer = (p, n) => (p.event.key === 'a' && p.event.step === 1 && n < 2 ? 500 : 200);
    const first = s.sim.events.emitV2(ENC.appId, TENANT, 'x.ordered', { key: 'a', step: 1 }, { orderKey: 'a' });
    const second = s.sim.events.emitV2(ENC.appId, TENANT, 'x.ordered', { key: 'a', step: 2 }, { orderKey: 'a' });
    const other = s.sim.events.emitV2(ENC.appId, TENANT, 'x.ordered', { key: 'b', step: 1 }, { orderKey: 'b' });
    expect(second.state).toBe('held');
    expect(s.sim.events.heldEvents().map((e) => e.id)).toEqual([second.id]);
    await s.sim.events.idle();
    const order = s.receiver.requests.map((r) => `${r.event.key}${r.event.step}:${r.status}`);
    expect(order.filter((o) => o.startsWith('a'))).toEqual(['a1:500', 'a1:500', 'a1:200', 'a2:200']);
    // b is not held behind a: it arrives before a's first event is acknowledged.
    expect(order.indexOf('b1:200')).toBeLessThan(order.indexOf('a1:200'));
    expect([first.state, second.state, other.state]).toEqual(['delivered', 'delivered', 'delivered']);
    expect(s.sim.events.counters).toMatchObject({ emitted: 3, delivered: 3, held: 1, retried: 2 });
  });

  it('duplicateShare: Lark sends acknowledged events a second time with the same id', async () => {
    s.sim.events.setOptions({ duplicateShare: 1 });
    const ev = s.sim.events.emitV2(PLAIN.appId, TENANT, 'contact.user.updated_v3', {});
    await s.sim.events.idle();
    expect(s.receiver.requests.map((r) => r.id)).toEqual([ev.id, ev.id]);
    expect(s.sim.events.counters).toMatchObject({ delivered: 1, duplicates: 1 });
  });

  it('idle() rejects with what is left when a retry is far away; deliver() sends it at once', async () => {
    s.sim.events.setOptions({ retryDelaysMs: [60_000] });
    let fail = true;
    s.receiver.answer = () => (fail ? 503 : 200);
    const ev = s.sim.events.emitV2(ENC.appId, TENANT, 'contact.user.updated_v3', {});
    await expect(s.sim.events.idle({ timeoutMs: 200 })).rejects.toThrow(/"retryWait":1/);
    expect(ev.state).toBe('retry_wait');
    fail = false;
    expect((await s.sim.events.deliver(ev.id)).status).toBe(200);
    await s.sim.events.idle();
    expect(ev.state).toBe('delivered');
  });
});

import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { encodeCursor } from '../../src/sync/records.service.js';
import { Consumer, decodePosition, shows } from '../../bench/realtime-consumer.js';
import type { Push } from '../../bench/realtime-sim-child.js';

// The realtime benchmark's application side: what it counts as "visible" and which webhook it
// credits a change to decide the figures it prints, so both are pinned here against a fake
// records API (the real one is exercised by the benchmark itself).

const SECRET = `whsec_${Buffer.from('realtime-consumer-test-secret-32b').toString('base64')}`;
const cursor = (xid: number, seq: number) => encodeCursor({ xid: BigInt(xid), seq: BigInt(seq) });

interface FakeRow {
  key: string;
  deletedAt: string | null;
  data: Record<string, unknown>;
  xid: number;
  seq: number;
}

/** A records API over an in-memory feed: rows after the cursor, in (xid, seq) order. */
async function fakeApi(rows: FakeRow[]): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const after = u.searchParams.get('cursor') ? decodePosition(u.searchParams.get('cursor')!) : { xid: 0n, seq: 0n };
    const page = rows
      .filter((r) => BigInt(r.xid) > after.xid || (BigInt(r.xid) === after.xid && BigInt(r.seq) > after.seq))
      .sort((a, b) => a.xid - b.xid || a.seq - b.seq);
    const last = page.at(-1);
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        records: page.map((r) => ({ key: r.key, deletedAt: r.deletedAt, updatedAt: new Date().toISOString(), data: r.data })),
        nextCursor: null,
        resumeCursor: last ? cursor(last.xid, last.seq) : encodeCursor(after),
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}`, close: () => new Promise((r) => server.close(() => r())) };
}

async function sendWebhook(url: string, id: string, tenantKey: string, stream: string, after: string, upTo: string): Promise<void> {
  const body = JSON.stringify({ type: 'records.changed', timestamp: new Date().toISOString(), data: { tenantKey, stream, count: 1, cursor: { after, upTo }, events: 1 } });
  const at = new Date();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': new Webhook(SECRET).sign(id, at, body) },
    body,
  });
  await res.arrayBuffer();
}

const push = (at: number, changes: Push['changes']): Push => ({ eventId: `ev-${at}`, tenant: 't1', type: 'contact.user.updated_v3', at, status: 200, ackMs: 1, changes });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('realtime benchmark consumer', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  it('reads the cursor larksync writes', () => {
    expect(decodePosition(cursor(123, 45))).toEqual({ xid: 123n, seq: 45n });
  });

  it('a row shows a value, a presence or a deletion (a resigned member counts as gone)', () => {
    const row = { key: 'k', deletedAt: null, data: { raw: { job_title: 'Lead 3' }, is_resigned: false } };
    expect(shows(row, { kind: 'value', path: ['raw', 'job_title'], value: 'Lead 3' })).toBe(true);
    expect(shows(row, { kind: 'value', path: ['raw', 'job_title'], value: 'Lead 4' })).toBe(false);
    expect(shows(row, { kind: 'present' })).toBe(true);
    expect(shows(row, { kind: 'deleted' })).toBe(false);
    expect(shows({ ...row, deletedAt: '2026-12-06T00:00:00Z' }, { kind: 'deleted' })).toBe(true);
    expect(shows({ ...row, data: { is_resigned: true } }, { kind: 'deleted' })).toBe(true);
  });

  it('times a change when a read shows it, credits the webhook that reaches its row, and flags a row still behind', async () => {
    const rows: FakeRow[] = [];
    const api = await fakeApi(rows);
    cleanup.push(api.close);
    const consumer = new Consumer({ url: api.url, token: 't' }, { pollMs: 20, concurrency: 2 });
    const hooks = await consumer.start();
    cleanup.push(() => consumer.stop());
    consumer.useSecret(SECRET);
    await consumer.catchUp(['t1'], ['contact_users']);

    const t0 = Date.now();
    consumer.addPushes([
      push(t0, [{ stream: 'contact_users', key: 'u1', expect: { kind: 'value', path: ['raw', 'job_title'], value: 'A' } }]),
      push(t0 + 1, [{ stream: 'contact_users', key: 'u2', expect: { kind: 'value', path: ['raw', 'job_title'], value: 'B' } }]),
    ]);
    consumer.startPolling();
    // u1 is applied at position (10, 1); u2 stays at its old value.
    rows.push({ key: 'u1', deletedAt: null, data: { raw: { job_title: 'A' } }, xid: 10, seq: 1 });
    rows.push({ key: 'u2', deletedAt: null, data: { raw: { job_title: 'old' } }, xid: 10, seq: 2 });
    for (let i = 0; i < 100 && consumer.all[0]!.visibleAt === undefined; i += 1) await sleep(10);
    // A webhook that stops short of the page's end does not cover it; one that reaches it does.
    await sendWebhook(hooks, 'msg_1', 't1', 'contact_users', cursor(0, 0), cursor(10, 1));
    await sleep(50);
    const reaching = Date.now();
    await sendWebhook(hooks, 'msg_2', 't1', 'contact_users', cursor(10, 1), cursor(10, 2));
    await sendWebhook(hooks, 'msg_2', 't1', 'contact_users', cursor(10, 1), cursor(10, 2));
    consumer.finish();

    const [u1, u2] = consumer.all;
    expect(u1!.visibleAt).toBeGreaterThanOrEqual(t0);
    // The page ended at (10, 2): only a webhook reaching that far certainly announced u1.
    expect(u1!.hookAt).toBeGreaterThanOrEqual(reaching);
    expect(u2!.visibleAt).toBeUndefined();
    expect(consumer.stats).toMatchObject({ webhooks: 3, badSignatures: 0, duplicateIds: 1 });
    expect(consumer.lost()).toEqual([expect.objectContaining({ key: 'u2', shown: { deletedAt: null, value: 'old' } })]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/wait.js';
import { awakeShards, drainJobs, eventCounts, eventsWithoutJob, maxJobId, newId, postRaw, queuedEventIds, settleStartupTicket, v1Body } from '../helpers/events-helpers.js';

const appId = STORE_APP.appId;

async function eventRow(db: TestDatabase, eventId: string) {
  return db.db.selectFrom('lark_events').selectAll().where('event_id', '=', eventId).executeTakeFirst();
}

async function auditRows(db: TestDatabase, eventId: string) {
  return db.db.selectFrom('tenant_audit').selectAll().where('event_id', '=', eventId).execute();
}

/** Every column of every row, as Postgres prints it: what someone reading the table would see. */
async function tableText(db: TestDatabase, table: string): Promise<string> {
  const r = await sql<{ t: string }>`select t::text as t from ${sql.table(table)} t`.execute(db.db);
  return r.rows.map((x) => x.t).join('\n');
}

describe('acknowledged means stored (worker off)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: true, start: { worker: false } });
    await settleStartupTicket(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('stores the row and queues its job before answering 200, and does not process it on the request path', async () => {
    for (let i = 0; i < 10; i += 1) {
      const res = await stack.sim.pushV1(appId, { app_id: appId, tenant_key: `t-durable-${i}`, type: 'app_open' });
      expect(res.status).toBe(200);
      // Read right after the answer: no polling, so the row and its job cannot have come later.
      const row = await eventRow(stack.db, res.uuid);
      expect(row).toMatchObject({ event_id: res.uuid, schema_version: 'v1', event_type: 'app_open', tenant_key: `t-durable-${i}`, status: 'pending' });
      expect(await eventsWithoutJob(stack.db)).toEqual([]);
    }
    const stored = await stack.db.db.selectFrom('lark_events').select(['id', 'shard']).where('tenant_key', 'like', 't-durable-%').execute();
    // Drain jobs, one per shard, in the shard's queue: the shards of these events are awake.
    const shards = [...new Set(stored.map((r) => r.shard))];
    expect(shards.every((s) => s !== null && s >= 0 && s < 8)).toBe(true);
    expect(await awakeShards(stack.db)).toEqual(expect.arrayContaining(shards));
    const drains = await drainJobs(stack.db);
    for (const s of shards) expect(drains.filter((j) => j.shard === s)).toEqual([{ queue: `lark-events:${s}`, shard: s, locked: false }]);
    expect(await stack.db.db.selectFrom('tenants').selectAll().execute()).toEqual([]);
  });

  it('keys v1 by uuid and v2 by header.event_id; a redelivery is 200 with no second row or job', async () => {
    const v1 = await stack.sim.pushV1(appId, { app_id: appId, tenant_key: 't-redeliver', type: 'app_status_change', status: 'stop_by_tenant' });
    const v2 = await stack.sim.pushV2(appId, 'contact.user.updated_v3', { object: {} }, { tenantKey: 't-redeliver' });
    expect([v1.status, v2.status]).toEqual([200, 200]);
    const before = { ...(await eventCounts(stack.db)), maxJob: await maxJobId(stack.db) };
    for (let i = 0; i < 3; i += 1) {
      const again = await Promise.all([stack.sim.redeliver(v1.uuid), stack.sim.redeliver(v2.uuid)]);
      expect(again.map((r) => [r.status, r.body])).toEqual([
        [200, '{"msg":"success"}'],
        [200, '{"msg":"success"}'],
      ]);
    }
    expect({ ...(await eventCounts(stack.db)), maxJob: await maxJobId(stack.db) }).toEqual(before);
    expect(await eventRow(stack.db, v2.uuid)).toMatchObject({ schema_version: 'v2', event_type: 'contact.user.updated_v3', app_id: appId });
  });

  it('stores one row for one event id pushed 20 times at once', async () => {
    const first = await stack.sim.pushV1(appId, { app_id: appId, tenant_key: 't-burst', type: 'app_open' });
    const before = { ...(await eventCounts(stack.db)), maxJob: await maxJobId(stack.db) };
    const results = await Promise.all(Array.from({ length: 20 }, () => stack.sim.redeliver(first.uuid)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect({ ...(await eventCounts(stack.db)), maxJob: await maxJobId(stack.db) }).toEqual(before);
  });

  it('group commit: concurrent pushes share transactions, and every answer comes after its own row and job', async () => {
    const ids = Array.from({ length: 120 }, () => newId());
    const pushes = ids.map((uuid, i) =>
      stack.sim.wireFormat(appId, JSON.stringify(v1Body({ app_id: appId, tenant_key: `t-group-${i % 7}`, type: 'app_open' }, { uuid }))),
    );
    // Each event id twice: a redelivery racing its original, in the same batch or the next.
    const results = await Promise.all([...pushes, ...pushes].map((w) => postRaw(stack.eventsUrl, w)));
    expect(results.map((r) => r.status)).toEqual(results.map(() => 200));
    const rows = await sql<{ id: string; event_id: string; tx: string }>`
      select e.id::text as id, e.event_id, e.xmin::text as tx from lark_events e where e.event_id = any(${ids}::text[])`.execute(stack.db.db);
    expect(rows.rows).toHaveLength(120);
    // Each stored event will be read by a queued job, and a shard has one drain job however many
    // batches stored into it: an awake shard queues nothing more.
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
    const shards = (await drainJobs(stack.db)).map((j) => j.shard);
    expect(shards.length).toBeGreaterThan(0);
    expect(new Set(shards).size).toBe(shards.length);
    // Rows written by one transaction share its xmin: fewer transactions than pushes.
    expect(new Set(rows.rows.map((r) => r.tx)).size).toBeLessThan(120);
  });

  it('never stores the plaintext payload, ticket or verification token (checked on the bytes)', async () => {
    const ticket = `tkt-plaintext-${newId()}`;
    const res = await stack.sim.pushV1(appId, { app_id: appId, app_ticket: ticket, type: 'app_ticket' });
    expect(res.status).toBe(200);
    const row = await eventRow(stack.db, res.uuid);
    const bytes = row!.payload_sealed;
    for (const needle of [ticket, STORE_APP.verificationToken, '"app_ticket"', 'event_callback', res.uuid]) {
      expect(bytes.includes(Buffer.from(needle, 'utf8'))).toBe(false);
      expect(bytes.toString('latin1')).not.toContain(needle);
    }
    // Not the wire ciphertext either: Lark's encrypt key must not be enough to read our table.
    expect(bytes.toString('latin1')).not.toContain('encrypt');
    const everything = await tableText(stack.db, 'lark_events');
    expect(everything).not.toContain(ticket);
    expect(everything).not.toContain(Buffer.from(ticket).toString('hex'));
    expect(everything).not.toContain(STORE_APP.verificationToken);
    expect(stack.logs.join('')).not.toContain(ticket);
  });
});

describe('processing after the answer (worker on)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: true });
    await settleStartupTicket(stack);
    await whenReady(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('stores events of unknown types (v2 and v1) and marks them ignored', async () => {
    const res = await stack.sim.pushV2(appId, 'im.message.receive_v1', { message: { content: 'hi' } }, { tenantKey: 't-unknown' });
    const noTenant = await stack.sim.pushV2(appId, 'application.bot.menu_v6', {});
    // A v1 type without a handler is kept the same way.
    const orderPaid = await stack.sim.pushV1(appId, { app_id: appId, tenant_key: 't-unknown', type: 'order_paid', order_id: 'o-1' });
    // A type named like an Object.prototype member is just another unknown type.
    const proto = await stack.sim.pushV2(appId, 'constructor', {}, { tenantKey: 't-unknown' });
    expect([res.status, noTenant.status, orderPaid.status, proto.status]).toEqual([200, 200, 200, 200]);
    for (const id of [res.uuid, noTenant.uuid, orderPaid.uuid, proto.uuid]) {
      const row = await waitFor(async () => {
        const r = await eventRow(stack.db, id);
        return r?.status === 'ignored' ? r : undefined;
      }, 10_000, 'the unknown event to be marked ignored');
      expect(row).toMatchObject({ attempts: 1, last_error: null });
      expect(row.processed_at).toBeInstanceOf(Date);
    }
    // An unknown type from a tenant we never saw must not invent that tenant.
    expect(await stack.db.db.selectFrom('tenants').selectAll().where('tenant_key', '=', 't-unknown').execute()).toEqual([]);
  });

  it('applies a redelivered event once: one row, one attempt, one audit row, also after it was processed', async () => {
    const push = await stack.sim.appOpen(appId, 't-once');
    await Promise.all([stack.sim.redeliver(push.uuid), stack.sim.redeliver(push.uuid)]);
    await waitFor(async () => (await eventRow(stack.db, push.uuid))?.status === 'processed', 10_000, 'app_open processed');
    // Lark retries after a lost answer: the event is done, so this is a no-op too.
    expect((await stack.sim.redeliver(push.uuid)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 600)); // a few worker polls
    expect(await stack.db.db.selectFrom('lark_events').select('id').where('event_id', '=', push.uuid).execute()).toHaveLength(1);
    expect(await eventRow(stack.db, push.uuid)).toMatchObject({ status: 'processed', attempts: 1 });
    expect((await auditRows(stack.db, push.uuid)).map((a) => a.action)).toEqual(['installed']);
    expect(stack.sim.count('/open-apis/auth/v3/tenant_access_token')).toBe(1);
  });

  it('stores and processes events whose tenant key is too long for a worker queue name', async () => {
    const longKey = `t-${'k'.repeat(200)}`;
    const v2 = await stack.sim.pushV2(appId, 'im.message.receive_v1', {}, { tenantKey: longKey });
    const v1 = await stack.sim.appStatusChange(appId, longKey, 'stop_by_tenant');
    expect([v2.status, v1.status]).toEqual([200, 200]);
    await waitFor(async () => (await eventRow(stack.db, v2.uuid))?.status === 'ignored', 10_000, 'long-key v2 event ignored');
    await waitFor(async () => (await eventRow(stack.db, v1.uuid))?.status === 'processed', 10_000, 'long-key status change processed');
    const t = await stack.db.db.selectFrom('tenants').select('status').where('tenant_key', '=', longKey).executeTakeFirstOrThrow();
    expect(t.status).toBe('paused');
  });

  it('keeps a pushed event for another app id but does not apply it', async () => {
    const res = await stack.sim.pushV1(appId, { app_id: 'cli_someone_else', tenant_key: 't-foreign', type: 'app_open' });
    expect(res.status).toBe(200);
    await waitFor(async () => (await eventRow(stack.db, res.uuid))?.status === 'ignored', 10_000, 'foreign event ignored');
    expect(await stack.db.db.selectFrom('tenants').selectAll().where('tenant_key', '=', 't-foreign').execute()).toEqual([]);
  });

  it('acknowledges events fast: sequential and 20 concurrent pushes all inside Lark`s 3 s', async () => {
    const sequential = 100;
    const t0 = performance.now();
    const seq: number[] = [];
    for (let i = 0; i < sequential; i += 1) {
      const r = await stack.sim.pushV2(appId, 'bench.sequential_v1', { i }, { tenantKey: `t-bench-${i % 10}` });
      expect(r.status).toBe(200);
      seq.push(r.durationMs);
    }
    const seqSeconds = (performance.now() - t0) / 1000;

    const concurrency = 20;
    const total = 200;
    let next = 0;
    const conc: number[] = [];
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          const i = next++;
          const r = await stack.sim.pushV2(appId, 'bench.concurrent_v1', { i }, { tenantKey: `t-bench-${i % 10}` });
          expect(r.status).toBe(200);
          conc.push(r.durationMs);
        }
      }),
    );
    const concSeconds = (performance.now() - t1) / 1000;
    const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
    console.log(
      `[events/s] sequential: ${(sequential / seqSeconds).toFixed(0)}/s (p50 ${p(seq, 0.5).toFixed(1)} ms, p99 ${p(seq, 0.99).toFixed(1)} ms); ` +
        `${concurrency} concurrent: ${(total / concSeconds).toFixed(0)}/s (p50 ${p(conc, 0.5).toFixed(1)} ms, p99 ${p(conc, 0.99).toFixed(1)} ms); worker running`,
    );
    // Only Lark's budget is a failure; the figures themselves are informational.
    expect(Math.max(...seq, ...conc)).toBeLessThan(3_000);
    const stored = await sql<{ n: string }>`
      select count(*)::text as n from lark_events where event_type in ('bench.sequential_v1', 'bench.concurrent_v1')`.execute(stack.db.db);
    expect(Number(stored.rows[0]?.n)).toBe(sequential + total);
  });
});

describe('processing survives a restart', () => {
  let db: TestDatabase;
  let first: Stack | undefined;
  let second: Stack | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await second?.stop();
    await first?.stop();
    await db?.drop();
  });

  it('processes events acknowledged by a process without a worker, after a new process with a worker starts', async () => {
    first = await startStack({ encrypt: true, db, start: { worker: false } });
    await settleStartupTicket(first);
    const open = await first.sim.appOpen(appId, 't-restart');
    const pause = await first.sim.appStatusChange(appId, 't-restart', 'stop_by_tenant');
    const unknown = await first.sim.pushV2(appId, 'im.chat.updated_v1', {}, { tenantKey: 't-restart' });
    expect([open.status, pause.status, unknown.status]).toEqual([200, 200, 200]);
    const ids = [open.uuid, pause.uuid, unknown.uuid];
    // One stored row that no longer opens (as after dropping the key it was sealed with).
    const broken = await first.sim.appStatusChange(appId, 't-broken', 'stop_by_tenant');
    await db.db.updateTable('lark_events').set({ payload_sealed: Buffer.from('not sealed') }).where('event_id', '=', broken.uuid).execute();
    const pending = await db.db.selectFrom('lark_events').select(['event_id', 'status']).where('event_id', 'in', ids).execute();
    expect(pending.map((r) => r.status)).toEqual(['pending', 'pending', 'pending']);
    const sealingKey = first.env.ENCRYPTION_KEY!;
    await first.stop();
    first = undefined;

    // Same database, same sealing key: the stored payloads must open in the new process.
    second = await startStack({ encrypt: true, db, env: { ENCRYPTION_KEY: sealingKey } });
    const done = await waitFor(async () => {
      const rows = await db.db.selectFrom('lark_events').select(['event_id', 'status']).where('event_id', 'in', ids).execute();
      return rows.every((r) => r.status !== 'pending' && r.status !== 'failed') ? rows : undefined;
    }, 15_000, 'the stored events to be processed by the new process');
    expect(Object.fromEntries(done.map((r) => [r.event_id, r.status]))).toEqual({
      [open.uuid]: 'processed',
      [pause.uuid]: 'processed',
      [unknown.uuid]: 'ignored',
    });
    const failed = await waitFor(async () => {
      const r = await eventRow(db, broken.uuid);
      return r?.status === 'failed' ? r : undefined;
    }, 10_000, 'the unreadable event to be marked failed');
    expect(failed.last_error).toMatch(/sealed/);
    expect(failed.attempts).toBeGreaterThanOrEqual(1);
    // It left its shard's batch job and is retried by a job of its own, in its tenant's queue.
    const retry = await waitFor(async () => (await queuedEventIds(db)).find((j) => j.id === failed.id), 10_000, 'a retry job for the failed event');
    expect(retry.queue).toBe('tenant:t-broken');
    expect(await db.db.selectFrom('tenants').selectAll().where('tenant_key', '=', 't-broken').execute()).toEqual([]);
    // The per-tenant queue applied app_open before the pause, so the tenant ends paused.
    const tenant = await db.db.selectFrom('tenants').selectAll().where('tenant_key', '=', 't-restart').executeTakeFirstOrThrow();
    expect(tenant.status).toBe('paused');
    const audit = await db.db.selectFrom('tenant_audit').select(['action', 'event_id']).where('tenant_key', '=', 't-restart').orderBy('id').execute();
    expect(audit).toEqual([
      { action: 'installed', event_id: open.uuid },
      { action: 'paused', event_id: pause.uuid },
    ]);
    // The new simulator rejects the old ticket; let its follow-up pushes finish before stopping.
    await second.sim.settle();
  });
});

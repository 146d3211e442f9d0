import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { Larksync } from '../../src/bootstrap.js';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { startStack, STORE_APP, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { newId, settleStartupTicket } from '../helpers/events-helpers.js';
import { spawnLarksync, type LarksyncProcess } from '../helpers/larksync-process.js';

const appId = STORE_APP.appId;
const N = 50;

describe('several larksync processes sharing one database', () => {
  let stack: Stack;
  let replica: Larksync;
  let child: LarksyncProcess | undefined;

  beforeAll(async () => {
    stack = await startStack({ encrypt: true });
    await settleStartupTicket(stack);
    await whenReady(stack);
    replica = await stack.startReplica();
    child = await spawnLarksync(stack.env);
  }, 60_000);

  afterAll(async () => {
    await stack?.sim.settle();
    const code = await child?.stop();
    // A clean SIGTERM shutdown, not a kill.
    expect(code).toBe(0);
    await stack?.stop();
  });

  /** app_open pushed to `url`, while Lark's "retry" of the same uuid reaches `otherUrl` at the same moment. */
  function openTwice(tenantKey: string, url: string, otherUrl: string) {
    const uuid = newId();
    stack.sim.installTenant(appId, tenantKey);
    const first = stack.sim.pushV1(
      appId,
      { app_id: appId, tenant_key: tenantKey, type: 'app_open', installer: { open_id: `ou_${tenantKey}` } },
      { uuid, url },
    );
    const retry = stack.sim.redeliver(uuid, otherUrl);
    return Promise.all([first, retry]).then((results) => ({ uuid, results }));
  }

  async function expectAppliedOnce(prefix: string, uuids: string[], mintsBefore: number) {
    await waitFor(async () => {
      const r = await sql<{ n: string }>`
        select count(*)::text as n from lark_events where event_id = any(${uuids}) and status = 'processed'`.execute(stack.db.db);
      return Number(r.rows[0]?.n) === uuids.length;
    }, 20_000, `${uuids.length} events to be processed`);

    const rows = await stack.db.db.selectFrom('lark_events').select(['event_id', 'attempts']).where('event_id', 'in', uuids).execute();
    expect(rows).toHaveLength(uuids.length);
    expect(rows.every((r) => r.attempts === 1)).toBe(true);
    const perEvent = await sql<{ event_id: string; n: number }>`
      select event_id, count(*)::int as n from tenant_audit where event_id = any(${uuids}) group by event_id`.execute(stack.db.db);
    expect(perEvent.rows).toHaveLength(uuids.length);
    expect(perEvent.rows.every((r) => r.n === 1)).toBe(true);
    const tenants = await sql<{ n: string }>`
      select count(*)::text as n from tenants where tenant_key like ${`${prefix}%`} and status = 'active'`.execute(stack.db.db);
    expect(Number(tenants.rows[0]?.n)).toBe(uuids.length);
    // Each tenant's token was minted once, whichever process ran its job.
    await waitFor(async () => {
      const t = await sql<{ n: string }>`
        select count(*)::text as n from access_tokens where kind = 'tenant' and tenant_key like ${`${prefix}%`} and token_sealed is not null`.execute(stack.db.db);
      return Number(t.rows[0]?.n) === uuids.length;
    }, 10_000, 'every tenant token');
    expect(stack.sim.count(AUTH_PATHS.tenantAccessToken) - mintsBefore).toBe(uuids.length);
  }

  it(`in-process replica: ${N} events alternating between the two, each retried to the other, are stored and applied once`, async () => {
    const urls = [stack.eventsUrl, `${replica.url}/lark/events`];
    const mintsBefore = stack.sim.count(AUTH_PATHS.tenantAccessToken);
    const uuids: string[] = [];
    // Batches of 10 pairs keep pushes overlapping without queueing past Lark's 3 s.
    for (let batch = 0; batch < N; batch += 10) {
      const pairs = await Promise.all(
        Array.from({ length: 10 }, (_, j) => {
          const i = batch + j;
          return openTwice(`t-rep-${i}`, urls[i % 2]!, urls[(i + 1) % 2]!);
        }),
      );
      for (const { uuid, results } of pairs) {
        expect(results.map((r) => r.status)).toEqual([200, 200]);
        uuids.push(uuid);
      }
    }
    await expectAppliedOnce('t-rep-', uuids, mintsBefore);
    // The app token behind all those tenant tokens was minted once across both processes.
    expect(stack.sim.count(AUTH_PATHS.appAccessToken)).toBe(1);
  });

  it(`separate OS process: ${N} events alternating between the processes, each retried to the other, are applied once`, async () => {
    const urls = [stack.eventsUrl, `${child!.url}/lark/events`];
    const mintsBefore = stack.sim.count(AUTH_PATHS.tenantAccessToken);
    const uuids: string[] = [];
    for (let batch = 0; batch < N; batch += 10) {
      const pairs = await Promise.all(
        Array.from({ length: 10 }, (_, j) => {
          const i = batch + j;
          return openTwice(`t-proc-${i}`, urls[i % 2]!, urls[(i + 1) % 2]!);
        }),
      );
      for (const { uuid, results } of pairs) {
        expect(results.map((r) => r.status)).toEqual([200, 200]);
        uuids.push(uuid);
      }
    }
    await expectAppliedOnce('t-proc-', uuids, mintsBefore);
    // The other process really took its half: N/2 first pushes and N/2 retries.
    // Its log sums the pushes of each type it stored, a line a second at most.
    const acknowledged = () =>
      child!.output
        .join('')
        .split('\n')
        .filter((l) => l.includes('"lark events stored"'))
        .reduce((n, l) => n + Number(/"types":"[^"]*\bapp_open=(\d+)/.exec(l)?.[1] ?? 0), 0);
    await waitFor(() => acknowledged() >= N, 5_000, "the other process's summary lines");
    expect(acknowledged()).toBe(N);
  });

  it('one event pushed to all three processes 30 times at once is one row, one job, one change', async () => {
    const urls = [stack.eventsUrl, `${replica.url}/lark/events`, `${child!.url}/lark/events`];
    const first = await stack.sim.appStatusChange(appId, 't-rep-0', 'stop_by_tenant');
    expect(first.status).toBe(200);
    const retries = await Promise.all(Array.from({ length: 30 }, (_, i) => stack.sim.redeliver(first.uuid, urls[i % 3])));
    expect(retries.every((r) => r.status === 200)).toBe(true);
    await waitFor(async () => {
      const row = await stack.db.db.selectFrom('lark_events').select('status').where('event_id', '=', first.uuid).executeTakeFirst();
      return row?.status === 'processed';
    }, 10_000, 'the status change to be processed');
    expect(await stack.db.db.selectFrom('lark_events').select('id').where('event_id', '=', first.uuid).execute()).toHaveLength(1);
    const audit = await stack.db.db.selectFrom('tenant_audit').select('action').where('event_id', '=', first.uuid).execute();
    expect(audit).toEqual([{ action: 'paused' }]);
    expect((await stack.db.db.selectFrom('tenants').select('status').where('tenant_key', '=', 't-rep-0').executeTakeFirstOrThrow()).status).toBe('paused');
  });

  it('the separate process logged no secret', async () => {
    const text = child!.output.join('');
    expect(text).toContain('larksync is listening');
    for (const secret of [STORE_APP.appSecret, STORE_APP.encryptKey, stack.env.API_TOKEN!, stack.env.ENCRYPTION_KEY!]) {
      expect(text).not.toContain(secret);
    }
    for (const key of ['t-proc-0', 't-proc-1']) {
      for (const value of stack.sim.validTenantTokens(appId, key)) expect(text).not.toContain(value);
    }
  });
});

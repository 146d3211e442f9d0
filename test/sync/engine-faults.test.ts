import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { defaultRetryPolicy } from '../../src/sync/sync-lark-client.js';
import type { SyncRunRow } from '../../src/sync/sync.tables.js';
import { startStack, type Stack, whenReady, openTenant } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { finishedRun } from '../helpers/runs.js';
import { streamTables } from '../helpers/db.js';

const TENANT = 'tenant-faults-1';
const USERS = '/open-apis/contact/v3/users/find_by_department';


async function run(stack: Stack): Promise<SyncRunRow> {
  const { run: r } = await stack.larksync.services.sync.trigger(TENANT, 'contact', 'full', 'api');
  return finishedRun(stack, r.id);
}

async function userCount(stack: Stack): Promise<number> {
  const res = await sql<{ n: number }>`select count(*)::int as n from contact_users where tenant_key = ${TENANT} and deleted_at is null`.execute(stack.db.db);
  return res.rows[0]?.n ?? 0;
}

describe('sync engine under upstream faults (contact module as the subject)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      encrypt: false,
      data: { enforceRateLimits: false },
      start: {
        rateLimitScale: 50,
        engineOptions: { retry: { ...defaultRetryPolicy, baseDelayMs: 10, maxDelayMs: 50, timeoutMs: 400 } },
      },
    });
    await whenReady(stack);
    await openTenant(stack, TENANT);
    await stack.larksync.services.connectors.put(TENANT, 'contact', { enabled: true, config: {} }, 'store');
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(() => {
    stack.sim.clearFaults();
    stack.data.onPage = undefined;
  });

  it('waits out throttling (HTTP 429 and HTTP 400 with 99991400) using x-ogw-ratelimit-reset, then completes', async () => {
    stack.sim.injectFault({ path: USERS, status: 429, code: 99991400, headers: { 'x-ogw-ratelimit-reset': '0', 'x-ogw-ratelimit-limit': '50' }, count: 2 });
    stack.sim.injectFault({ path: USERS, status: 400, code: 99991400, count: 1 });
    const r = await run(stack);
    expect(r.status).toBe('succeeded');
    expect(r.throttled_waits).toBe(3);
    expect(await userCount(stack)).toBe(stack.data.contact(TENANT).users.size);
    const metrics = await (await fetch(`${stack.larksync.url}/metrics`)).text();
    expect(metrics).toMatch(/larksync_sync_throttled_waits_total 3\b/);
    expect(metrics).toMatch(/larksync_sync_runs_total\{module="contact",status="succeeded",error_class=""\} 1\b/);
    expect(metrics).toMatch(/larksync_sync_rows_total\{stream="contact_users"\} \d+/);
  });

  it('retries 5xx and timeouts with backoff and still completes', async () => {
    stack.sim.injectFault({ path: USERS, status: 500, code: 1500, count: 2 });
    stack.sim.injectFault({ path: USERS, status: 502, count: 1 });
    const r = await run(stack);
    expect(r.status).toBe('succeeded');

    stack.sim.injectFault({ path: USERS, delayMs: 900, count: 2 });
    const slow = await run(stack);
    expect(slow.status).toBe('succeeded');
  });

  it('fails a run after a bounded number of tries, with a stable error class', async () => {
    stack.sim.resetCounts();
    stack.sim.injectFault({ path: USERS, status: 503, code: 1503, count: 1000 });
    const r = await run(stack);
    expect(r.status).toBe('failed');
    expect(r.error_class).toBe('upstream_unavailable');
    // Count by code: calls the previous test abandoned on timeout may still land in the log.
    expect(stack.sim.count(USERS, 1503)).toBe(defaultRetryPolicy.maxAttempts);
  });

  it('survives a token revoked mid-run with exactly one extra mint', async () => {
    let pages = 0;
    stack.data.onPage = (api) => {
      pages += 1;
      if (api === 'contact.users.find_by_department' && pages === 3) stack.sim.revokeAllTokens();
    };
    const TENANT_MINT = '/open-apis/auth/v3/tenant_access_token';
    const APP_MINT = '/open-apis/auth/v3/app_access_token';
    const before = { tenant: stack.sim.count(TENANT_MINT, 0), app: stack.sim.count(APP_MINT, 0) };
    const r = await run(stack);
    expect(r.status).toBe('succeeded');
    // Revoking every token also kills the app token: the tenant mint is refused once with
    // 99991664, the app token is re-minted, and exactly one new tenant token is issued.
    expect(stack.sim.count(TENANT_MINT, 0) - before.tenant).toBe(1);
    expect(stack.sim.count(APP_MINT, 0) - before.app).toBe(1);
    expect(stack.sim.count(TENANT_MINT, 99991664)).toBe(1);
  });

  it('stops with permission_denied when the app lacks a scope', async () => {
    stack.sim.injectFault({ path: USERS, status: 400, code: 99991672, msg: 'Access denied. One of the following scopes is required: [contact:user.base:readonly]', count: 1 });
    const r = await run(stack);
    expect(r.status).toBe('failed');
    expect(r.error_class).toBe('permission_denied');
  });

  it('an edit between pages is picked up by the next run, and a failed run rewrites nothing twice', async () => {
    const dir = stack.data.contact(TENANT);
    const victim = [...dir.users.values()].find((u) => !u.department_ids.includes('0'))!;
    stack.data.onPage = () => {
      victim.name = 'Renamed Between Pages';
    };
    expect((await run(stack)).status).toBe('succeeded');
    const row = await streamTables(stack.db.db).selectFrom('contact_users').select(['raw']).where('record_key', '=', victim.open_id).executeTakeFirstOrThrow();
    expect((row.raw as { name: string }).name).toBe('Renamed Between Pages');
  });

  it('cancel stops a running run: no page is committed after the cancel', async () => {
    stack.sim.injectFault({ path: USERS, delayMs: 150, count: 1000 });
    const { run: r } = await stack.larksync.services.sync.trigger(TENANT, 'contact', 'full', 'api');
    await waitFor(async () => ((await stack.larksync.services.sync.get(r.id))?.pages ?? 0) >= 2, 10_000, 'two pages');
    const cancelled = await stack.larksync.services.sync.cancel(r.id);
    expect(cancelled?.status).toBe('cancelled');
    const pagesAtCancel = cancelled?.pages ?? 0;
    await new Promise((res) => setTimeout(res, 600));
    const later = await stack.larksync.services.sync.get(r.id);
    expect(later?.status).toBe('cancelled');
    expect(later?.pages).toBe(pagesAtCancel);
  });
});

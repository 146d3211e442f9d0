import { sql } from 'kysely';
import { expect } from 'vitest';
import { STORE_APP, startStack, type Stack, whenReady } from './stack.js';
import { waitFor } from './wait.js';
import type { SyncRunView } from '../../src/sync/sync.service.js';

/** The run view of /api/v1/syncs. */
export type RunJson = SyncRunView;

export interface ApiAnswer<T> {
  status: number;
  body: T;
}

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const USERS_PATH = '/open-apis/contact/v3/users/find_by_department';
const FINISHED = ['succeeded', 'partial', 'failed', 'cancelled'];

/** A stack whose simulator serves data as fast as larksync can ask (the suites here test the API, not pacing). */
export async function startFastStack(): Promise<Stack> {
  const stack = await startStack({ data: { enforceRateLimits: false }, start: { rateLimitScale: 50 } });
  await whenReady(stack);
  return stack;
}

export async function call<T = Record<string, unknown>>(stack: Stack, method: string, path: string, body?: unknown): Promise<ApiAnswer<T>> {
  const res = await stack.api(method, path, body);
  return { status: res.status, body: (await res.json()) as T };
}

/** Asserts the error envelope and returns the message. */
export async function expectError(stack: Stack, method: string, path: string, body: unknown, status: number, code: string): Promise<string> {
  const res = await call<{ error: { code: string; message: string } }>(stack, method, path, body);
  expect(res.status, `${method} ${path}`).toBe(status);
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(res.body.error.code).toBe(code);
  return res.body.error.message;
}

/** Installs the store app for a tenant, as Lark would, and waits for larksync to know it. */
export async function installStoreTenant(stack: Stack, tenantKey: string): Promise<void> {
  const push = await stack.sim.appOpen(STORE_APP.appId, tenantKey);
  expect(push.status).toBe(200);
  await waitFor(async () => (await stack.api('GET', `/api/v1/tenants/${tenantKey}`)).status === 200, 10_000, `tenant ${tenantKey}`);
}

export async function tenantStatusBecomes(stack: Stack, tenantKey: string, status: string): Promise<void> {
  await waitFor(
    async () => (await call<{ status: string }>(stack, 'GET', `/api/v1/tenants/${tenantKey}`)).body.status === status,
    10_000,
    `tenant ${tenantKey} ${status}`,
  );
}

export async function getRun(stack: Stack, id: string): Promise<RunJson> {
  const res = await call<RunJson>(stack, 'GET', `/api/v1/syncs/${id}`);
  expect(res.status).toBe(200);
  return res.body;
}

export async function runWhere(stack: Stack, id: string, ok: (r: RunJson) => boolean, label: string, timeoutMs = 15_000): Promise<RunJson> {
  return waitFor(async () => {
    const run = await getRun(stack, id);
    return ok(run) ? run : undefined;
  }, timeoutMs, `run ${id} ${label}`);
}

export const runFinished = (stack: Stack, id: string) => runWhere(stack, id, (r) => FINISHED.includes(r.status), 'finished');

/** Triggers a run through the API and waits until it has finished. */
export async function syncToEnd(stack: Stack, tenantKey: string, module: string, mode: 'incremental' | 'full' = 'full'): Promise<RunJson> {
  const started = await call<RunJson>(stack, 'POST', `/api/v1/tenants/${tenantKey}/syncs`, { module, mode });
  expect(started.status).toBe(202);
  return runFinished(stack, started.body.id);
}

/**
 * Waits until the records feed can serve everything committed to these streams for the tenant: the
 * feed holds back rows of transactions below the oldest one still open anywhere (so that no row
 * can appear behind a cursor), which on a busy database lags commits by the length of the
 * transactions around them.
 */
export async function feedCaughtUp(stack: Stack, tenantKey: string, streams: string[]): Promise<void> {
  await waitFor(async () => {
    for (const stream of streams) {
      const res = await sql<{ ok: boolean }>`
        select coalesce(max(change_xid) < (select feed_horizon()), true) as ok
          from ${sql.table(stream)} where tenant_key = ${tenantKey}`.execute(stack.db.db);
      if (!res.rows[0]?.ok) return false;
    }
    return true;
  }, 10_000, 'the records feed to catch up with the commits');
}

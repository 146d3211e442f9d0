import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Larksync } from '../../src/bootstrap.js';
import { startStack, STORE_APP, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

async function admin<T>(run: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('adminDatabaseUrl') });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

describe('GET /healthz and /readyz', () => {
  let stack: Stack;
  let worker: Larksync | undefined;
  const get = async (path: string) => {
    const res = await fetch(`${stack.larksync.url}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    // No worker here: the pushed app_ticket is stored but not applied until a worker runs.
    stack = await startStack({ start: { worker: false } });
  });
  afterAll(async () => {
    await worker?.stop().catch(() => undefined);
    await stack?.stop();
  });

  it('is not ready (503 waiting_for_app_ticket) until an app_ticket is known, then ready', async () => {
    expect(await get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    // Startup asked Lark for a ticket and Lark pushed it: it sits in the queue, unapplied.
    await waitFor(
      async () => (await stack.db.db.selectFrom('lark_events').select('id').where('event_type', '=', 'app_ticket').execute()).length === 1,
      5_000,
      'the pushed app_ticket stored',
    );
    expect(stack.sim.count('/open-apis/auth/v3/app_ticket/resend')).toBe(1);
    expect(await get('/readyz')).toEqual({ status: 503, body: { status: 'waiting_for_app_ticket', storeApp: 'configured', pushes: 'signed' } });

    // A second process with a worker applies the event; the first one turns ready.
    worker = await stack.startReplica({ listen: false, worker: true });
    await waitFor(async () => (await get('/readyz')).status === 200, 10_000, 'ready');
    expect(await get('/readyz')).toEqual({ status: 200, body: { status: 'ready', storeApp: 'configured', pushes: 'signed' } });
    const ticket = await stack.db.db.selectFrom('app_tickets').select('app_id').execute();
    expect(ticket).toEqual([{ app_id: STORE_APP.appId }]);
  });

  it('is not ready (503 database_unreachable) while the database refuses connections, and recovers', async () => {
    await worker?.stop();
    worker = undefined;
    const name = stack.db.name;
    // Refuse new connections (even a superuser's) and cut the open ones: the database is gone for us.
    await admin(async (c) => {
      await c.query(`alter database ${name} allow_connections false`);
      await c.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
    });
    try {
      const started = Date.now();
      expect(await get('/readyz')).toEqual({ status: 503, body: { status: 'database_unreachable', storeApp: 'configured', pushes: 'signed' } });
      expect(Date.now() - started).toBeLessThan(3_000);
      // Liveness does not depend on the database: restarting the process would not help.
      expect(await get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
      const api = await stack.api('GET', '/api/v1/tenants');
      expect(api.status).toBe(500);
      expect(await api.json()).toMatchObject({ error: { code: 'internal_error' } });
    } finally {
      await admin((c) => c.query(`alter database ${name} allow_connections true`));
    }
    await waitFor(async () => (await get('/readyz')).status === 200, 5_000, 'ready again');
    expect((await stack.api('GET', '/api/v1/tenants')).status).toBe(200);
  });

  it('is ready without an app_ticket when no store app is configured', async () => {
    const { services } = stack.larksync;
    const app = await buildApp({ ...services, config: { ...services.config, storeApp: undefined } }, { logger: false });
    try {
      await stack.db.db.deleteFrom('app_tickets').execute();
      const res = await app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ready', storeApp: 'not_configured', pushes: 'not_configured' });
      // The configured app, in contrast, is back to waiting.
      expect(await get('/readyz')).toEqual({ status: 503, body: { status: 'waiting_for_app_ticket', storeApp: 'configured', pushes: 'signed' } });
    } finally {
      await app.close();
    }
  });
});

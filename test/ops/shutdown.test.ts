import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS, LarkSimulator } from '../../simulator/lark-simulator.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const SLOW_MS = 2_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a brand-new TCP connection (no keep-alive pool), so "refused" really means not listening. */
function freshGet(url: string): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

async function refusedSoon(url: string): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    const r = await freshGet(url);
    if ('error' in r && r.error === 'ECONNREFUSED') return true;
    await sleep(25);
  }
  return false;
}

describe('graceful shutdown', () => {
  describe('in process: larksync.stop()', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack();
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('finishes an in-flight request (with its database writes) while refusing new connections', async () => {
      stack.sim.addApp({ appId: 'cli_slow', appSecret: 'slow-secret', kind: 'custom', verificationToken: 'v', tenantKey: 'tenant-slow' });
      // Lark takes its time: the registration is still waiting for it when the shutdown starts.
      stack.sim.injectFault({ path: AUTH_PATHS.tenantAccessTokenInternal, delayMs: SLOW_MS });
      const events: string[] = [];
      const inflight = stack.api('POST', '/api/v1/apps', { appId: 'cli_slow', appSecret: 'slow-secret' }).then(async (res) => {
        events.push('response');
        return { status: res.status, body: await res.json() };
      });
      // Only once larksync is handling it is the request "in flight" (the shutdown must wait for it).
      await waitFor(() => stack.logs.some((l) => l.includes('incoming request') && l.includes('"url":"/api/v1/apps"')), 5_000, 'request received');
      const stopped = stack.larksync.stop().then(() => events.push('stopped'));

      expect(await refusedSoon(`${stack.larksync.url}/healthz`)).toBe(true);
      expect(events).toEqual([]);

      expect(await inflight).toEqual({ status: 201, body: { appId: 'cli_slow', tenantKey: 'tenant-slow', type: 'custom' } });
      // Resolves promptly once the answer is out: the busy keep-alive connection is not left open.
      const started = Date.now();
      await stopped;
      expect(Date.now() - started).toBeLessThan(2_000);
      const rows = await stack.db.db.selectFrom('tenants').select(['tenant_key', 'app_id']).where('tenant_key', '=', 'tenant-slow').execute();
      expect(rows).toEqual([{ tenant_key: 'tenant-slow', app_id: 'cli_slow' }]);
    });
  });

  describe('the real process: SIGTERM', () => {
    let sim: LarkSimulator;
    let db: TestDatabase;
    let child: ChildProcess | undefined;

    beforeAll(async () => {
      sim = new LarkSimulator();
      await sim.start();
      db = await createTestDatabase({ migrate: false });
    });
    afterAll(async () => {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await sim?.stop();
      await db?.drop();
    });

    it('answers the in-flight request, stops listening, and exits 0', async () => {
      const apiToken = 'shutdown-test-api-token';
      child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
        cwd: process.cwd(),
        env: {
          PATH: process.env.PATH,
          DATABASE_URL: db.url,
          ENCRYPTION_KEY: randomBytes(32).toString('base64'),
          API_TOKEN: apiToken,
          LARK_DOMAIN: sim.url,
          // The simulator runs on 127.0.0.1 over http, which production (DATABASE_URL set) refuses by default.
          ALLOW_PRIVATE_LARK_DOMAINS: '1',
          PORT: '0',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child?.on('exit', (code, signal) => resolve({ code, signal })),
      );

      const deadline = Date.now() + 20_000;
      let url: string | undefined;
      while (!url && Date.now() < deadline) {
        url = /"url":"(http:\/\/127\.0\.0\.1:\d+)".*larksync is listening/.exec(stdout)?.[1];
        if (child.exitCode !== null) break;
        await sleep(50);
      }
      expect(url, `server did not start: ${stderr}${stdout}`).toBeDefined();

      sim.addApp({ appId: 'cli_sigterm', appSecret: 'sigterm-secret', kind: 'custom', verificationToken: 'v', tenantKey: 'tenant-sigterm' });
      sim.injectFault({ path: AUTH_PATHS.tenantAccessTokenInternal, delayMs: SLOW_MS });
      const inflight = fetch(`${url}/api/v1/apps`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ appId: 'cli_sigterm', appSecret: 'sigterm-secret' }),
      }).then(async (res) => ({ status: res.status, body: await res.json() }));
      await waitFor(() => stdout.includes('"url":"/api/v1/apps"'), 5_000, 'request received');
      child.kill('SIGTERM');

      expect(await refusedSoon(`${url}/healthz`)).toBe(true);
      expect(await inflight).toEqual({ status: 201, body: { appId: 'cli_sigterm', tenantKey: 'tenant-sigterm', type: 'custom' } });
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(stdout).toContain('shutting down: finishing in-flight requests');
      expect(stderr).toBe('');
      const rows = await db.db.selectFrom('tenants').select('app_id').where('tenant_key', '=', 'tenant-sigterm').execute();
      expect(rows).toEqual([{ app_id: 'cli_sigterm' }]);
    });
  });
});

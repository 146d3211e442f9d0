import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLarksync, type Larksync } from '../../src/bootstrap.js';
import { ConfigError, loadConfig } from '../../src/config/env.js';
import { Sealer } from '../../src/crypto/sealer.js';
import { SEALED_COLUMNS } from '../../src/keys/reseal.js';
import { toCredentials } from '../../src/apps/app-credentials.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { openTenant, startStack, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const key = () => randomBytes(32).toString('base64');
const [K1, K2, K3, K9] = [key(), key(), key(), key()];
const sealerOf = (k: string) => new Sealer(Buffer.from(k, 'base64'));

const CUSTOM = { appId: 'cli_custom_keys_01', appSecret: 'custom-secret-keys-never-shown', tenantKey: 'tenant-custom-keys' };

/** How many sealed values each key holds, over every sealed column. */
async function sealedUnder(db: TestDatabase, keys: Record<string, string>): Promise<Record<string, number>> {
  const counts: Record<string, number> = Object.fromEntries([...Object.keys(keys), 'other'].map((k) => [k, 0]));
  for (const spec of SEALED_COLUMNS) {
    const { rows } = await sql<{ v: Buffer }>`select ${sql.ref(spec.column)} as v from ${sql.table(spec.table)} where ${sql.ref(spec.column)} is not null`.execute(db.db);
    for (const { v } of rows) {
      const name = Object.entries(keys).find(([, k]) => sealerOf(k).isUnderCurrentKey(v))?.[0] ?? 'other';
      counts[name] = (counts[name] ?? 0) + 1;
    }
  }
  return counts;
}

function runNode(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('encryption keys: canary and re-seal', () => {
  let db: TestDatabase;
  let stack: Stack;
  const started: Larksync[] = [];
  const start = (env: Record<string, string>, worker = false) =>
    startLarksync(loadConfig({ ...stack.env, PORT: '0', ...env }), {
      log: pino({ level: 'silent' }),
      worker,
      workerPollInterval: 100,
      workerOptions: { cron: false },
    }).then((l) => {
      started.push(l);
      return l;
    });

  beforeAll(async () => {
    db = await createTestDatabase();
    // Some of everything sealed, under K1: the store app's secret, its ticket, tokens, stored events, a custom app.
    stack = await startStack({ db, env: { ENCRYPTION_KEY: K1 } });
    await whenReady(stack);
    await openTenant(stack, 'tenant-keys-1');
    await stack.larksync.services.tokens.getTenantAccessToken('tenant-keys-1');
    stack.sim.addApp({ ...CUSTOM, kind: 'custom', verificationToken: 'vt-keys' });
    // With its push keys: two more sealed values of the app.
    const registered = await stack.api('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret, verificationToken: 'vt-keys', encryptKey: 'ek-keys' });
    expect(registered.status).toBe(201);
    await stack.larksync.stop();
  });
  afterAll(async () => {
    for (const l of started) await l.stop().catch(() => undefined);
    await stack?.stop();
    await db?.drop();
  });

  it('refuses to start with a key that does not open the data, naming ENCRYPTION_KEY', async () => {
    const err = await start({ ENCRYPTION_KEY: K2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('ENCRYPTION_KEY');
    // Nothing was re-sealed under the wrong key on the way.
    expect(await sealedUnder(db, { K1, K2 })).toMatchObject({ K2: 0, other: 0 });
  });

  it('as a process: one stderr line naming ENCRYPTION_KEY, never a key, exit 1', async () => {
    const res = await runNode(['src/server.ts'], { ...stack.env, PORT: '0', ENCRYPTION_KEY: K2, LOG_LEVEL: 'warn' });
    expect(res.code).toBe(1);
    const lines = res.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^larksync: invalid configuration: ENCRYPTION_KEY: /);
    for (const k of [K1, K2]) expect(res.stdout + res.stderr).not.toContain(k);
  });

  it('a database from before the canary is probed through an app secret', async () => {
    await db.db.deleteFrom('encryption_canary').execute();
    expect(await start({ ENCRYPTION_KEY: K2 }).catch((e: unknown) => e)).toBeInstanceOf(ConfigError);
    expect(await db.db.selectFrom('encryption_canary').select('id').execute()).toEqual([]);
    // The right key seals a new canary.
    await (await start({ ENCRYPTION_KEY: K1 })).stop();
    expect(await db.db.selectFrom('encryption_canary').select('id').execute()).toHaveLength(1);
  });

  it('rotation: with the old key retired, the start-up job re-seals everything; then the old key can go', async () => {
    const before = await sealedUnder(db, { K1, K2 });
    expect(before.K1).toBeGreaterThan(5);
    const rotating = await start({ ENCRYPTION_KEY: K2, ENCRYPTION_KEYS_RETIRED: K1 }, true);
    await waitFor(async () => (await sealedUnder(db, { K1, K2 })).K1 === 0, 10_000, 'every value re-sealed under K2');
    await rotating.stop();
    expect(await sealedUnder(db, { K1, K2 })).toMatchObject({ K1: 0, K2: before.K1, other: 0 });

    // K1 is gone from the configuration: everything still opens.
    const after = await start({ ENCRYPTION_KEY: K2 });
    const row = await db.db.selectFrom('apps').selectAll().where('app_id', '=', CUSTOM.appId).executeTakeFirstOrThrow();
    expect(toCredentials(row, after.services.sealer).secret()).toBe(CUSTOM.appSecret);
    expect(await after.services.apps.pushKeys(CUSTOM.appId)).toMatchObject({ appId: CUSTOM.appId, verificationToken: 'vt-keys', encryptKey: 'ek-keys' });
    const mints = stack.sim.count('/open-apis/auth/v3/tenant_access_token');
    // The stored token opens (no new mint).
    expect(await after.services.tokens.getTenantAccessToken('tenant-keys-1')).toMatch(/^t-/);
    expect(stack.sim.count('/open-apis/auth/v3/tenant_access_token')).toBe(mints);
    await after.stop();
  });

  it('`npm run reseal` re-seals under the current key and says when a value opens with no key', async () => {
    const env = { DATABASE_URL: db.url, ENCRYPTION_KEY: K3, ENCRYPTION_KEYS_RETIRED: K2 };
    const res = await runNode(['src/keys/reseal-cli.ts'], env);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^apps: 2 re-sealed, 0 unreadable$/m);
    // The custom app's Verification Token and Encrypt Key (a line per sealed column).
    expect(res.stdout.match(/^apps: 1 re-sealed, 0 unreadable$/gm)).toHaveLength(2);
    expect(res.stdout).toContain('every sealed value is under the current ENCRYPTION_KEY');
    expect(await sealedUnder(db, { K2, K3 })).toMatchObject({ K2: 0, other: 0 });

    // A value under a key nobody holds any more is reported, and left alone.
    const stray = sealerOf(K9).seal('{}', 'lark_events.payload:stray-1');
    await sql`insert into lark_events (event_id, schema_version, event_type, payload_sealed, status)
              values ('stray-1', 'v2', 'x', ${stray}, 'processed')`.execute(db.db);
    const again = await runNode(['src/keys/reseal-cli.ts'], env);
    expect(again.code).toBe(2);
    expect(again.stdout).toMatch(/^lark_events: 0 re-sealed, 1 unreadable$/m);
    for (const k of [K2, K3, K9]) expect(again.stdout + again.stderr).not.toContain(k);
  });
});

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/env.js';

const KEY = randomBytes(32).toString('base64');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts the real entry point with exactly `env` (plus PATH), as a deploy would. */
function runServer(env: Record<string, string>, timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: process.cwd(),
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server still running after ${timeoutMs} ms: ${stdout}${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

describe('configuration is validated at start', () => {
  const DB = 'postgres://larksync:db-password-not-to-print@127.0.0.1:5432/larksync';
  const cases: Array<{ name: string; env: Record<string, string>; variable: string; secret?: string }> = [
    { name: 'PORT that is not a number', env: { PORT: 'abc-port' }, variable: 'PORT', secret: 'abc-port' },
    { name: 'LARK_DOMAIN with another scheme', env: { LARK_DOMAIN: 'ftp://x.example' }, variable: 'LARK_DOMAIN', secret: 'x.example' },
    {
      name: 'ENCRYPTION_KEY too short (DATABASE_URL set)',
      env: { DATABASE_URL: DB, ENCRYPTION_KEY: 'short-key-value' },
      variable: 'ENCRYPTION_KEY',
      secret: 'short-key-value',
    },
    { name: 'DATABASE_URL without ENCRYPTION_KEY', env: { DATABASE_URL: DB }, variable: 'ENCRYPTION_KEY', secret: 'db-password-not-to-print' },
    { name: 'only LARK_APP_ID of the store app', env: { LARK_APP_ID: 'cli_only_id_set' }, variable: 'LARK_APP_SECRET', secret: 'cli_only_id_set' },
    {
      name: 'DATABASE_URL that is not postgres',
      env: { DATABASE_URL: 'mysql://root:mysql-pass-value@db/x', ENCRYPTION_KEY: KEY },
      variable: 'DATABASE_URL',
      secret: 'mysql-pass-value',
    },
    { name: 'API_TOKEN too short to be safe', env: { API_TOKEN: 'tok-12345' }, variable: 'API_TOKEN', secret: 'tok-12345' },
  ];

  it.concurrent.each(cases)('exits 1 with one stderr line naming the variable: $name', async ({ env, variable, secret }) => {
    const run = await runServer(env);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(new RegExp(`^larksync: invalid configuration: ${variable}: expected[^\\n]+\\n$|^larksync: invalid configuration: ${variable}: required[^\\n]+\\n$`));
    expect(run.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    if (secret) expect(run.stderr).not.toContain(secret);
  });

  it('exits 1 without printing the database password when the database cannot be reached', async () => {
    const run = await runServer({
      DATABASE_URL: `postgres://larksync:pg-pass-never-printed@127.0.0.1:${await closedPort()}/larksync`,
      ENCRYPTION_KEY: KEY,
      API_TOKEN: 'api-token-never-printed',
      PORT: '0',
      HOST: '127.0.0.1',
    });
    expect(run.code).toBe(1);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; errMessage?: string });
    expect(lines.at(-1)).toMatchObject({ level: 60, msg: 'larksync failed to start', errMessage: expect.stringContaining('ECONNREFUSED') });
    for (const text of [run.stdout, run.stderr]) {
      expect(text).not.toContain('pg-pass-never-printed');
      expect(text).not.toContain('api-token-never-printed');
      expect(text).not.toContain(KEY);
    }
  });
});

describe('loadConfig', () => {
  it('has safe defaults for everything optional', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: undefined,
      namedStatements: true,
      port: 3000,
      // Embedded (no DATABASE_URL): the address `npm start` serves at, so sign-in works out of the box.
      publicUrl: 'http://localhost:3000',
      host: '0.0.0.0',
      storeApp: undefined,
      larkDomain: 'feishu',
      encryptionKey: undefined,
      retiredEncryptionKeys: [],
      apiToken: undefined,
      apiRateLimit: 1200,
      dataDir: './data',
      // Unset: the embedded PostgreSQL listens on its Unix socket only.
      embeddedPgPort: undefined,
      logLevel: 'info',
      workerConcurrency: 5,
      // No DATABASE_URL: a local run, where a simulator on 127.0.0.1 is the point.
      allowPrivateLarkDomains: true,
      // The same for webhook receivers on this machine.
      allowPrivateWebhooks: true,
      webhookConcurrency: 10,
      heapGrowingPercent: 50,
      allowPrivateSinks: true,
      metricsToken: undefined,
      apiDocs: true,
      trustProxy: 0,
      retentionDays: 90,
      uninstallPurgeDays: 30,
    });
  });

  it('treats an empty variable as unset (PORT= in a template does not mean port 0)', () => {
    const blank = Object.fromEntries(
      [
        'PORT', 'HOST', 'LARK_DOMAIN', 'API_RATE_LIMIT', 'DATA_DIR', 'EMBEDDED_PG_PORT', 'LOG_LEVEL', 'WORKER_CONCURRENCY', 'API_TOKEN', 'DATABASE_URL', 'LARK_APP_ID',
        'ALLOW_PRIVATE_LARK_DOMAINS', 'METRICS_TOKEN', 'API_DOCS', 'TRUST_PROXY', 'RETENTION_DAYS', 'UNINSTALL_PURGE_DAYS',
        'ALLOW_PRIVATE_WEBHOOKS', 'WEBHOOK_CONCURRENCY', 'HEAP_GROWING_PERCENT',
      ].map(
        (k) => [k, ' '],
      ),
    );
    expect(loadConfig(blank)).toEqual(loadConfig({}));
  });

  it('reads every public variable', () => {
    const hex = randomBytes(32).toString('hex');
    const config = loadConfig({
      DATABASE_URL: 'postgresql://u:p@db:5432/larksync',
      DATABASE_NAMED_STATEMENTS: '0',
      PORT: '8080',
      HOST: '::',
      LARK_APP_ID: 'cli_a',
      LARK_APP_SECRET: 'secret',
      LARK_VERIFICATION_TOKEN: 'vt',
      LARK_ENCRYPT_KEY: 'ek',
      LARK_DOMAIN: 'lark',
      ENCRYPTION_KEY: hex,
      ENCRYPTION_KEYS_RETIRED: ` ${KEY} ,`,
      API_TOKEN: 'a'.repeat(16),
      API_RATE_LIMIT: '60',
      DATA_DIR: '/var/lib/larksync',
      EMBEDDED_PG_PORT: '5433',
      LOG_LEVEL: 'warn',
      WORKER_CONCURRENCY: '8',
      ALLOW_PRIVATE_LARK_DOMAINS: '1',
      ALLOW_PRIVATE_WEBHOOKS: '1',
      WEBHOOK_CONCURRENCY: '32',
      HEAP_GROWING_PERCENT: '0',
      ALLOW_PRIVATE_SINKS: '1',
      METRICS_TOKEN: 'm'.repeat(16),
      API_DOCS: 'false',
      TRUST_PROXY: '10.0.0.0/8, fdaa::/16,loopback',
      RETENTION_DAYS: '30',
      UNINSTALL_PURGE_DAYS: '0',
    });
    expect(config).toEqual({
      databaseUrl: 'postgresql://u:p@db:5432/larksync',
      namedStatements: false,
      port: 8080,
      host: '::',
      storeApp: { appId: 'cli_a', appSecret: 'secret', verificationToken: 'vt', encryptKey: 'ek' },
      larkDomain: 'lark',
      encryptionKey: hex,
      retiredEncryptionKeys: [KEY],
      apiToken: 'a'.repeat(16),
      apiRateLimit: 60,
      dataDir: '/var/lib/larksync',
      embeddedPgPort: 5433,
      logLevel: 'warn',
      workerConcurrency: 8,
      allowPrivateLarkDomains: true,
      allowPrivateWebhooks: true,
      webhookConcurrency: 32,
      heapGrowingPercent: 0,
      allowPrivateSinks: true,
      metricsToken: 'm'.repeat(16),
      apiDocs: false,
      trustProxy: ['10.0.0.0/8', 'fdaa::/16', 'loopback'],
      retentionDays: 30,
      uninstallPurgeDays: 0,
    });
    expect(loadConfig({ LARK_DOMAIN: 'http://127.0.0.1:9999' }).larkDomain).toBe('http://127.0.0.1:9999');
    // The canonical form is the origin.
    expect(loadConfig({ LARK_DOMAIN: 'http://127.0.0.1:9999/' }).larkDomain).toBe('http://127.0.0.1:9999');
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
  });

  it.each([
    ['PORT', '70000'],
    ['PORT', '3000.5'],
    ['API_RATE_LIMIT', '0'],
    ['API_RATE_LIMIT', 'fast'],
    ['EMBEDDED_PG_PORT', '0'],
    ['METRICS_TOKEN', 'short-metrics'],
    ['API_DOCS', 'maybe-later'],
    ['ALLOW_PRIVATE_LARK_DOMAINS', 'yes-please'],
    ['ALLOW_PRIVATE_WEBHOOKS', 'yes-please'],
    ['WEBHOOK_CONCURRENCY', 'many'],
    ['HEAP_GROWING_PERCENT', '-5'],
    ['TRUST_PROXY', 'true'],
    ['TRUST_PROXY', '10.0.0.0/33'],
    ['TRUST_PROXY', '99'],
    ['RETENTION_DAYS', 'none'],
    ['UNINSTALL_PURGE_DAYS', '-1'],
    ['LOG_LEVEL', 'loud'],
    ['WORKER_CONCURRENCY', '-7'],
    ['WORKER_CONCURRENCY', '1000'],
    ['LARK_DOMAIN', 'open.feishu.cn'],
    ['ENCRYPTION_KEY', 'zz'.repeat(32)],
    ['ENCRYPTION_KEYS_RETIRED', `${KEY},not-a-key-value`],
    ['LARK_VERIFICATION_TOKEN', 'only-the-token-set'],
  ])('names %s (and not its value %s) in the error', (variable, value) => {
    let error: unknown;
    try {
      loadConfig({ [variable]: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    const named = variable === 'LARK_VERIFICATION_TOKEN' ? 'LARK_APP_ID' : variable;
    expect(e.variable).toBe(named);
    expect(e.message).toMatch(new RegExp(`^invalid configuration: ${named}: (expected|required) `));
    expect(e.message).not.toContain(value);
    expect(e.message).not.toContain('\n');
  });

  describe('LARK_DOMAIN in production (DATABASE_URL set)', () => {
    const prod = { DATABASE_URL: 'postgres://u:p@db/larksync', ENCRYPTION_KEY: KEY };
    it.each([
      ['http://open.example.com', 'https'],
      ['https://127.0.0.1:9999', 'private'],
      ['https://10.1.2.3', 'private'],
      ['https://169.254.169.254', 'private'],
      ['https://[::1]:8443', 'private'],
      ['https://[::ffff:192.168.0.1]', 'private'],
      ['https://localhost:8443', 'private'],
      ['https://open.example.com/latest/meta-data', 'path'],
      ['https://open.example.com/?x=', 'query'],
      ['https://open.example.com#frag', 'fragment'],
      ['https://user:pw-not-shown@open.example.com', 'credentials'],
    ])('refuses %s, saying why (%s) without echoing it', (domain, why) => {
      let error: unknown;
      try {
        loadConfig({ ...prod, LARK_DOMAIN: domain });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toBe('LARK_DOMAIN');
      expect((error as ConfigError).message).toContain(why);
      expect((error as ConfigError).message).not.toContain(domain);
      expect((error as ConfigError).message).not.toContain('pw-not-shown');
    });

    it('accepts the brands and a public https origin, and private hosts with ALLOW_PRIVATE_LARK_DOMAINS=1', () => {
      expect(loadConfig({ ...prod, LARK_DOMAIN: 'lark' }).larkDomain).toBe('lark');
      expect(loadConfig({ ...prod, LARK_DOMAIN: 'https://open.example.com:8443/' })).toMatchObject({
        larkDomain: 'https://open.example.com:8443',
        allowPrivateLarkDomains: false,
      });
      expect(loadConfig({ ...prod, LARK_DOMAIN: 'http://127.0.0.1:9999', ALLOW_PRIVATE_LARK_DOMAINS: '1' })).toMatchObject({
        larkDomain: 'http://127.0.0.1:9999',
        allowPrivateLarkDomains: true,
        // Each flag opens its own door: Lark domains are not sinks.
        allowPrivateSinks: false,
      });
    });

    it('allows private webhook receivers only with ALLOW_PRIVATE_WEBHOOKS=1', () => {
      expect(loadConfig(prod).allowPrivateWebhooks).toBe(false);
      expect(loadConfig({ ...prod, ALLOW_PRIVATE_WEBHOOKS: '1' }).allowPrivateWebhooks).toBe(true);
      // ALLOW_PRIVATE_LARK_DOMAINS is about Lark, not about receivers.
      expect(loadConfig({ ...prod, ALLOW_PRIVATE_LARK_DOMAINS: '1' }).allowPrivateWebhooks).toBe(false);
    });

    it('knowledge-base sinks on private hosts only with ALLOW_PRIVATE_SINKS=1 (always without DATABASE_URL)', () => {
      expect(loadConfig(prod).allowPrivateSinks).toBe(false);
      expect(loadConfig({ ...prod, ALLOW_PRIVATE_SINKS: '1' }).allowPrivateSinks).toBe(true);
      expect(loadConfig({}).allowPrivateSinks).toBe(true);
      expect(() => loadConfig({ ...prod, ALLOW_PRIVATE_SINKS: 'yes' })).toThrow(/ALLOW_PRIVATE_SINKS/);
    });
  });
});

import { z } from 'zod';
import ipaddr from 'ipaddr.js';
import { checkLarkDomain } from './lark-domain.js';
import { parseEncryptionKey } from '../crypto/encryption-key.js';

/** An empty variable (`PORT=` in a .env file or a deploy template) means "not set", for every variable. */
const unsetIfBlank = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const withDefault = <T extends z.ZodType>(schema: T) => z.preprocess(unsetIfBlank, schema);

const optionalString = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

const integer = (message: string, min: number, max: number, fallback: number) =>
  withDefault(z.coerce.number({ message }).int(message).min(min, message).max(max, message).default(fallback));

// 0 asks the OS for a free port (tests, local experiments).
const port = (fallback: number, min = 1) => integer(`expected an integer port between ${min} and 65535`, min, 65535, fallback);

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const FLAG_VALUES = ['1', '0', 'true', 'false'] as const;
const flag = (fallback: '1' | '0' | 'true' | 'false') =>
  withDefault(z.enum(FLAG_VALUES, { message: 'expected 1, 0, true or false' }).default(fallback)).transform((v) => v === '1' || v === 'true');

const PUBLIC_URL_EXPECTATION = 'expected the http(s) origin browsers reach larksync at, e.g. https://larksync.example.com (no path, query or fragment: larksync serves /admin and /auth at the root)';

/** An http(s) origin (no path, query, fragment or credentials). */
export function parsePublicUrl(value: string): string | undefined {
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    if (url.search || url.hash || url.username || url.password || /[?#]/.test(value)) return undefined;
    if (url.pathname !== '/' && url.pathname !== '') return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

/** proxy-addr's names for whole classes of addresses, accepted in TRUST_PROXY lists. */
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const TRUST_PROXY_EXPECTATION =
  'expected a hop count (0 to 10) or a comma-separated list of IP addresses or CIDR ranges (e.g. 10.0.0.0/8, fdaa::/16, loopback)';

/** A hop count, or a list of trusted proxy addresses and ranges; `true` (trust anyone) is refused. */
function parseTrustProxy(v: string): number | string[] | undefined {
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    return n <= 10 ? n : undefined;
  }
  const entries = v.split(',').map((e) => e.trim()).filter(Boolean);
  if (entries.length === 0) return undefined;
  const valid = (e: string) => PROXY_NAMES.has(e) || ipaddr.isValid(e) || ipaddr.isValidCIDR(e);
  return entries.every(valid) ? entries : undefined;
}

const EnvSchema = z
  .object({
    DATABASE_URL: optionalString.refine(
      (v) => v === undefined || /^postgres(ql)?:\/\//.test(v),
      'expected a postgres:// or postgresql:// URL',
    ),
    DATABASE_NAMED_STATEMENTS: flag('true'),
    PORT: port(3000, 0),
    HOST: withDefault(z.string().trim().default('0.0.0.0')),
    LARK_APP_ID: optionalString,
    LARK_APP_SECRET: optionalString,
    LARK_VERIFICATION_TOKEN: optionalString,
    LARK_ENCRYPT_KEY: optionalString,
    LARK_DOMAIN: withDefault(
      z
        .string()
        .trim()
        .default('feishu')
        .superRefine((v, ctx) => {
          const checked = checkLarkDomain(v, { allowPrivate: true });
          if (!checked.ok) ctx.addIssue({ code: 'custom', message: checked.problem });
        }),
    ),
    ALLOW_PRIVATE_LARK_DOMAINS: flag('0'),
    ALLOW_PRIVATE_WEBHOOKS: flag('0'),
    ALLOW_PRIVATE_SINKS: flag('0'),
    ENCRYPTION_KEY: optionalString.refine(
      (v) => v === undefined || parseEncryptionKey(v) !== undefined,
      'expected a 32-byte key as base64 (44 characters) or 64 hex characters',
    ),
    ENCRYPTION_KEYS_RETIRED: optionalString.refine(
      (v) => v === undefined || v.split(',').every((k) => k.trim() === '' || parseEncryptionKey(k) !== undefined),
      'expected a comma-separated list of 32-byte keys (base64 or hex)',
    ),
    API_TOKEN: optionalString.refine(
      (v) => v === undefined || v.length >= 16,
      'expected at least 16 characters',
    ),
    METRICS_TOKEN: optionalString.refine((v) => v === undefined || v.length >= 16, 'expected at least 16 characters'),
    API_DOCS: flag('true'),
    TRUST_PROXY: optionalString.refine((v) => v === undefined || parseTrustProxy(v) !== undefined, TRUST_PROXY_EXPECTATION),
    RETENTION_DAYS: integer('expected an integer number of days between 1 and 3650', 1, 3650, 90),
    UNINSTALL_PURGE_DAYS: integer('expected an integer number of days between 0 and 3650', 0, 3650, 30),
    PUBLIC_URL: optionalString.refine((v) => v === undefined || parsePublicUrl(v) !== undefined, PUBLIC_URL_EXPECTATION),
    API_RATE_LIMIT: integer('expected a positive integer (requests per minute per client)', 1, 1_000_000, 1200),
    DATA_DIR: withDefault(z.string().trim().default('./data')),
    // Unset: the embedded PostgreSQL listens on its Unix socket only.
    EMBEDDED_PG_PORT: withDefault(
      z.coerce
        .number({ message: 'expected an integer port between 1 and 65535' })
        .int('expected an integer port between 1 and 65535')
        .min(1, 'expected an integer port between 1 and 65535')
        .max(65535, 'expected an integer port between 1 and 65535')
        .optional(),
    ),
    LOG_LEVEL: withDefault(z.enum(LOG_LEVELS, { message: `expected one of ${LOG_LEVELS.join(', ')}` }).default('info')),
    WORKER_CONCURRENCY: integer('expected an integer between 1 and 100', 1, 100, 5),
    WEBHOOK_CONCURRENCY: integer('expected an integer between 1 and 200', 1, 200, 10),
    HEAP_GROWING_PERCENT: integer('expected an integer between 0 and 400 (0: V8 decides)', 0, 400, 50),
  })
  .superRefine((env, ctx) => {
    const storeVars = [env.LARK_APP_ID, env.LARK_APP_SECRET, env.LARK_VERIFICATION_TOKEN];
    const set = storeVars.filter((v) => v !== undefined).length;
    if (set !== 0 && set !== 3) {
      for (const [name, value] of [
        ['LARK_APP_ID', env.LARK_APP_ID],
        ['LARK_APP_SECRET', env.LARK_APP_SECRET],
        ['LARK_VERIFICATION_TOKEN', env.LARK_VERIFICATION_TOKEN],
      ] as const) {
        if (value === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: 'required when any of LARK_APP_ID, LARK_APP_SECRET, LARK_VERIFICATION_TOKEN is set',
          });
        }
      }
    }
    if (env.DATABASE_URL !== undefined && !env.ALLOW_PRIVATE_LARK_DOMAINS) {
      const domain = checkLarkDomain(env.LARK_DOMAIN, { allowPrivate: false });
      if (!domain.ok) ctx.addIssue({ code: 'custom', path: ['LARK_DOMAIN'], message: domain.problem });
    }
    if (env.DATABASE_URL !== undefined && env.ENCRYPTION_KEY === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['ENCRYPTION_KEY'],
        message: 'required when DATABASE_URL is set: a 32-byte key as base64 or 64 hex characters',
      });
    }
  });

export interface StoreAppConfig {
  appId: string;
  appSecret: string;
  verificationToken: string;
  encryptKey: string | undefined;
}

export interface Config {
  databaseUrl: string | undefined;
  /** Repeated queries sent as named (prepared) statements (src/db/statement-names.ts). */
  namedStatements: boolean;
  port: number;
  host: string;
  storeApp: StoreAppConfig | undefined;
  /** The canonical form: `feishu`, `lark` or an origin. */
  larkDomain: string;
  /** http:// and private hosts allowed as Lark domains: always without DATABASE_URL, else ALLOW_PRIVATE_LARK_DOMAINS=1. */
  allowPrivateLarkDomains: boolean;
  /** http:// and loopback, private and link-local webhook URLs allowed: always without DATABASE_URL, else ALLOW_PRIVATE_WEBHOOKS=1. */
  allowPrivateWebhooks: boolean;
  /** http:// and private hosts allowed as knowledge-base sinks: always without DATABASE_URL, else ALLOW_PRIVATE_SINKS=1. */
  allowPrivateSinks: boolean;
  encryptionKey: string | undefined;
  retiredEncryptionKeys: string[];
  apiToken: string | undefined;
  apiRateLimit: number;
  dataDir: string;
  /** TCP port of the embedded PostgreSQL; undefined: Unix socket only. */
  embeddedPgPort: number | undefined;
  /** Bearer token for /metrics; undefined: /metrics is open. */
  metricsToken: string | undefined;
  apiDocs: boolean;
  /** Fastify's trustProxy: a hop count (0: none) or the trusted proxies' addresses and ranges. */
  trustProxy: number | string[];
  retentionDays: number;
  uninstallPurgeDays: number;
  /**
   * Where browsers reach larksync (the redirect base of Lark sign-in): `${publicUrl}/auth/lark/callback`
   * must be in the app's redirect URL list. Unset: sign-in answers 503 (with DATABASE_URL), or
   * http://localhost:<PORT> for an embedded start.
   */
  publicUrl: string | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  workerConcurrency: number;
  /** Webhook lanes delivering at once per process (each lane is one (webhook, tenant), in order). */
  webhookConcurrency: number;
  /** V8's old generation may grow this many percent past the live heap before a full collection (runtime/heap.ts). */
  heapGrowingPercent: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly expectation: string,
  ) {
    super(`invalid configuration: ${variable}: ${expectation}`);
    this.name = 'ConfigError';
  }
}

/** Validates the environment. Throws a ConfigError naming the first bad variable (never its value). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? 'environment');
    throw new ConfigError(variable, issue?.message ?? 'invalid value');
  }
  const e = parsed.data;
  return {
    databaseUrl: e.DATABASE_URL,
    namedStatements: e.DATABASE_NAMED_STATEMENTS,
    port: e.PORT,
    host: e.HOST,
    storeApp:
      e.LARK_APP_ID && e.LARK_APP_SECRET && e.LARK_VERIFICATION_TOKEN
        ? {
            appId: e.LARK_APP_ID,
            appSecret: e.LARK_APP_SECRET,
            verificationToken: e.LARK_VERIFICATION_TOKEN,
            encryptKey: e.LARK_ENCRYPT_KEY,
          }
        : undefined,
    larkDomain: canonicalDomain(e.LARK_DOMAIN),
    allowPrivateLarkDomains: e.DATABASE_URL === undefined || e.ALLOW_PRIVATE_LARK_DOMAINS,
    allowPrivateWebhooks: e.DATABASE_URL === undefined || e.ALLOW_PRIVATE_WEBHOOKS,
    allowPrivateSinks: e.DATABASE_URL === undefined || e.ALLOW_PRIVATE_SINKS,
    encryptionKey: e.ENCRYPTION_KEY,
    retiredEncryptionKeys: e.ENCRYPTION_KEYS_RETIRED?.split(',').map((k) => k.trim()).filter(Boolean) ?? [],
    apiToken: e.API_TOKEN,
    apiRateLimit: e.API_RATE_LIMIT,
    dataDir: e.DATA_DIR,
    embeddedPgPort: e.EMBEDDED_PG_PORT,
    metricsToken: e.METRICS_TOKEN,
    apiDocs: e.API_DOCS,
    trustProxy: e.TRUST_PROXY === undefined ? 0 : (parseTrustProxy(e.TRUST_PROXY) ?? 0),
    retentionDays: e.RETENTION_DAYS,
    uninstallPurgeDays: e.UNINSTALL_PURGE_DAYS,
    publicUrl: e.PUBLIC_URL === undefined ? (e.DATABASE_URL === undefined ? `http://localhost:${e.PORT || 3000}` : undefined) : parsePublicUrl(e.PUBLIC_URL),
    logLevel: e.LOG_LEVEL,
    workerConcurrency: e.WORKER_CONCURRENCY,
    webhookConcurrency: e.WEBHOOK_CONCURRENCY,
    heapGrowingPercent: e.HEAP_GROWING_PERCENT,
  };
}

function canonicalDomain(value: string): string {
  const checked = checkLarkDomain(value, { allowPrivate: true });
  return checked.ok ? checked.domain : value;
}

import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { Config } from '../config/env.js';
import { checkLarkDomain, checkLarkDomainResolves, larkBaseUrl } from '../config/lark-domain.js';
import type { Sealer } from '../crypto/sealer.js';
import { AppError } from '../errors.js';
import { LarkApiError, LarkResponseRefusedError, LarkTransportError } from '../lark/errors.js';
import type { LarkHttp } from '../lark/http.js';
import { mintInternalTenantToken, queryTenant } from '../lark/auth-api.js';
import { lockTenantLifecycle } from '../tenants/tenant-lock.js';
import type { TenantsService } from '../tenants/tenants.service.js';
import type { TokenService } from '../tokens/tokens.service.js';
import { appSecretContext, encryptKeyContext, verificationTokenContext } from './app-credentials.js';
import { findApp, upsertApp } from './apps.repository.js';

export interface RegisteredCustomApp {
  appId: string;
  tenantKey: string;
  type: 'custom';
  /** Where the app's console sends its pushes, once its push credentials are registered. */
  eventsPath?: string;
}

/** What checks a custom app's pushes: its console's Verification Token and (optional) Encrypt Key. */
export interface PushKeys {
  appId: string;
  verificationToken: string;
  encryptKey: string | undefined;
  /** How answers name them (parse-push.ts). */
  names: { token: string; key: string };
}

const CUSTOM_NAMES = { token: "the app's registered verificationToken", key: "the app's registered encryptKey" };

/** How long a custom app's push keys (or their absence) are kept in memory: a re-registration shows within this. */
const PUSH_KEYS_TTL_MS = 30_000;
/** Entries kept at most: unknown app ids in push URLs are cached too, so anyone can add them. */
const PUSH_KEYS_MAX = 1_000;

/** The request path of a custom app's pushes (routes/lark/events.ts). */
export const customAppEventsPath = (appId: string) => `/lark/events/${appId}`;

export class AppsService {
  private readonly pushKeyCache = new Map<string, { at: number; keys: PushKeys | undefined }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    private readonly http: LarkHttp,
    private readonly tokens: TokenService,
    private readonly tenants: TenantsService,
    private readonly config: Config,
  ) {}

  /** Records the store app from the environment, so tokens and tenants can refer to it. */
  async ensureStoreApp(): Promise<void> {
    const store = this.config.storeApp;
    if (!store) return;
    const existing = await findApp(this.db, store.appId);
    if (existing && existing.kind !== 'store') {
      throw new Error(`LARK_APP_ID ${store.appId} is already registered as a custom app`);
    }
    await upsertApp(this.db, {
      app_id: store.appId,
      kind: 'store',
      domain: this.config.larkDomain,
      secret_sealed: this.sealer.seal(store.appSecret, appSecretContext(store.appId)),
    });
    // A start with a corrected LARK_APP_SECRET should not wait out the backoff the wrong one earned.
    if (existing && !this.sameSecret(existing.secret_sealed, store.appId, store.appSecret)) await this.tokens.credentialsChanged(store.appId);
  }

  private sameSecret(sealed: Buffer, appId: string, secret: string): boolean {
    try {
      return this.sealer.open(sealed, appSecretContext(appId)) === secret;
    } catch {
      return false;
    }
  }

  /**
   * Registers a self-built app ("bring your own app"). Its credentials are proven by minting a
   * tenant token, which is kept; the tenant key comes from tenant/v2/tenant/query. Then, in one
   * transaction with the tenant locked: the conflict checks, the app (its secret), the tenant and
   * the token. So a refused registration changes nothing (not even a re-registered app's secret),
   * and of two registrations racing for one tenant the second sees the first and gets a 409.
   */
  async registerCustomApp(input: {
    appId: string;
    appSecret: string;
    domain?: string;
    verificationToken?: string;
    /** undefined keeps the stored one, null removes it */
    encryptKey?: string | null;
  }): Promise<RegisteredCustomApp> {
    const domain = await this.checkDomain(input.domain ?? this.config.larkDomain);
    if (this.config.storeApp?.appId === input.appId) {
      throw new AppError(409, 'app_conflict', `app ${input.appId} is the store app configured by LARK_APP_ID`);
    }
    const existing = await findApp(this.db, input.appId);
    if (existing && existing.kind !== 'custom') {
      throw new AppError(409, 'app_conflict', `app ${input.appId} is already registered as a store app`);
    }
    const baseUrl = larkBaseUrl(domain);

    const { token, expire } = await this.upstream(() =>
      mintInternalTenantToken(this.http, { appId: input.appId, baseUrl, secret: () => input.appSecret }),
    );
    const tenant = await this.upstream(() => queryTenant(this.http, baseUrl, token));

    const conflict = (servedBy: string) =>
      new AppError(409, 'tenant_conflict', `tenant ${tenant.tenantKey} is already served by app ${servedBy}; uninstall it there first`);
    const pushesConfigured = await this.db.transaction().execute(async (trx) => {
      // The lock every lifecycle transaction of this tenant takes first (installIn takes it again,
      // which is harmless), so between the checks below and the writes after them nobody else acts.
      await lockTenantLifecycle(trx, tenant.tenantKey);
      const app = await trx.selectFrom('apps').select('kind').where('app_id', '=', input.appId).forUpdate().executeTakeFirst();
      if (app && app.kind !== 'custom') throw new AppError(409, 'app_conflict', `app ${input.appId} is already registered as a store app`);
      const current = await trx
        .selectFrom('tenants')
        .select(['app_id', 'status'])
        .where('tenant_key', '=', tenant.tenantKey)
        .forUpdate()
        .executeTakeFirst();
      if (current && current.app_id !== input.appId && current.status !== 'uninstalled') throw conflict(current.app_id);
      await upsertApp(trx, {
        app_id: input.appId,
        kind: 'custom',
        domain,
        secret_sealed: this.sealer.seal(input.appSecret, appSecretContext(input.appId)),
        verification_token_sealed: input.verificationToken ? this.sealer.seal(input.verificationToken, verificationTokenContext(input.appId)) : null,
        encrypt_key_sealed:
          input.encryptKey === undefined ? undefined : input.encryptKey === null ? null : this.sealer.seal(input.encryptKey, encryptKeyContext(input.appId)),
      });
      const installed = await this.tenants.installIn(
        trx,
        { tenantKey: tenant.tenantKey, appId: input.appId, name: tenant.name },
        null,
        'custom_app_registered',
      );
      // Checked above under the same locks, so this should not happen; if it does, answering
      // 201 for a tenant left as it was would be a lie, and the rollback keeps the old secret.
      if (!installed) throw conflict(current?.app_id ?? 'another app');
      await this.tokens.adopt({ kind: 'tenant', appId: input.appId, tenantKey: tenant.tenantKey }, token, expire, trx);
      const stored = await trx.selectFrom('apps').select('verification_token_sealed').where('app_id', '=', input.appId).executeTakeFirst();
      return stored?.verification_token_sealed != null;
    });
    this.pushKeyCache.delete(input.appId);
    return {
      appId: input.appId,
      tenantKey: tenant.tenantKey,
      type: 'custom',
      ...(pushesConfigured ? { eventsPath: customAppEventsPath(input.appId) } : {}),
    };
  }

  /**
   * The push keys of a registered custom app, or undefined (no such custom app, or none
   * registered): read on the request path of its pushes, so kept briefly in memory, absences too.
   */
  async pushKeys(appId: string): Promise<PushKeys | undefined> {
    const cached = this.pushKeyCache.get(appId);
    if (cached && performance.now() - cached.at < PUSH_KEYS_TTL_MS) return cached.keys;
    const row = await findApp(this.db, appId);
    const keys =
      row?.kind === 'custom' && row.verification_token_sealed
        ? {
            appId,
            verificationToken: this.sealer.open(row.verification_token_sealed, verificationTokenContext(appId)),
            encryptKey: row.encrypt_key_sealed ? this.sealer.open(row.encrypt_key_sealed, encryptKeyContext(appId)) : undefined,
            names: CUSTOM_NAMES,
          }
        : undefined;
    if (this.pushKeyCache.size >= PUSH_KEYS_MAX) this.pushKeyCache.clear();
    this.pushKeyCache.set(appId, { at: performance.now(), keys });
    return keys;
  }

  /** The domain's canonical form (brand or origin), or a 400 saying what to fix; never echoes the value. */
  private async checkDomain(value: string): Promise<string> {
    const policy = { allowPrivate: this.config.allowPrivateLarkDomains };
    const checked = checkLarkDomain(value, policy);
    if (!checked.ok) throw new AppError(400, 'invalid_domain', `domain ${checked.problem}`);
    const unresolvable = await checkLarkDomainResolves(checked.domain, policy);
    if (unresolvable) throw new AppError(400, 'invalid_domain', `domain is refused: ${unresolvable}`);
    return checked.domain;
  }

  async kindOf(appId: string): Promise<'store' | 'custom' | undefined> {
    return (await findApp(this.db, appId))?.kind;
  }

  /**
   * An app's kind and, for a custom app whose Verification Token is registered, the path its
   * pushes go to: one read, nothing unsealed (the admin page shows whether pushes are set up).
   */
  async pushSetup(appId: string): Promise<{ kind: 'store' | 'custom'; eventsPath: string | null } | undefined> {
    const row = await findApp(this.db, appId);
    if (!row) return undefined;
    return { kind: row.kind, eventsPath: row.kind === 'custom' && row.verification_token_sealed ? customAppEventsPath(appId) : null };
  }

  private async upstream<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      // Lark failing or throttling says nothing about the credentials: telling the caller to fix
      // them would send them chasing a non-problem.
      if (err instanceof LarkApiError && (err.httpStatus >= 500 || err.isRateLimited)) {
        throw new AppError(502, 'lark_unavailable', `Lark failed to answer (code ${err.code}, HTTP ${err.httpStatus}); retry later`);
      }
      // The code, never the upstream `msg`: a custom domain answers whatever it likes, and its text
      // echoed here would turn registration into a probe of whatever the domain points at.
      if (err instanceof LarkApiError) {
        throw new AppError(
          400,
          'invalid_app_credentials',
          `Lark refused these credentials (code ${err.code}); check appId, appSecret and domain`,
        );
      }
      if (err instanceof LarkResponseRefusedError) {
        throw new AppError(502, 'lark_unreachable', `the app's domain did not answer like Lark (${err.reason}); check domain`);
      }
      if (err instanceof LarkTransportError) {
        throw new AppError(502, 'lark_unreachable', `Lark could not be reached at the app's domain (${err.reason})`);
      }
      throw err;
    }
  }
}

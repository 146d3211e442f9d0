import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import type { LarkHttp } from '../lark/http.js';
import type { Metrics } from '../metrics/metrics.js';
import { MODULES } from '../connectors/index.js';
import { identityUserOf } from '../sync/identity.js';
import type { Pacer } from '../sync/pacer.js';
import { SyncLarkClient, defaultRetryPolicy, type RetryPolicy } from '../sync/sync-lark-client.js';
import type { TenantTokens } from '../tokens/tokens.service.js';
import { SUBSCRIPTION_LIMITS, outcomeOf, resolveWikiBase, subscribe, unsubscribe, type Outcome } from './lark-calls.js';
import type { LarkSubscriptionRow } from './subscriptions.table.js';
import { desiredTargets, type Target } from './targets.js';
import { SUBSCRIBED_MODULES } from './event-modules.js';

export interface SubscriptionDeps {
  db: Kysely<Database>;
  http: LarkHttp;
  metrics: Metrics;
  log: Logger;
  pacer: Pacer;
  tokens: { forTenant(tenantKey: string): Promise<TenantTokens> };
  grants: { forUser(key: { appId: string; tenantKey: string; openId: string }): Promise<TenantTokens> };
}

export interface SubscriptionOptions {
  /** Rows handled per job at most; the job queues itself again for the rest. */
  batch: number;
  /** A job stops taking rows after this long (delete_subscribe is paced at 10/min). */
  timeBudgetMs: number;
  /** Transient failures: base delay, doubled per attempt, capped. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A refusal is tried again this long after (someone may have granted the right meanwhile). */
  refusedRetryMs: number;
  retry: RetryPolicy;
}

export const defaultSubscriptionOptions: SubscriptionOptions = {
  batch: 200,
  timeBudgetMs: 20_000,
  backoffBaseMs: 30_000,
  backoffMaxMs: 6 * 3_600_000,
  refusedRetryMs: 6 * 3_600_000,
  // A few quick tries within the job; the row's own backoff takes over after that.
  retry: { ...defaultRetryPolicy, maxAttempts: 3, maxDelayMs: 5_000, timeoutMs: 10_000 },
};

/** What one job did, and whether (when) there is more. */
export interface JobResult {
  calls: number;
  /** when the next job should run: now (more rows due), later (a retry's time), or never */
  nextAt: Date | null;
}

/**
 * Makes and keeps a tenant's subscribe calls (change-events.md §2.1, §3): the rows of
 * `lark_subscriptions` are brought in line with the connectors (plan), then each row due is acted
 * on (work): subscribed, unsubscribed (a row no longer wanted), or retried with backoff. Idempotent:
 * a subscription that exists is answered "already" by Lark (1390007), which counts as done, and
 * Drive takes a file subscribe twice. Never on the request path: a graphile-worker job per tenant.
 */
export class SubscriptionManager {
  constructor(
    private readonly deps: SubscriptionDeps,
    private readonly options: SubscriptionOptions = defaultSubscriptionOptions,
  ) {}

  async run(tenantKey: string): Promise<JobResult> {
    const { db } = this.deps;
    const tenant = await db.selectFrom('tenants').select(['status']).where('tenant_key', '=', tenantKey).executeTakeFirst();
    // A paused or uninstalled tenant has no token to call with; its rows wait (install queues again).
    if (tenant?.status !== 'active') return { calls: 0, nextAt: null };
    const started = Date.now();
    const deadline = started + this.options.timeBudgetMs;
    const counters = { upstreamCalls: 0, throttledWaits: 0 };
    const clients = new Clients(this.deps, tenantKey, counters, this.options.retry, deadline);

    await this.plan(tenantKey, clients);
    let handled = 0;
    while (handled < this.options.batch && Date.now() < deadline) {
      const rows = await db
        .selectFrom('lark_subscriptions')
        .selectAll()
        .where('tenant_key', '=', tenantKey)
        .where((eb) => eb.or([eb('status', '<>', 'subscribed'), eb('wanted', '=', false)]))
        .where('next_attempt_at', '<=', sql<Date>`now()`)
        .orderBy('next_attempt_at')
        .limit(Math.min(20, this.options.batch - handled))
        .execute();
      if (rows.length === 0) break;
      for (const row of rows) {
        if (Date.now() >= deadline) break;
        await (row.wanted ? this.subscribeRow(row, clients) : this.unsubscribeRow(row, clients));
        handled += 1;
      }
    }
    const next = await db
      .selectFrom('lark_subscriptions')
      .select((eb) => eb.fn.min('next_attempt_at').as('at'))
      .where('tenant_key', '=', tenantKey)
      .where((eb) => eb.or([eb('status', 'in', ['pending', 'failed', 'refused']), eb('wanted', '=', false)]))
      .executeTakeFirst();
    return { calls: counters.upstreamCalls, nextAt: next?.at ? new Date(next.at) : null };
  }

  /** Brings the rows in line with the connectors, in one transaction. */
  private async plan(tenantKey: string, clients: Clients): Promise<void> {
    const { targets, unresolved } = await desiredTargets(this.deps.db, tenantKey);
    const refusedWiki: Array<Target & { message: string; code: number | null }> = [];
    for (const w of unresolved) {
      const source = `wiki:${w.nodeToken}`;
      try {
        const token = await resolveWikiBase(await clients.for('base'), w.nodeToken);
        targets.push({ module: 'base', objectToken: token, objectType: 'bitable', source });
      } catch (err) {
        const o = outcomeOf(err, 'subscribe', { object_token: source, object_type: 'bitable' });
        const message = o.kind === 'ok' ? '' : o.message;
        refusedWiki.push({ module: 'base', objectToken: source, objectType: 'bitable', source, message, code: o.kind === 'ok' ? null : o.code });
      }
    }
    await this.deps.db.transaction().execute(async (trx) => {
      const all = [...targets, ...refusedWiki];
      if (all.length > 0) {
        await sql`
          insert into lark_subscriptions (tenant_key, module, object_token, object_type, source)
          select ${tenantKey}, m, t, ty, src
            from unnest(${all.map((t) => t.module)}::text[], ${all.map((t) => t.objectToken)}::text[],
                        ${all.map((t) => t.objectType)}::text[], ${all.map((t) => t.source)}::text[]) as x(m, t, ty, src)
          on conflict (tenant_key, module, object_token) do update set
            object_type = excluded.object_type,
            source = excluded.source,
            wanted = true,
            -- Wanted again after being dropped: made again from the start.
            status = case when lark_subscriptions.wanted then lark_subscriptions.status else 'pending' end,
            attempts = case when lark_subscriptions.wanted then lark_subscriptions.attempts else 0 end,
            next_attempt_at = case when lark_subscriptions.wanted then lark_subscriptions.next_attempt_at else now() end,
            updated_at = case when lark_subscriptions.wanted then lark_subscriptions.updated_at else now() end
          -- Rows already as wanted are left alone: a docs tenant's thousands of documents are planned after every run.
          where not lark_subscriptions.wanted or lark_subscriptions.object_type is distinct from excluded.object_type
             or lark_subscriptions.source is distinct from excluded.source`.execute(trx);
      }
      // A wiki page that is not (or no longer found to be) a Base: refused, with why.
      for (const r of refusedWiki) {
        await sql`update lark_subscriptions set status = 'refused', last_error = ${r.message}, error_code = ${r.code},
                         next_attempt_at = now() + make_interval(secs => ${this.options.refusedRetryMs / 1000}), updated_at = now()
                   where tenant_key = ${tenantKey} and module = 'base' and object_token = ${r.objectToken} and status = 'pending'`.execute(trx);
      }
      // Whatever the connectors no longer name is undone (a wiki node once unresolved and now resolved, too).
      const keep = all.map((t) => `${t.module}/${t.objectToken}`);
      await sql`
        update lark_subscriptions set wanted = false, next_attempt_at = now(), updated_at = now()
         where tenant_key = ${tenantKey} and wanted and module = any(${[...SUBSCRIBED_MODULES]}::text[])
           and not (module || '/' || object_token = any(${keep}::text[]))`.execute(trx);
    });
  }

  private async subscribeRow(row: LarkSubscriptionRow, clients: Clients): Promise<void> {
    if (row.object_token.startsWith('wiki:')) return; // unresolved: plan() tries again
    let outcome: Outcome;
    try {
      await subscribe(await clients.for(row.module), row);
      outcome = { kind: 'ok' };
    } catch (err) {
      outcome = outcomeOf(err, 'subscribe', row);
    }
    await this.record(row, outcome);
  }

  private async unsubscribeRow(row: LarkSubscriptionRow, clients: Clients): Promise<void> {
    const forget = () =>
      this.deps.db
        .deleteFrom('lark_subscriptions')
        .where('tenant_key', '=', row.tenant_key)
        .where('module', '=', row.module)
        .where('object_token', '=', row.object_token)
        .where('wanted', '=', false)
        .execute();
    // Never made, or the same file is still wanted by another module (a Base among the docs):
    // Lark keeps one subscription per app and file, so undoing it would cut the other one off.
    const sharedWith = await this.deps.db
      .selectFrom('lark_subscriptions')
      .select('module')
      .where('tenant_key', '=', row.tenant_key)
      .where('object_token', '=', row.object_token)
      .where('module', '<>', row.module)
      .where('wanted', '=', true)
      .executeTakeFirst();
    if (row.status !== 'subscribed' || row.object_token.startsWith('wiki:') || sharedWith) {
      await forget();
      return;
    }
    let outcome: Outcome;
    try {
      await unsubscribe(await clients.for(row.module), row);
      outcome = { kind: 'ok' };
    } catch (err) {
      outcome = outcomeOf(err, 'unsubscribe', row);
    }
    if (outcome.kind === 'failed') {
      await this.record(row, outcome);
      return;
    }
    if (outcome.kind === 'refused') {
      // Nothing more to do: its events, if they still come, are stored and change nothing.
      this.deps.log.warn({ tenantKey: row.tenant_key, module: row.module, code: outcome.code }, 'unsubscribe refused; forgetting the subscription');
    }
    await forget();
  }

  private async record(row: LarkSubscriptionRow, outcome: Outcome): Promise<void> {
    const { db } = this.deps;
    const where = sql`tenant_key = ${row.tenant_key} and module = ${row.module} and object_token = ${row.object_token}`;
    if (outcome.kind === 'ok') {
      // Only for a row still as it was read: a reconfiguration meanwhile decides anew.
      await sql`update lark_subscriptions set status = case when wanted then 'subscribed' else status end,
                       subscribed_at = now(), error_code = null, last_error = null, attempts = 0, updated_at = now()
                 where ${where}`.execute(db);
      return;
    }
    const attempts = row.attempts + 1;
    const delayMs =
      outcome.kind === 'refused'
        ? this.options.refusedRetryMs
        : Math.min(this.options.backoffMaxMs, this.options.backoffBaseMs * 2 ** Math.min(attempts - 1, 20)) * (0.75 + Math.random() / 2);
    const at = outcome.kind === 'failed' && outcome.at ? outcome.at : new Date(Date.now() + delayMs);
    // A row no longer wanted keeps its status (subscribed) while its undoing is retried.
    await sql`update lark_subscriptions set
                 status = case when wanted then ${outcome.kind}::text else status end,
                 error_code = ${outcome.code}, last_error = ${outcome.message}, attempts = ${attempts},
                 next_attempt_at = ${at}::timestamptz, updated_at = now()
               where ${where}`.execute(db);
    this.deps.log.warn(
      { tenantKey: row.tenant_key, module: row.module, objectType: row.object_type, outcome: outcome.kind, code: outcome.code, attempts },
      outcome.kind === 'refused' ? 'Lark refused a change-event subscription; the module keeps polling' : 'change-event subscription call failed; retried later',
    );
  }
}

/** A paced Lark client per module: the connector's identity (a user's token for Drive files when it reads as a user). */
class Clients {
  private readonly made = new Map<string, SyncLarkClient>();
  private configs: Map<string, unknown> | undefined;

  constructor(
    private readonly deps: SubscriptionDeps,
    private readonly tenantKey: string,
    private readonly counters: { upstreamCalls: number; throttledWaits: number },
    private readonly retry: RetryPolicy,
    private readonly deadline: number,
  ) {}

  async for(module: string): Promise<SyncLarkClient> {
    const made = this.made.get(module);
    if (made) return made;
    this.configs ??= new Map(
      (await this.deps.db.selectFrom('connectors').select(['module', 'config']).where('tenant_key', '=', this.tenantKey).execute()).map((c) => [c.module, c.config]),
    );
    const appTokens = await this.deps.tokens.forTenant(this.tenantKey);
    // Approval subscriptions are the app's (tenant token only); Drive takes a user's token too.
    const asUser = module === 'approval' ? undefined : identityUserOf(this.configs.get(module));
    const tokens = asUser ? await this.deps.grants.forUser({ appId: appTokens.app.appId, tenantKey: this.tenantKey, openId: asUser }) : appTokens;
    const limits = { ...(MODULES[module]?.limits ?? {}), ...SUBSCRIPTION_LIMITS };
    const client = new SyncLarkClient(
      { http: this.deps.http, metrics: this.deps.metrics },
      tokens,
      this.deps.pacer,
      limits,
      this.counters,
      async () => undefined,
      this.retry,
      // A throttle wait past the job's time ends the call (SliceDeferredError): the row is retried then.
      this.deadline + 60_000,
    );
    this.made.set(module, client);
    return client;
  }
}

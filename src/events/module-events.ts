import { sql, type Kysely, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import { appNotFound, findTenantAppConnector } from '../apps/apps.repository.js';
import type { AppRow } from '../apps/apps.table.js';
import type { Database } from '../db/database.js';
import type { LarkHttp } from '../lark/http.js';
import type { Metrics } from '../metrics/metrics.js';
import { AppError } from '../errors.js';
import { UserAuthorizationRequiredError } from '../grants/grant-errors.js';
import { applyEventChange, prepareEventChange, type FreshReads } from '../sync/event-apply.js';
import type { EventGroup } from './event-group.js';
import { identityUserOf } from '../sync/identity.js';
import type { Pacer } from '../sync/pacer.js';
import { nextReadSeqAt } from '../sync/read-seq.js';
import { SyncLarkClient, defaultRetryPolicy } from '../sync/sync-lark-client.js';
import { SyncError } from '../sync/sync-errors.js';
import type { ModuleEventContext, ModuleEventHandler, SyncModuleDef } from '../sync/sync-module.js';
import type { SyncModuleName } from '../sync/sync.tables.js';
import type { TenantTokens } from '../tokens/tokens.service.js';

/** The task of a deferred module handler (ctx.defer), run by the worker beside event drains. */
export const DEFERRED_EVENT_TASK = 'apply_deferred_event';

/** What module event handlers need from larksync, named. */
export interface ModuleEventDeps {
  db: Kysely<Database>;
  http: LarkHttp;
  metrics: Metrics;
  log: Logger;
  eventPacer: Pacer;
  /** Handlers' freshness checks, gathered into shared statements. */
  freshReads: FreshReads;
  tokens: { forTenantApp(tenantKey: string, app: AppRow): TenantTokens };
  grants: { forUser(key: { appId: string; tenantKey: string; openId: string }): Promise<TenantTokens> };
  connectors: { validate(module: SyncModuleName, config: unknown): Record<string, unknown> };
  sync: { trigger(tenantKey: string, module: SyncModuleName, mode: 'incremental' | 'full', trigger: 'api' | 'schedule'): Promise<unknown> };
  sinks: { queueDue(): Promise<number> };
}

export interface ModuleEventInput {
  eventId: string;
  tenantKey: string | null;
  /** The app that pushed it (null: not known, e.g. a deferred handler): only the tenant's app's events apply. */
  appId: string | null;
  pushedAt: Date;
  /** When larksync stored the push (the database's clock): reads started later reflect it. */
  receivedAt?: Date;
  /** In the transaction that applies the event's rows: marks the stored event handled. */
  markHandled?: (trx: Transaction<Database>) => Promise<void>;
  /**
   * A drain's group of this tenant's events: lookups shared, the change written at the group's
   * commit (with the events' marks) rather than in a transaction of its own.
   */
  group?: EventGroup;
}

/** What a handler runs with: the tenant's validated config and the tokens to read as. */
interface Resolved {
  /** the app serving the tenant */
  appId: string;
  config: Record<string, unknown>;
  tokens: TenantTokens;
}

/**
 * Runs one module's handler for a tenant, when the tenant is active and has the module enabled
 * (else 'ignored'): the tenant's validated config, a Lark client paced by the module's buckets
 * (reading as the configured user, if any), and the means to apply a re-read like a sync page.
 * Lark errors surface as SyncErrors: the event fails and is retried with backoff.
 */
export async function runModuleHandler(
  deps: ModuleEventDeps,
  module: SyncModuleDef,
  handler: ModuleEventHandler,
  event: Record<string, unknown>,
  input: ModuleEventInput,
): Promise<'processed' | 'ignored'> {
  const tenantKey = input.tenantKey ?? (typeof event.tenant_key === 'string' ? event.tenant_key : null);
  if (!tenantKey) return 'ignored';
  const resolve = () => resolveHandler(deps, module, tenantKey);
  const resolved = await (input.group ? input.group.once(`${module.name}:${tenantKey}`, resolve) : resolve());
  if (!resolved) return 'ignored';
  // Another app's push for this tenant (the store app's, while the company is served by its own
  // custom app, or the reverse) changes nothing: the re-read below uses the tenant's app's
  // tokens, so only that app's events are taken, and each change is read once, not once per app.
  if (input.appId && resolved.appId !== input.appId) return 'ignored';
  const { config, tokens } = resolved;
  const counters = { upstreamCalls: 0, throttledWaits: 0 };
  /** when the handler's first re-read started: what its marks record (freshObjectsForReads) */
  let readAt: Date | undefined;
  const ctx: ModuleEventContext = {
    tenantKey,
    appKind: tokens.app.kind,
    config,
    // No slice deadline: a throttle wait (≤ 60 s) is slept here, off the request path.
    lark: new SyncLarkClient({ http: deps.http, metrics: deps.metrics }, tokens, deps.eventPacer, module.limits, counters, async () => undefined, defaultRetryPolicy),
    log: deps.log,
    eventId: input.eventId,
    pushedAt: input.pushedAt,
    moduleReads: module.reads?.(deps.db, tenantKey),
    db: deps.db,
    startRead: async () => {
      const read = await nextReadSeqAt(deps.db);
      readAt ??= read.at;
      return read.seq;
    },
    freshRead: async (keys, mark) => {
      const read = await deps.freshReads.check({ tenantKey, keys, mark, receivedAt: input.receivedAt });
      readAt ??= read.at;
      return { fresh: input.group ? input.group.fresh(read.fresh, mark, input.receivedAt) : read.fresh, readSeq: read.seq };
    },
    apply: async (change) => {
      if (!input.group) return applyEventChange(deps.db, tenantKey, module.streams, change, input.markHandled, readAt);
      input.group.add(await prepareEventChange(tenantKey, module.streams, change, readAt));
      return 0;
    },
    triggerSync: async (mode) => {
      await deps.sync.trigger(tenantKey, module.name as SyncModuleName, mode, 'api');
    },
    defer: (name, payload, opts) => deferHandler(deps.db, { module: module.name, name, tenantKey, payload }, opts),
    changed: async () => {
      if (input.group) input.group.afterCommit(() => deps.sinks.queueDue());
      else await deps.sinks.queueDue();
    },
  };
  const outcome = await handler(event, ctx);
  deps.log.debug({ eventId: input.eventId, module: module.name, tenantKey, upstreamCalls: counters.upstreamCalls, outcome }, 'change event applied');
  return outcome;
}

/**
 * The tenant's config and tokens for a module's handler, or undefined when the event is not for
 * it: the tenant is not active or has the module disabled.
 */
async function resolveHandler(deps: ModuleEventDeps, module: SyncModuleDef, tenantKey: string): Promise<Resolved | undefined> {
  // The tenant, its app and its connector in one statement (three when each was read apart).
  const found = await findTenantAppConnector(deps.db, tenantKey, module.name as SyncModuleName);
  if (found?.status !== 'active' || !found.connector?.enabled) return undefined;
  let config: Record<string, unknown>;
  try {
    config = deps.connectors.validate(module.name as SyncModuleName, found.connector.config ?? {});
  } catch (err) {
    // A stored config a newer schema refuses: the next sync reports it; the event changes nothing.
    if (err instanceof AppError) return undefined;
    throw err;
  }
  if (!found.app) throw appNotFound(found.appId);
  const appTokens = deps.tokens.forTenantApp(tenantKey, found.app);
  const asUser = identityUserOf(config);
  const tokens = asUser
    ? await deps.grants.forUser({ appId: appTokens.app.appId, tenantKey, openId: asUser }).catch((err: unknown) => {
        throw err instanceof UserAuthorizationRequiredError ? new SyncError('user_authorization_required', err.message) : err;
      })
    : appTokens;
  return { appId: found.appId, config, tokens };
}

export interface DeferredPayload {
  module: string;
  name: string;
  tenantKey: string;
  payload: Record<string, unknown>;
}

/**
 * Queues a deferred handler. Jobs with the same key collapse while queued (preserve_run_at: the
 * first call's time is kept, so continuous editing cannot postpone the re-read forever); one
 * already running is left alone and a new job is queued. No queue: one document's re-read never
 * waits behind another's (or behind a tenant's failed events), and two overlapping re-reads of
 * one document are ordered by their read numbers like any others.
 */
async function deferHandler(db: Kysely<Database>, job: DeferredPayload, opts: { key: string; delayMs: number }): Promise<void> {
  await sql`
    select graphile_worker.add_job(${DEFERRED_EVENT_TASK}, ${JSON.stringify(job)}::json,
      run_at => now() + ${`${Math.max(0, Math.round(opts.delayMs))} milliseconds`}::interval,
      max_attempts => 10,
      job_key => ${`${job.module}:${job.tenantKey}:${opts.key}`},
      job_key_mode => 'preserve_run_at')`.execute(db);
}

/** Checks a deferred job's payload (queued jobs may come from older code). */
export function deferredPayloadOf(p: unknown): DeferredPayload {
  const j = p as Partial<DeferredPayload> | null;
  if (typeof j?.module !== 'string' || typeof j.name !== 'string' || typeof j.tenantKey !== 'string' || typeof j.payload !== 'object' || j.payload === null) {
    throw new Error(`${DEFERRED_EVENT_TASK} payload needs module, name, tenantKey and payload`);
  }
  return j as DeferredPayload;
}

/** A module's handler of an event type. */
export interface ModuleEventEntry {
  module: SyncModuleDef;
  handler: ModuleEventHandler;
}

/** Event type -> the modules that declare a handler for it (registry order). */
export function moduleEventTable(modules: Iterable<SyncModuleDef>): ReadonlyMap<string, ModuleEventEntry[]> {
  const table = new Map<string, ModuleEventEntry[]>();
  for (const module of modules) {
    for (const [type, handler] of Object.entries(module.events ?? {})) {
      const list = table.get(type) ?? [];
      list.push({ module, handler });
      table.set(type, list);
    }
  }
  return table;
}

import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from './config/env.js';
import type { Database } from './db/database.js';
import type { Sealer } from './crypto/sealer.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { LarkHttp } from './lark/http.js';
import { AppTicketsService, defaultTicketOptions, type TicketOptions } from './tokens/app-tickets.service.js';
import { TokenService, defaultTokenOptions, type TokenOptions } from './tokens/tokens.service.js';
import { TenantsService } from './tenants/tenants.service.js';
import { AppsService } from './apps/apps.service.js';
import { EventsService } from './events/events.service.js';
import { MODULES, STREAM_CATALOG } from './connectors/index.js';
import { ConnectorsService } from './sync/connectors.service.js';
import { Pacer } from './sync/pacer.js';
import { FreshReads } from './sync/event-apply.js';
import { RecordsService } from './sync/records.service.js';
import { SyncEngine, defaultEngineOptions, type EngineOptions } from './sync/engine/sync-engine.js';
import { SyncService } from './sync/sync.service.js';
import { GrantsService, defaultGrantOptions, type GrantOptions } from './grants/grants.service.js';
import { OAuthStates } from './oauth/oauth-states.js';
import { countGrantsByStatus } from './grants/grants.repository.js';
import { WritesService } from './writes/writes.service.js';
import { WriteApplier, defaultApplierOptions, type ApplierOptions } from './writes/write-applier.js';
import { WebhooksService } from './webhooks/webhooks.service.js';
import { WebhookDispatcher, defaultWebhookOptions, type WebhookOptions } from './webhooks/lane-drain.js';
import { WebhookSender } from './webhooks/sender.js';
import type { Resolver } from './webhooks/url-policy.js';
import { SinksService } from './sinks/sinks.service.js';
import type { DeliveryOverrides } from './sinks/delivery.js';
import { larkFileDownloader } from './sinks/lark-files.js';
import { SubscriptionsService } from './subscriptions/subscriptions.service.js';
import { defaultSubscriptionOptions, type SubscriptionOptions } from './subscriptions/subscription-manager.js';

import { defaultHealthOptions, type HealthOptions } from './subscriptions/event-health.js';

/** Everything a route or a job needs, built once per process. */
export interface Services {
  config: Config;
  db: Kysely<Database>;
  pool: pg.Pool;
  /** The worker's heartbeats: a connection of their own (see connectPools). */
  heartbeatDb: Kysely<Database>;
  sealer: Sealer;
  log: Logger;
  metrics: Metrics;
  http: LarkHttp;
  tickets: AppTicketsService;
  tokens: TokenService;
  tenants: TenantsService;
  apps: AppsService;
  events: EventsService;
  connectors: ConnectorsService;
  sync: SyncService;
  engine: SyncEngine;
  records: RecordsService;
  grants: GrantsService;
  oauthStates: OAuthStates;
  writes: WritesService;
  writeApplier: WriteApplier;
  webhooks: WebhooksService;
  webhookDispatcher: WebhookDispatcher;
  sinks: SinksService;
  subscriptions: SubscriptionsService;
  /** Paces change events' re-reads (the same Postgres buckets as syncs). */
  eventPacer: Pacer;
  /** Change-event handlers' freshness checks, asked together (sync/event-apply.ts). */
  freshReads: FreshReads;
}

export interface ServiceDeps {
  config: Config;
  db: Kysely<Database>;
  pool: pg.Pool;
  /** Pool of the event endpoint's group commit; the main pool when not given. */
  ingestPool?: pg.Pool;
  /** Database of the worker's heartbeats; the main one when not given. */
  heartbeatDb?: Kysely<Database>;
  sealer: Sealer;
  log: Logger;
  metrics?: Metrics;
  ticketOptions?: Partial<TicketOptions>;
  tokenOptions?: Partial<TokenOptions>;
  engineOptions?: Partial<EngineOptions>;
  grantOptions?: Partial<GrantOptions>;
  applierOptions?: Partial<ApplierOptions>;
  /** Retry timing, clock and limits of webhook deliveries; `resolve` plays DNS (tests). */
  webhookOptions?: Partial<WebhookOptions> & { resolve?: Resolver };
  sinkOptions?: DeliveryOverrides;
  /** Scales every Lark rate limit (tests against a simulator that allows more). */
  rateLimitScale?: number;
  /** Retry timing of subscribe calls and the thresholds of event health (tests). */
  subscriptionOptions?: { manager?: Partial<SubscriptionOptions>; health?: Partial<HealthOptions> };
}

export function createServices(deps: ServiceDeps): Services {
  const metrics = deps.metrics ?? createMetrics();
  const http = new LarkHttp(metrics);
  const tickets = new AppTicketsService(deps.db, deps.sealer, http, metrics, deps.log, {
    ...defaultTicketOptions,
    ...deps.ticketOptions,
  });
  const tokens = new TokenService(deps.db, deps.sealer, http, tickets, metrics, deps.log, {
    ...defaultTokenOptions,
    ...deps.tokenOptions,
  });
  const tenants = new TenantsService(deps.db);
  const services = {
    config: deps.config,
    db: deps.db,
    pool: deps.pool,
    heartbeatDb: deps.heartbeatDb ?? deps.db,
    sealer: deps.sealer,
    log: deps.log,
    metrics,
    http,
    tickets,
    tokens,
    tenants,
    apps: new AppsService(deps.db, deps.sealer, http, tokens, tenants, deps.config),
    events: new EventsService(deps.db, deps.ingestPool ?? deps.pool, deps.sealer, metrics, deps.log),
    connectors: new ConnectorsService(deps.db, MODULES),
    sync: new SyncService(deps.db),
    records: new RecordsService(deps.db, STREAM_CATALOG),
    grants: new GrantsService(deps.db, deps.sealer, http, deps.log, { ...defaultGrantOptions, ...deps.grantOptions }),
    oauthStates: new OAuthStates(deps.db, deps.sealer),
    eventPacer: new Pacer(deps.db, deps.rateLimitScale ?? 1),
    freshReads: new FreshReads(deps.db),
    writes: new WritesService(deps.db, tokens, http),
    sinks: new SinksService({ db: deps.db, sealer: deps.sealer, log: deps.log, metrics, download: larkFileDownloader((t) => tokens.forTenant(t), metrics), allowPrivate: deps.config.allowPrivateSinks }, deps.sinkOptions),
  } as Omit<Services, 'engine' | 'writeApplier' | 'webhooks' | 'webhookDispatcher' | 'subscriptions'> as Services;
  const { resolve, ...webhookOptions } = { ...defaultWebhookOptions, ...deps.webhookOptions };
  const webhookPolicy = { allowPrivate: deps.config.allowPrivateWebhooks };
  services.webhooks = new WebhooksService({ db: deps.db, sealer: deps.sealer, policy: webhookPolicy, resolve, clock: webhookOptions.clock });
  services.webhookDispatcher = new WebhookDispatcher(
    {
      db: deps.db,
      sealer: deps.sealer,
      log: deps.log,
      metrics,
      sender: new WebhookSender({ ...webhookPolicy, timeoutMs: webhookOptions.timeoutMs, maxResponseBytes: webhookOptions.maxResponseBytes, resolve }),
    },
    webhookOptions,
  );
  services.writeApplier = new WriteApplier(
    {
      db: deps.db,
      http,
      log: deps.log,
      pacer: new Pacer(deps.db, deps.rateLimitScale ?? 1),
      tokensFor: (appId, tenantKey, user) =>
        user ? services.grants.forUser({ appId, tenantKey, openId: user }) : tokens.forTenant(tenantKey),
      allowPrivateAttachments: deps.config.allowPrivateLarkDomains,
    },
    { ...defaultApplierOptions, ...deps.applierOptions },
  );
  metrics.watchGrants(() => countGrantsByStatus(deps.db));
  // Change-event subscriptions: made off the request path when a connector is stored (its job
  // commits with it), shown with the connector, and judged each minute for the scheduler.
  services.subscriptions = new SubscriptionsService(
    { db: deps.db, http, metrics, log: deps.log, pacer: new Pacer(deps.db, deps.rateLimitScale ?? 1), tokens, grants: services.grants },
    {
      manager: { ...defaultSubscriptionOptions, ...deps.subscriptionOptions?.manager },
      health: { ...defaultHealthOptions, ...deps.subscriptionOptions?.health },
    },
  );
  services.subscriptions.registerGauges(metrics.registry);
  services.connectors.hooks.changed = (trx, tenantKey, module) => services.subscriptions.connectorChanged(trx, tenantKey, module);
  services.connectors.hooks.annotate = (view) => services.subscriptions.annotate(view);
  tickets.applyPending = (appId) => services.events.applyPendingTickets(services, appId);
  // The engine calls back into the other services (tokens, tenants), so it is added last.
  const engineDeps = {
    ...services,
    // Documents a docs run committed are delivered while it goes on (a first sync of a large wiki
    // runs for minutes), rather than at the next minute's poll.
    pageCommitted: (_run: { module: string }, streams: string[]) => {
      if (streams.includes('docs_content')) services.sinks.queueSoon();
    },
    // A docs run that changed documents: their knowledge-base sinks deliver now, not at the next minute's poll.
    runFinished: async (run: { module: string; tenant_key: string }) => {
      if (run.module === 'docs') await services.sinks.queueDue();
      // The documents to subscribe to are the ones the run left in docs_content.
      if (run.module === 'docs') await services.subscriptions.queue(run.tenant_key, 'documents');
    },
  };
  services.engine = new SyncEngine(engineDeps, MODULES, new Pacer(deps.db, deps.rateLimitScale ?? 1), {
    ...defaultEngineOptions,
    ...deps.engineOptions,
  });
  return services;
}

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
import { SYNC_MODULES } from './connectors/index.js';
import { ConnectorsService } from './sync/connectors.service.js';
import { Pacer } from './sync/pacer.js';
import { RecordsService } from './sync/records.service.js';
import { SyncEngine, defaultEngineOptions, type EngineOptions } from './sync/engine/sync-engine.js';
import { SyncService } from './sync/sync.service.js';

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
  /** Scales every Lark rate limit (tests against a simulator that allows more). */
  rateLimitScale?: number;
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
    connectors: new ConnectorsService(deps.db, SYNC_MODULES),
    sync: new SyncService(deps.db),
    records: new RecordsService(deps.db),
  } as Omit<Services, 'engine'> as Services;
  tickets.applyPending = (appId) => services.events.applyPendingTickets(services, appId);
  // The engine calls back into the other services (tokens, tenants), so it is added last.
  services.engine = new SyncEngine(services, SYNC_MODULES, new Pacer(deps.db, deps.rateLimitScale ?? 1), {
    ...defaultEngineOptions,
    ...deps.engineOptions,
  });
  return services;
}

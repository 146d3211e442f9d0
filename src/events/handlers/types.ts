import type { Logger } from 'pino';
import type { EventGroup } from '../event-group.js';
import type { Config } from '../../config/env.js';
import type { GrantsService } from '../../grants/grants.service.js';
import type { SyncService } from '../../sync/sync.service.js';
import type { TenantsService } from '../../tenants/tenants.service.js';
import type { AppTicketsService } from '../../tokens/app-tickets.service.js';
import type { TokenService } from '../../tokens/tokens.service.js';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/database.js';
import type { LarkHttp } from '../../lark/http.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { Pacer } from '../../sync/pacer.js';
import type { FreshReads } from '../../sync/event-apply.js';
import type { ConnectorsService } from '../../sync/connectors.service.js';
import type { SinksService } from '../../sinks/sinks.service.js';

/**
 * What event handlers may touch, named: not the whole application. (Passing `Services` here tied
 * every service, handler and connector into one type-level import cycle.)
 */
export interface HandlerDeps {
  config: Pick<Config, 'storeApp'>;
  tenants: TenantsService;
  tokens: TokenService;
  tickets: AppTicketsService;
  sync: SyncService;
  grants: GrantsService;
  log: Logger;
  /** Change-event subscriptions (subscriptions/): an install makes them again, an uninstall forgets them. */
  subscriptions: { queue(tenantKey: string, reason: 'installed'): Promise<void>; tenantUninstalled(tenantKey: string): Promise<void> };
  /** Change events of the modules (module-events.ts): re-reads paced like syncs, written like pages. */
  db: Kysely<Database>;
  http: LarkHttp;
  metrics: Metrics;
  eventPacer: Pacer;
  freshReads: FreshReads;
  connectors: ConnectorsService;
  sinks: SinksService;
}

export interface EventContext {
  services: HandlerDeps;
  eventId: string;
  /** lark_events.id of the stored push */
  rowId: string;
  appId: string | null;
  tenantKey: string | null;
  /** Push time from the envelope (v1 `ts`, v2 `header.create_time`), or now. */
  pushedAt: Date;
  /** When the push was stored (lark_events.received_at). */
  receivedAt?: Date;
  /** A drain's group of the tenant's change events (event-group.ts), committed together. */
  group?: EventGroup;
}

/** Returns 'processed' when it changed something, 'ignored' when there was nothing to do. */
export type EventHandler = (event: Record<string, unknown>, ctx: EventContext) => Promise<'processed' | 'ignored'>;

export const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
export const openId = (v: unknown): string | null => str((v as { open_id?: unknown } | undefined)?.open_id) ?? null;

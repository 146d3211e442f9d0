import { sql, type Kysely } from 'kysely';
import { Value } from '@sinclair/typebox/value';
import type { Database } from '../db/database.js';
import './config-errors.js';
import { AppError } from '../errors.js';
import type { SyncModuleDef } from './sync-module.js';
import type { ConnectorRow, SyncModuleName } from './sync.tables.js';

export interface ConnectorView {
  tenantKey: string;
  module: SyncModuleName;
  enabled: boolean;
  intervalMinutes: number;
  /** the interval while the module's change events are healthy */
  eventsIntervalMinutes: number;
  config: Record<string, unknown>;
  updatedAt: string;
  warnings: string[];
  /** the module's change events and what they do to polling (subscriptions/); null: it has none */
  events: ConnectorEvents | null;
}

/** A module's change events, as the connector's answer shows them (filled in by subscriptions/). */
export interface ConnectorEvents {
  /** `healthy`: subscribed and heard from, polling stretched; `gap`: polling as configured; `unknown`: not judged yet */
  status: 'healthy' | 'gap' | 'unknown';
  reason: string | null;
  /** what the reason means, for people */
  detail: string | null;
  /** how far behind the copy may be: 0 while events are healthy, else the time since the last poll that succeeded began */
  lagSeconds: number | null;
  lastEventAt: string | null;
  /** the interval the scheduler uses now */
  pollingIntervalMinutes: number;
  subscriptions: {
    subscribed: number;
    pending: number;
    refused: number;
    failed: number;
    /** refused and failed ones (at most 20) */
    problems: Array<{ object: string; objectType: string; status: string; errorCode: number | null; error: string | null }>;
  };
}

export interface ConnectorInput {
  enabled: boolean;
  intervalMinutes?: number;
  eventsIntervalMinutes?: number;
  config?: Record<string, unknown>;
}

export const DEFAULT_INTERVAL_MINUTES = 60;
/** Polling while change events are healthy: a daily (full) pass as the safety net. */
export const DEFAULT_EVENTS_INTERVAL_MINUTES = 1440;

/**
 * What other parts add to connectors (services.ts wires subscriptions/ in): `changed` runs in the
 * transaction that stores a connector (its subscription job commits with it); `annotate` adds the
 * events' view and warnings to an answer.
 */
export interface ConnectorHooks {
  changed?(trx: Kysely<Database>, tenantKey: string, module: SyncModuleName): Promise<void>;
  annotate?(view: ConnectorView): Promise<ConnectorView>;
}

/** Per-tenant module configuration, validated against the module's schema before it is stored. */
export class ConnectorsService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly modules: Readonly<Record<string, SyncModuleDef>>,
    readonly hooks: ConnectorHooks = {},
  ) {}

  module(name: SyncModuleName): SyncModuleDef {
    const m = this.modules[name];
    // Names are checked where they come in (route schemas); one that slips through is a bug.
    if (!m) throw new Error(`no module named ${name}`);
    return m;
  }

  /** Fills defaults and validates; the message names the first bad field. */
  validate(name: SyncModuleName, config: unknown): Record<string, unknown> {
    const m = this.module(name);
    const filled = Value.Default(m.configSchema, structuredClone(config ?? {})) as Record<string, unknown>;
    if (!Value.Check(m.configSchema, filled)) {
      const first = [...Value.Errors(m.configSchema, filled)][0];
      const field = first?.path ? `config${first.path.replace(/\//g, '.')}` : 'config';
      throw new AppError(400, 'invalid_config', `${field}: ${first?.message ?? 'invalid value'}`);
    }
    return filled;
  }

  async get(tenantKey: string, name: SyncModuleName, appKind: 'store' | 'custom'): Promise<ConnectorView | undefined> {
    const row = await this.db
      .selectFrom('connectors')
      .selectAll()
      .where('tenant_key', '=', tenantKey)
      .where('module', '=', name)
      .executeTakeFirst();
    return row ? this.annotated(this.view(row, appKind)) : undefined;
  }

  async put(tenantKey: string, name: SyncModuleName, input: ConnectorInput, appKind: 'store' | 'custom'): Promise<ConnectorView> {
    const config = this.validate(name, input.config ?? {});
    const interval = input.intervalMinutes ?? DEFAULT_INTERVAL_MINUTES;
    const eventsInterval = input.eventsIntervalMinutes ?? null;
    const row = await this.db.transaction().execute(async (trx) => {
      const stored = await trx
        .insertInto('connectors')
        .values({ tenant_key: tenantKey, module: name, enabled: input.enabled, interval_minutes: interval, events_interval_minutes: eventsInterval, config: JSON.stringify(config) })
        .onConflict((oc) =>
          oc.columns(['tenant_key', 'module']).doUpdateSet({
            enabled: input.enabled,
            interval_minutes: interval,
            // Left out (the admin page's form has no such field): what was stored stays. The REST
            // route always gives one (its schema's default), so a PUT still replaces it.
            events_interval_minutes: input.eventsIntervalMinutes ?? sql<number | null>`connectors.events_interval_minutes`,
            config: JSON.stringify(config),
            updated_at: sql<Date>`now()`,
          }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      await this.hooks.changed?.(trx, tenantKey, name);
      return stored;
    });
    return this.annotated(this.view(row, appKind));
  }

  private async annotated(view: ConnectorView): Promise<ConnectorView> {
    return this.hooks.annotate ? this.hooks.annotate(view) : view;
  }

  private view(row: ConnectorRow, appKind: 'store' | 'custom'): ConnectorView {
    return {
      tenantKey: row.tenant_key,
      module: row.module,
      enabled: row.enabled,
      intervalMinutes: row.interval_minutes,
      eventsIntervalMinutes: row.events_interval_minutes ?? DEFAULT_EVENTS_INTERVAL_MINUTES,
      config: row.config,
      updatedAt: row.updated_at.toISOString(),
      warnings: this.module(row.module).warnings(row.config, appKind),
      events: null,
    };
  }
}

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
  config: Record<string, unknown>;
  updatedAt: string;
  warnings: string[];
}

export interface ConnectorInput {
  enabled: boolean;
  intervalMinutes?: number;
  config?: Record<string, unknown>;
}

export const DEFAULT_INTERVAL_MINUTES = 60;

/** Per-tenant module configuration, validated against the module's schema before it is stored. */
export class ConnectorsService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly modules: Readonly<Record<string, SyncModuleDef>>,
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
    return row ? this.view(row, appKind) : undefined;
  }

  async put(tenantKey: string, name: SyncModuleName, input: ConnectorInput, appKind: 'store' | 'custom'): Promise<ConnectorView> {
    const config = this.validate(name, input.config ?? {});
    const interval = input.intervalMinutes ?? DEFAULT_INTERVAL_MINUTES;
    const row = await this.db
      .insertInto('connectors')
      .values({ tenant_key: tenantKey, module: name, enabled: input.enabled, interval_minutes: interval, config: JSON.stringify(config) })
      .onConflict((oc) =>
        oc.columns(['tenant_key', 'module']).doUpdateSet({
          enabled: input.enabled,
          interval_minutes: interval,
          config: JSON.stringify(config),
          updated_at: sql<Date>`now()`,
        }),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
    return this.view(row, appKind);
  }

  private view(row: ConnectorRow, appKind: 'store' | 'custom'): ConnectorView {
    return {
      tenantKey: row.tenant_key,
      module: row.module,
      enabled: row.enabled,
      intervalMinutes: row.interval_minutes,
      config: row.config,
      updatedAt: row.updated_at.toISOString(),
      warnings: this.module(row.module).warnings(row.config, appKind),
    };
  }
}

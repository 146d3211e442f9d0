import type { Kysely } from 'kysely';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import type { ConnectorView } from '../sync/connectors.service.js';
import { annotateConnector } from './connector-events.js';
import { defaultHealthOptions, lagByModule, refreshConnectorHealth, scanEventMarks, type HealthOptions } from './event-health.js';
import { EVENT_MODULES, needsSubscribeCalls } from './event-modules.js';
import { forgetTenantSubscriptions, queueDueSubscriptionJobs, queueSubscriptionJob, type SubscriptionReason } from './queue.js';
import { SubscriptionManager, defaultSubscriptionOptions, type JobResult, type SubscriptionDeps, type SubscriptionOptions } from './subscription-manager.js';

export interface SubscriptionsConfig {
  manager: SubscriptionOptions;
  health: HealthOptions;
}

/** Change-event subscriptions and the health of each module's events: what the rest of larksync calls. */
export class SubscriptionsService {
  readonly manager: SubscriptionManager;
  private readonly db: Kysely<Database>;
  private readonly log: Logger;

  constructor(
    deps: SubscriptionDeps,
    private readonly config: SubscriptionsConfig = { manager: defaultSubscriptionOptions, health: defaultHealthOptions },
  ) {
    this.db = deps.db;
    this.log = deps.log;
    this.manager = new SubscriptionManager(deps, config.manager);
  }

  /** Queues the tenant's subscription job (in the caller's transaction when given one). */
  queue(tenantKey: string, reason: SubscriptionReason, db: Kysely<Database> = this.db): Promise<void> {
    return queueSubscriptionJob(db, tenantKey, reason);
  }

  /** The tenant uninstalled the app: its subscription rows and queued job go (see forgetTenantSubscriptions). */
  async tenantUninstalled(tenantKey: string): Promise<void> {
    const n = await forgetTenantSubscriptions(this.db, tenantKey);
    if (n > 0) this.log.info({ tenantKey, subscriptions: n }, 'tenant uninstalled: its change-event subscriptions forgotten');
  }

  /** A connector was stored: a module that subscribes gets its job, in the same transaction. */
  async connectorChanged(trx: Kysely<Database>, tenantKey: string, module: string): Promise<void> {
    if (needsSubscribeCalls(module)) await queueSubscriptionJob(trx, tenantKey, 'configured');
  }

  /** One job: plan and act on a tenant's rows; queues the next one when there is more or a retry is due later. */
  async runJob(tenantKey: string): Promise<JobResult> {
    const result = await this.manager.run(tenantKey);
    if (result.nextAt) {
      const later = result.nextAt.getTime() > Date.now() ? result.nextAt : undefined;
      await queueSubscriptionJob(this.db, tenantKey, 'due', later);
    }
    return result;
  }

  /** The minute's work: event marks, every connector's verdict, and jobs for retries that came due. */
  async refreshHealth(): Promise<{ healthy: number; gaps: number }> {
    await scanEventMarks(this.db);
    const counts = await refreshConnectorHealth(this.db, this.config.health);
    const queued = await queueDueSubscriptionJobs(this.db);
    if (queued > 0) this.log.info({ tenants: queued }, 'subscription retries due: jobs queued');
    return counts;
  }

  annotate(view: ConnectorView): Promise<ConnectorView> {
    return annotateConnector(this.db, view);
  }

  /**
   * `/metrics`: `larksync_events_lag_seconds{module}` (the largest lag among connectors whose
   * events are in a gap; 0 when none is) and `larksync_events_gap_connectors{module,reason}`,
   * read from the minute's verdicts at scrape time (per module, not per tenant: tenants are many).
   */
  registerGauges(registry: Registry): void {
    const db = this.db;
    let read: { at: number; value: ReturnType<typeof lagByModule> } | undefined;
    const current = () => {
      if (!read || performance.now() - read.at > 2_000) read = { at: performance.now(), value: lagByModule(db) };
      return read.value;
    };
    new Gauge({
      name: 'larksync_events_lag_seconds',
      help: "Per module, the largest lag among connectors whose change events are in a gap (seconds since the copy was last known complete); 0: every connector's events are healthy",
      labelNames: ['module'] as const,
      registers: [registry],
      async collect() {
        try {
          const rows = await current();
          for (const m of EVENT_MODULES) this.set({ module: m }, Math.max(0, ...rows.filter((r) => r.module === m).map((r) => r.maxLagSeconds)));
        } catch {
          read = undefined;
        }
      },
    });
    new Gauge({
      name: 'larksync_events_gap_connectors',
      help: 'Connectors whose change events are in a gap (polling as configured), by module and reason',
      labelNames: ['module', 'reason'] as const,
      registers: [registry],
      async collect() {
        try {
          const rows = await current();
          this.reset();
          for (const r of rows) this.set({ module: r.module, reason: r.reason }, r.connectors);
        } catch {
          read = undefined;
        }
      },
    });
  }
}

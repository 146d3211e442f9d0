import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { ConnectorEvents, ConnectorView } from '../sync/connectors.service.js';
import { hasEvents } from './event-modules.js';
import type { GapReason } from './event-health.js';

const DETAIL: Record<GapReason, string> = {
  subscription_refused: 'Lark refused a subscribe call (see the warnings): polling as configured',
  subscription_failed: 'a subscribe call failed and is retried with backoff: polling as configured',
  not_subscribed: 'subscriptions are not made yet: polling as configured',
  no_events: 'no change event received yet: polling as configured',
  events_silent: 'no change event for over a day: polling as configured',
  changes_missed: 'a poll found changes the events had not brought: polling as configured until events flow again',
};

const MODULE_TITLE: Record<string, string> = { approval: 'Approval', base: 'Base', docs: 'Docs' };
const THING: Record<string, string> = { approval: 'approval definition', bitable: 'Base' };
const MAX_PROBLEMS = 20;
const MAX_WARNINGS = 5;

/**
 * Adds a connector's change events to its answer (REST and admin page): their health, the lag, the
 * interval polling uses now, the subscriptions, and a warning per refused subscription saying what
 * to do, with the reminder that the module keeps working by polling.
 */
export async function annotateConnector(db: Kysely<Database>, view: ConnectorView): Promise<ConnectorView> {
  if (!hasEvents(view.module)) return view;
  const [health, counts, problems] = await Promise.all([
    db
      .selectFrom('connector_event_health')
      .select(['healthy', 'gap_reason', 'behind_since', 'last_event_at', sql<number>`extract(epoch from now() - behind_since)::float8`.as('lag')])
      .where('tenant_key', '=', view.tenantKey)
      .where('module', '=', view.module)
      .executeTakeFirst(),
    sql<{ status: string; n: number }>`
      select status, count(*)::int as n from lark_subscriptions
       where tenant_key = ${view.tenantKey} and module = ${view.module} and wanted group by status`.execute(db),
    db
      .selectFrom('lark_subscriptions')
      .select(['object_token', 'object_type', 'status', 'error_code', 'last_error'])
      .where('tenant_key', '=', view.tenantKey)
      .where('module', '=', view.module)
      .where('wanted', '=', true)
      .where('status', 'in', ['refused', 'failed'])
      .orderBy('object_token')
      .limit(MAX_PROBLEMS)
      .execute(),
  ]);
  const n = (status: string) => counts.rows.find((r) => r.status === status)?.n ?? 0;
  const healthy = view.enabled && health?.healthy === true;
  const stretched = healthy && view.eventsIntervalMinutes > view.intervalMinutes;
  const reason = health && !health.healthy ? (health.gap_reason as GapReason | null) : null;
  const events: ConnectorEvents = {
    status: !view.enabled || !health ? 'unknown' : health.healthy ? 'healthy' : 'gap',
    reason,
    detail: healthy
      ? stretched
        ? `change events keep the copy current: polling stretched to every ${view.eventsIntervalMinutes} min`
        : 'change events keep the copy current'
      : reason
        ? DETAIL[reason]
        : null,
    lagSeconds: !health || !view.enabled ? null : health.healthy ? 0 : Math.max(0, Math.round(Number(health.lag ?? 0))),
    lastEventAt: health?.last_event_at ? new Date(health.last_event_at).toISOString() : null,
    pollingIntervalMinutes: stretched ? view.eventsIntervalMinutes : view.intervalMinutes,
    subscriptions: {
      subscribed: n('subscribed'),
      pending: n('pending'),
      refused: n('refused'),
      failed: n('failed'),
      problems: problems.map((p) => ({
        object: p.object_token,
        objectType: p.object_type,
        status: p.status,
        errorCode: p.error_code,
        error: p.last_error,
      })),
    },
  };
  const refused = problems.filter((p) => p.status === 'refused');
  const warnings = refused.slice(0, MAX_WARNINGS).map(
    (p) =>
      `Change events are off for ${THING[p.object_type] ?? 'document'} ${p.object_token}: ${p.last_error ?? 'Lark refused the subscribe call'}. ` +
      `${MODULE_TITLE[view.module] ?? view.module} keeps working by polling every ${view.intervalMinutes} min.`,
  );
  if (n('refused') > MAX_WARNINGS) warnings.push(`…and ${n('refused') - MAX_WARNINGS} more refused subscriptions (listed under events.subscriptions.problems).`);
  return { ...view, warnings: [...view.warnings, ...warnings], events };
}

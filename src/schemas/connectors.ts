import { Type, type TSchema } from '@sinclair/typebox';
import { MODULE_NAMES, SYNC_MODULES } from '../connectors/index.js';
import { DEFAULT_EVENTS_INTERVAL_MINUTES, DEFAULT_INTERVAL_MINUTES } from '../sync/connectors.service.js';

// Checked against the registry's names; typed as a plain string, as sync/ treats module names.
export const ModuleName = Type.Unsafe<string>({ type: 'string', enum: MODULE_NAMES, description: 'A sync module' });

/** Schedule bounds: below 5 min a tenant's runs would queue behind each other; a week is the longest useful gap. */
export const MIN_INTERVAL_MINUTES = 5;
export const MAX_INTERVAL_MINUTES = 10_080;

/**
 * The module configs are checked by the connectors service (TypeBox, with messages that name the
 * field), not by the route schema, so the spec lists each module's settings in prose. Built from
 * the module schemas themselves, so it cannot drift from what is enforced.
 */
function describeModuleConfigs(): string {
  const lines = MODULE_NAMES.map((name) => {
    const schema = SYNC_MODULES[name].configSchema as (TSchema & { properties?: Record<string, TSchema>; required?: string[] }) | undefined;
    if (!schema?.properties) return `${name}: not available in this build`;
    const required = new Set(schema.required ?? []);
    const fields = Object.entries(schema.properties).map(([field, s]) => {
      const notes: string[] = [];
      // TypeBox lists defaulted fields as required; for the caller they are optional.
      if (s.default !== undefined) notes.push(`default ${JSON.stringify(s.default)}`);
      else if (required.has(field)) notes.push('required');
      return notes.length > 0 ? `${field} (${notes.join(', ')})` : field;
    });
    return `${name}: ${fields.join(', ')}`;
  });
  return `Module settings, checked against the module's schema (a bad value answers 400 invalid_config naming the field). ${lines.join('; ')}`;
}

export const ConnectorParams = Type.Object({
  tenantKey: Type.String({ minLength: 1, maxLength: 128 }),
  module: ModuleName,
});

const ConfigObject = (description: string) =>
  Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true, description });

export const ConnectorBody = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Whether the schedule runs this connector; a disabled one can still be run through POST .../syncs' }),
    intervalMinutes: Type.Optional(
      Type.Integer({
        minimum: MIN_INTERVAL_MINUTES,
        maximum: MAX_INTERVAL_MINUTES,
        default: DEFAULT_INTERVAL_MINUTES,
        description: 'Minutes between scheduled runs',
      }),
    ),
    eventsIntervalMinutes: Type.Optional(
      Type.Integer({
        minimum: MIN_INTERVAL_MINUTES,
        maximum: MAX_INTERVAL_MINUTES,
        default: DEFAULT_EVENTS_INTERVAL_MINUTES,
        description:
          "Minutes between scheduled runs while the module's change events are healthy (subscribed and recently received); " +
          'those runs are full passes. Any gap in the events brings intervalMinutes back. Not above intervalMinutes: no stretching',
      }),
    ),
    config: Type.Optional(ConfigObject(describeModuleConfigs())),
  },
  { additionalProperties: false, description: 'The whole connector: omitted fields take their defaults (PUT replaces, it does not merge)' },
);

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const ConnectorEvents = Type.Object(
  {
    status: Type.Union([Type.Literal('healthy'), Type.Literal('gap'), Type.Literal('unknown')], {
      description: 'healthy: subscribed and heard from recently, polling stretched; gap: polling as configured; unknown: not judged yet (within a minute) or disabled',
    }),
    reason: Nullable(
      Type.String({
        description: 'Why a gap: subscription_refused, subscription_failed, not_subscribed, no_events, events_silent, changes_missed (a poll found changes the events had not brought)',
      }),
    ),
    detail: Nullable(Type.String({ description: 'The status in words' })),
    lagSeconds: Nullable(
      Type.Number({ description: 'How far behind the copy may be: 0 while events are healthy, else seconds since the last successful poll began' }),
    ),
    lastEventAt: Nullable(Type.String({ format: 'date-time', description: "When the module's last change event arrived" })),
    pollingIntervalMinutes: Type.Integer({ description: 'The interval the scheduler uses now (eventsIntervalMinutes while healthy)' }),
    subscriptions: Type.Object({
      subscribed: Type.Integer(),
      pending: Type.Integer(),
      refused: Type.Integer({ description: 'Lark refused (e.g. 1069603: the app needs manage rights on the Base); retried every 6 hours and at every reconfiguration' }),
      failed: Type.Integer({ description: 'Failed for a passing reason; retried with backoff' }),
      problems: Type.Array(
        Type.Object({
          object: Type.String({ description: 'The approval code, Base app_token or document token' }),
          objectType: Type.String({ description: 'approval, or the Drive file type (bitable, docx, …)' }),
          status: Type.String(),
          errorCode: Nullable(Type.Integer()),
          error: Nullable(Type.String({ description: 'What Lark said, and what to do' })),
        }),
        { description: 'Refused and failed subscriptions (up to 20)' },
      ),
    }),
  },
  { description: "A module's change events: Lark delivers them only after subscribe calls larksync makes (contact: none needed)" },
);

export const Connector = Type.Object(
  {
    tenantKey: Type.String(),
    module: ModuleName,
    enabled: Type.Boolean(),
    intervalMinutes: Type.Integer(),
    config: ConfigObject('The stored settings, defaults filled in'),
    updatedAt: Type.String({ format: 'date-time' }),
    warnings: Type.Array(Type.String(), {
      description:
        'Accepted, but worth knowing (e.g. attendance on a store app: its runs will fail; a change-event subscription Lark refused, with what to do)',
    }),
    eventsIntervalMinutes: Type.Integer({ description: "Minutes between scheduled runs while the module's change events are healthy" }),
    events: Type.Union([ConnectorEvents, Type.Null()], {
      description: "The module's change events and what they do to polling; null for a module Lark sends none for (attendance)",
    }),
  },
  { description: 'The connector' },
);

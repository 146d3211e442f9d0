import { Type } from '@sinclair/typebox';
import { ModuleName } from './connectors.js';
import { Nullable, StringEnum } from './common.js';

const MODES = ['incremental', 'full'] as const;
const MODE_DESCRIPTION = 'full re-reads everything and marks rows no longer listed upstream as deleted';
export const SyncMode = StringEnum(MODES, { description: MODE_DESCRIPTION });

export const TriggerSyncBody = Type.Object(
  {
    module: ModuleName,
    mode: Type.Optional(StringEnum(MODES, { description: MODE_DESCRIPTION, default: 'incremental' })),
  },
  { additionalProperties: false },
);

export const SyncParams = Type.Object({
  id: Type.String({ pattern: '^[0-9]{1,18}$', description: 'Run id, as returned by POST /api/v1/tenants/{tenantKey}/syncs' }),
});

export const SyncListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  module: Type.Optional(ModuleName),
});

export const SyncRun = Type.Object(
  {
    id: Type.String(),
    tenantKey: Type.String(),
    module: ModuleName,
    mode: SyncMode,
    status: StringEnum(['queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled'], {
      description: 'partial: finished, but some items (a Base table, an approval code, a department) failed; see itemErrors',
    }),
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Nullable(Type.String({ format: 'date-time' })),
    finishedAt: Nullable(Type.String({ format: 'date-time' })),
    counts: Type.Unsafe<Record<string, number>>({
      type: 'object',
      additionalProperties: { type: 'integer' },
      description: 'Rows received per stream so far (unchanged rows included)',
    }),
    pages: Type.Integer({ description: 'Checkpoints committed: one per upstream page, plus the closing step of a phase' }),
    upstreamCalls: Type.Integer({ description: 'Calls made to Lark, retries included' }),
    throttledWaits: Type.Integer({ description: 'Times the run waited for Lark rate limits' }),
    deletions: Type.Object(
      {
        confirmed: Type.Integer({ description: 'Rows marked deleted: missing from a complete listing and confirmed gone' }),
        candidatesAlive: Type.Integer({
          description: 'Rows a complete listing missed that a direct read (or the next listing) found alive, or could not confirm gone: kept',
        }),
      },
      { description: 'Deletions are marked only when certain' },
    ),
    valuesSanitized: Type.Integer({ description: 'Values stored with U+FFFD in place of a NUL or a lone surrogate, which Postgres cannot store' }),
    error: Nullable(
      Type.Object({
        class: Type.String({ description: 'Stable error class, e.g. unsupported_for_store_app, tenant_not_active, cancelled' }),
        message: Type.String(),
      }),
    ),
    itemErrors: Type.Array(
      Type.Object({
        item: Type.String({ description: 'What failed: base_table, approval_code, department' }),
        id: Type.String({ description: 'The item as configured, e.g. <appToken>/<tableId>' }),
        errorClass: Type.String({ description: 'permission_denied, not_found, invalid_config, upstream_unavailable' }),
        message: Type.String({ description: 'What happened and what to do about it' }),
      }),
      { description: 'Items that failed while the others went on (a run with any ends partial)' },
    ),
  },
  { description: 'The sync run' },
);

export const SyncRunList = Type.Object(
  { runs: Type.Array(SyncRun) },
  { description: 'The most recent runs, newest first' },
);

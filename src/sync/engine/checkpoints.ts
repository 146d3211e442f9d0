import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../../db/database.js';
import { Value } from '@sinclair/typebox/value';
import type { PhaseState, SyncPhase } from '../sync-module.js';
import type { ItemError } from '../sync.tables.js';
import type { RunCounters } from '../sync-lark-client.js';
import { RunAbortedError } from '../sync-errors.js';

/**
 * A phase's checkpoint: its state after the last committed page, and whether it finished. Stored
 * in stream_states, keyed by (tenant, module, phase); the `stream` column holds the phase name
 * (a phase may fill several streams).
 */
export interface StoredPhaseState {
  s: PhaseState;
  done: boolean;
}

export interface LoadedPhase {
  /** the run that stored it: a state of this very run is resumed, any other is a previous cursor */
  runId: string | null;
  state: StoredPhaseState;
}

export const checkpointText = (s: PhaseState, done: boolean): string => JSON.stringify({ s, done } satisfies StoredPhaseState);

function isStored(v: unknown): v is StoredPhaseState {
  const o = v as { s?: unknown; done?: unknown } | null;
  return typeof o === 'object' && o !== null && typeof o.s === 'object' && o.s !== null && typeof o.done === 'boolean';
}

export async function loadPhaseState(
  db: Kysely<Database>,
  tenantKey: string,
  module: string,
  phase: Pick<SyncPhase<PhaseState, never>, 'name' | 'stateSchema'>,
): Promise<LoadedPhase | undefined> {
  const row = await db
    .selectFrom('stream_states')
    .select(['state', 'run_id'])
    .where('tenant_key', '=', tenantKey)
    .where('module', '=', module)
    .where('stream', '=', phase.name)
    .executeTakeFirst();
  // A state of another shape (an edit by hand, an older or future version) starts the phase
  // afresh, as Nango treats a checkpoint that fails its schema.
  if (!row || !isStored(row.state) || !Value.Check(phase.stateSchema, row.state.s)) return undefined;
  return { runId: row.run_id, state: row.state };
}

/** What one page adds to its run. */
export interface PageTally {
  counts: Record<string, number>;
  /** counters of upstream calls up to this page, less those already on the run */
  calls: RunCounters;
  sanitized: number;
  itemErrors: ItemError[];
}

/**
 * In a page's transaction, first of all: adds the page to the run's counters, appends its item
 * errors and stores the phase checkpoint, only if this slice still holds the lease of a running
 * run (otherwise the page rolls back). The update also locks the run row until the page commits,
 * so a cancel waits for the page or wins before it, and a slice that lost its lease can neither
 * commit rows nor sweep.
 */
export async function claimPage(
  trx: Transaction<Database>,
  run: { id: string; tenant_key: string; module: string },
  lease: string,
  phase: string,
  checkpoint: string,
  tally: PageTally,
): Promise<void> {
  const counts = JSON.stringify(tally.counts);
  const res = await sql<{ n: number }>`
    with claimed as (
      update sync_runs set
        counts = (
          select coalesce(jsonb_object_agg(k, coalesce((sync_runs.counts ->> k)::bigint, 0) + coalesce((${counts}::jsonb ->> k)::bigint, 0)), '{}'::jsonb)
            from jsonb_object_keys(sync_runs.counts || ${counts}::jsonb) as k),
        pages = pages + 1,
        upstream_calls = upstream_calls + ${tally.calls.upstreamCalls}::int,
        throttled_waits = throttled_waits + ${tally.calls.throttledWaits}::int,
        values_sanitized = values_sanitized + ${tally.sanitized}::int,
        item_errors = item_errors || ${JSON.stringify(tally.itemErrors)}::jsonb,
        heartbeat_at = now()
      where id = ${run.id} and lease_id = ${lease} and status = 'running'
      returning id
    ),
    checkpoint as (
      insert into stream_states (tenant_key, module, stream, state, run_id)
      select ${run.tenant_key}, ${run.module}, ${phase}, ${checkpoint}::jsonb, id from claimed
      on conflict (tenant_key, module, stream) do update set state = excluded.state, run_id = excluded.run_id, updated_at = now()
    )
    select count(*)::int as n from claimed`.execute(trx);
  if ((res.rows[0]?.n ?? 0) > 0) return;
  const current = await trx.selectFrom('sync_runs').select(['status']).where('id', '=', run.id).executeTakeFirst();
  // Only a cancelled (or vanished) run is over; a lost lease means another slice carries on.
  throw new RunAbortedError(!current || current.status === 'cancelled' ? 'cancelled' : 'lease_lost');
}

/**
 * Deletions judged in a page's transaction (after claimPage, which holds the run row), and the
 * rows the page changed (deletions included), which tell a poll that found changes.
 */
export async function addDeletionCounts(trx: Transaction<Database>, runId: string, deleted: number, alive: number, changed = 0): Promise<void> {
  if (deleted === 0 && alive === 0 && changed === 0) return;
  await sql`
    update sync_runs set deletions_confirmed = deletions_confirmed + ${deleted}::int,
                         deletion_candidates_alive = deletion_candidates_alive + ${alive}::int,
                         rows_changed = rows_changed + ${changed + deleted}::int
     where id = ${runId}`.execute(trx);
}

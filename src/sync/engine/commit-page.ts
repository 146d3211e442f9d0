import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../../db/database.js';
import type { Metrics } from '../../metrics/metrics.js';
import { applyConfirmation, sweepUnseen } from '../deletions.js';
import type { StreamName } from '../streams.js';
import type { RunCounters } from '../sync-lark-client.js';
import { replaceChildren, writeRows, type PreparedRows } from '../write-page.js';
import { addDeletionCounts, claimPage } from './checkpoints.js';
import type { ReadyPage } from './prepare-page.js';
import type { RunLease } from './run-lease.js';
import { emitWebhookEvent } from '../../webhooks/emit.js';

/** A page's transaction still open, and the keys it writes (`stream NUL key`). */
export interface InFlight {
  done: Promise<void>;
  keys: Set<string>;
}

export const keysOf = (ready: ReadyPage): Set<string> => new Set(ready.writes.flatMap((w) => w.keys.map((k) => `${w.stream.name}\u0000${k}`)));

export interface CommitDeps {
  db: Kysely<Database>;
  log: Logger;
  metrics: Metrics;
}

/**
 * Rows, deletions, checkpoint and run counters of one page: all or nothing.
 *
 * With `previous` (the page before it, still committing), the rows whose keys that page does not
 * hold are written at once, overlapping its commit; the run row is claimed, and with it the
 * checkpoint stored, only once `previous` has committed, so checkpoints commit in page order and
 * never ahead of their rows. Should `previous` fail, this transaction rolls back. Keys in both
 * pages (an offset shift upstream) are written after `previous`, so the two transactions never
 * wait on each other. The overlap is also why rows carry their transaction's id: positions drawn
 * here may be lower than those of `previous`, which the records feed must not serve past.
 *
 * Sweeps and confirmed deletions run after the claim: a slice that lost its lease rolls back
 * before it could judge anything deleted.
 */
export async function commitPage(
  deps: CommitDeps,
  lease: RunLease,
  phase: string,
  tracked: readonly StreamName[],
  ready: ReadyPage,
  previous: InFlight | undefined,
): Promise<void> {
  const { run } = lease;
  const { page } = ready;
  // The read this page came from (read-seq.ts): rows a newer read (a change event) wrote meanwhile stay.
  const readSeq = page.readSeq;
  let upto: RunCounters | undefined;
  await deps.db.transaction().execute(async (trx) => {
    const later: Array<{ w: PreparedRows; only: number[] }> = [];
    // Rows this page changed (not just read): polling's health check (subscriptions/) looks for them.
    let changed = 0;
    for (const w of ready.writes) {
      const recordSeen = tracked.includes(w.stream.name);
      if (!previous) {
        changed += await writeRows(trx, run.tenant_key, run.id, w, { recordSeen, readSeq });
        continue;
      }
      const now: number[] = [];
      const after: number[] = [];
      w.keys.forEach((k, i) => (previous.keys.has(`${w.stream.name}\u0000${k}`) ? after : now).push(i));
      changed += await writeRows(trx, run.tenant_key, run.id, w, { recordSeen, only: now, readSeq });
      if (after.length > 0) later.push({ w, only: after });
    }
    if (previous) await previous.done;
    // Taken now, once the page before is flushed: reads ahead add to the counters meanwhile.
    upto = { ...lease.counters };
    await claimPage(trx, run, lease.id, phase, ready.checkpoint, {
      counts: ready.counts,
      calls: {
        upstreamCalls: upto.upstreamCalls - lease.flushed.upstreamCalls,
        throttledWaits: upto.throttledWaits - lease.flushed.throttledWaits,
      },
      sanitized: ready.sanitized,
      itemErrors: page.itemErrors ?? [],
    });
    for (const { w, only } of later) {
      changed += await writeRows(trx, run.tenant_key, run.id, w, { recordSeen: tracked.includes(w.stream.name), only, readSeq });
    }
    if (page.replaceChildren?.length) await replaceChildren(trx, run.tenant_key, page.replaceChildren, readSeq);
    let deleted = 0;
    let alive = 0;
    for (const s of page.sweep ?? []) {
      const judged = await sweepUnseen(trx, run.tenant_key, run.id, s, readSeq);
      if (judged.untrusted) {
        deps.log.warn({ runId: run.id, stream: s.stream, partition: s.partition }, 'empty listing of a partition that has rows: nothing judged deleted');
      }
      deleted += judged.deleted;
      alive += judged.alive;
    }
    for (const c of page.confirm ?? []) {
      const judged = await applyConfirmation(trx, run.tenant_key, run.id, c, readSeq);
      deleted += judged.deleted;
      alive += judged.alive;
    }
    await addDeletionCounts(trx, run.id, deleted, alive, changed);
    // Webhooks: what this transaction changed, per stream, in the outbox with the rows (last, once `previous` committed).
    await emitWebhookEvent(trx, { type: 'records.changed', tenantKey: run.tenant_key, data: { streams: [...ready.writes.map((w) => w.stream.name), ...[...(page.replaceChildren ?? []), ...(page.sweep ?? []), ...(page.confirm ?? [])].map((s) => s.stream)] } });
  });
  // Before this promise settles: the page after this one claims only once it has.
  if (upto) Object.assign(lease.flushed, upto);
  for (const [stream, n] of Object.entries(ready.counts)) {
    if (n > 0) deps.metrics.syncRows.inc({ stream }, n);
  }
}

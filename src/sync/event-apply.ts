import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import { GroupCommitter } from '../db/group-commit.js';
import { emitWebhookEvent } from '../webhooks/emit.js';
import type { StreamDef } from './streams.js';
import type { EventChange } from './sync-module.js';
import { newerRead, READ_START } from './read-seq.js';
import { prepareRows, replaceChildren, storableText, writeStreams, type PreparedRows } from './write-page.js';

/** A change event's re-read, prepared outside any transaction: what it touches, and its writes. */
export interface PreparedEventChange {
  /** the streams whose rows it may change (for `records.changed`) */
  touched: ReadonlySet<string>;
  /** the objects' event marks it advances, and when its re-read started (see freshObjectsForRead) */
  marks: EventChange['marks'];
  readAt: Date | undefined;
  /**
   * Writes the rows and deletions in `trx`; returns the rows inserted, changed or marked deleted.
   * The marks are the caller's to write (writeMarks): a drain's group writes all of its events' in
   * one statement.
   */
  write(trx: Transaction<Database>): Promise<number>;
}

/**
 * Checks a handler's change against its module's streams and prepares its rows (hashing, text
 * cleaning) before any transaction opens, so the transaction that writes it stays short.
 */
export async function prepareEventChange(
  tenantKey: string,
  streams: Readonly<Record<string, StreamDef>>,
  change: EventChange,
  /** when the re-read started (see freshObjectsForRead) */
  readAt?: Date,
): Promise<PreparedEventChange> {
  const prepared: PreparedRows[] = [];
  for (const [stream, rows] of Object.entries(change.rows ?? {})) {
    const def = streams[stream];
    if (!def) throw new Error(`an event handler emitted rows for ${stream}, which its module does not declare`);
    if (rows && rows.length > 0) prepared.push(await prepareRows({ ...def, name: stream, module: '' }, rows));
  }
  const touched = new Set<string>([
    ...prepared.map((p) => p.stream.name),
    ...(change.replaceChildren ?? []).map((c) => c.stream),
    ...(change.deleted ?? []).map((d) => d.stream),
  ]);
  for (const s of touched) if (!streams[s]) throw new Error(`an event handler touched ${s}, which its module does not declare`);
  return {
    touched,
    marks: change.marks,
    readAt,
    async write(trx) {
      let n = 0;
      n += await writeStreams(trx, tenantKey, prepared, { readSeq: change.readSeq });
      if (change.replaceChildren?.length) n += await replaceChildren(trx, tenantKey, change.replaceChildren, change.readSeq);
      for (const d of change.deleted ?? []) {
        if (d.keys.length === 0) continue;
        const res = await sql`
          update ${sql.table(d.stream)} t
             set deleted_at = now(), updated_at = now(), change_seq = nextval('sync_change_seq'), change_xid = pg_current_xact_id(),
                 read_seq = greatest(t.read_seq, ${change.readSeq}::bigint)
           where t.tenant_key = ${tenantKey} and t.record_key = any(${d.keys.map(storableText)}::text[]) and t.deleted_at is null
             and ${newerRead(sql.table('t'), sql`${change.readSeq}::bigint`)}`.execute(trx);
        n += Number(res.numAffectedRows ?? 0n);
      }
      return n;
    },
  };
}

/**
 * A change event's re-read, written through the page writer a sync page goes through (upsert by
 * key, content hash, change position, certain deletions), in ONE transaction with the objects'
 * event marks, the `records.changed` outbox row, and `inTransaction` (the event's own "processed"
 * mark). A crash before the commit leaves nothing; a crash after it leaves the event to run again,
 * whose re-read then finds the rows as they are and writes nothing (same content hash).
 * Returns the rows inserted, changed or marked deleted. (A drain applies a tenant's events in one
 * transaction instead: event-group.ts.)
 */
export async function applyEventChange(
  db: Kysely<Database>,
  tenantKey: string,
  streams: Readonly<Record<string, StreamDef>>,
  change: EventChange,
  inTransaction?: (trx: Transaction<Database>) => Promise<void>,
  readAt?: Date,
): Promise<number> {
  const prepared = await prepareEventChange(tenantKey, streams, change, readAt);
  return db.transaction().execute(async (trx) => {
    const n = await prepared.write(trx);
    await inTransaction?.(trx);
    // The marks ride in the announcing statement (emitWebhookEvent's `alongside`).
    const marks = change.marks;
    const aside = marks && marksWrite(tenantKey, [...new Set(marks.keys)].map((key) => ({ key, mark: marks.mark, readAt: readAt ?? null })));
    await emitWebhookEvent(trx, { type: 'records.changed', tenantKey, data: { streams: [...prepared.touched] } }, [aside]);
    return n;
  });
}

/** One handler's question to freshObjectsForReads. */
export interface FreshReadAsk {
  tenantKey: string;
  keys: string[];
  /** the event's Lark time for these objects */
  mark: number;
  /** when larksync stored the event (the database's clock) */
  receivedAt?: Date | undefined;
}

/** Its answer: the keys still to read, the read's number (`seq`) and when it started. */
export interface FreshReadAnswer {
  fresh: string[];
  seq: string;
  at: Date;
}

/**
 * The objects (of `keys`) an event with Lark time `mark`, received at `receivedAt`, still has to
 * read: not those with a newer applied mark, nor those whose applied re-read started after the
 * event was received (the change it reports happened before Lark pushed it, so that read already
 * shows it: an approval's task event after its instance event, a user saved twice in a second).
 * Both times are the database's, to the millisecond: a read in the same millisecond as the
 * receipt does not count as later.
 *
 * In the same statement, the number of the re-read that follows and when it started (as
 * READ_START): one round trip where the check and the draw took two. Drawn whether or not
 * anything is left to read (a number unused is a gap in a sequence, nothing more), and a little
 * before the call: a read's number is always drawn some time before its call goes out (the
 * token, the rate budget and its waits come between), and an earlier number only makes this
 * read lose to reads that started after it.
 *
 * Several handlers' questions (of any tenants) in one statement, each with a number of its own:
 * see FreshReads, which gathers those asked at once.
 */
export async function freshObjectsForReads(db: Kysely<Database>, asks: readonly FreshReadAsk[]): Promise<FreshReadAnswer[]> {
  if (asks.length === 0) return [];
  const input = JSON.stringify(asks.map((a, i) => ({ i, tenant: a.tenantKey, keys: a.keys, mark: a.mark, received: a.receivedAt?.toISOString() ?? null })));
  const res = await sql<{ i: number; s: string; at: Date; stale: string[] }>`
    select r.i, ${READ_START},
           array(select m.object_key from event_marks m
                  where m.tenant_key = r.tenant and m.object_key = any(r.keys)
                    and (m.mark > r.mark or date_trunc('milliseconds', m.read_at) > r.received)) as stale
      from jsonb_to_recordset(${input}::jsonb) as r(i int, tenant text, keys text[], mark bigint, received timestamptz)`.execute(db);
  const answers: FreshReadAnswer[] = new Array(asks.length);
  for (const row of res.rows) {
    const stale = new Set(row.stale);
    answers[row.i] = { fresh: asks[row.i]!.keys.filter((k) => !stale.has(k)), seq: row.s, at: row.at };
  }
  return answers;
}

/**
 * The freshness checks of the handlers running at once in this process (a drain's tenants, the
 * drains of several shards), gathered into one statement as a group commit gathers writes
 * (db/group-commit.ts): a check asked while one is in flight waits for it and goes with the others
 * asked meanwhile. An idle process asks at once. At 200 change events a second each check was a
 * round trip of its own, the most frequent statement larksync made.
 */
export class FreshReads {
  private readonly batches: GroupCommitter<FreshReadAsk, FreshReadAnswer>;

  constructor(db: Kysely<Database>) {
    this.batches = new GroupCommitter((asks) => freshObjectsForReads(db, asks), { maxBatch: 100, maxInFlight: 1 });
  }

  check(ask: FreshReadAsk): Promise<FreshReadAnswer> {
    return this.batches.submit(ask);
  }
}

/**
 * The statement that advances event marks (see freshObjectsForReads), however many: not run, so
 * that it rides in another (emitWebhookEvent's `alongside`). Undefined when there is nothing to
 * write. Marks move forward only. An event with the same mark as the applied one is not stale: it
 * may be the same event run again after a crash, or a second change within Lark's time
 * resolution. Each key once (ON CONFLICT cannot touch a row twice in one statement): a drain's
 * group keeps the newest of each.
 */
export function marksWrite(tenantKey: string, marks: Array<{ key: string; mark: number; readAt: Date | null }>): RawBuilder<unknown> | undefined {
  if (marks.length === 0) return undefined;
  return sql`
    insert into event_marks as m (tenant_key, object_key, mark, read_at)
    select ${tenantKey}, k, mk, ra
      from unnest(${marks.map((m) => m.key)}::text[], ${marks.map((m) => String(m.mark))}::bigint[], ${marks.map((m) => m.readAt?.toISOString() ?? null)}::timestamptz[]) as x(k, mk, ra)
    on conflict (tenant_key, object_key) do update
      set mark = greatest(m.mark, excluded.mark), read_at = greatest(m.read_at, excluded.read_at), updated_at = now()`;
}

import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import { recordRow } from '../connectors/base/tables.phase.js';
import type { LarkBaseRecord } from '../connectors/base/lark-types.js';
import type { Database } from '../db/database.js';
import { UserAuthorizationRequiredError } from '../grants/grant-errors.js';
import { LarkApiError, LarkResponseRefusedError, LarkTransportError } from '../lark/errors.js';
import type { LarkHttp } from '../lark/http.js';
import { bucketOf, type Pacer } from '../sync/pacer.js';
import { BASE_RECORDS, WRITE_LIMITS, type WriteApi } from './limits.js';
import { prepareRows, writeRows } from '../sync/write-page.js';
import { nextReadSeq } from '../sync/read-seq.js';
import type { StreamRow } from '../sync/streams.js';
import type { TenantTokens } from '../tokens/tokens.service.js';
import { AttachmentError, loadSource, uploadToBase } from './attachments.js';
import { convertFields, type TableField } from './field-values.js';
import { ReadBack, type ReadBackItem } from './read-back.js';
import { settleWrites } from './settle.js';
import { KeyIndex, cellText, writtenKey } from './upsert-keys.js';
import { knownKeys, type KnownKeys } from './known-keys.js';
import type { BaseWriteBatchRow, BaseWriteRow, WriteRecordError } from './writes.table.js';
import { emitWebhookEvent } from '../webhooks/emit.js';
import { OneAtATime } from '../runtime/one-at-a-time.js';

const TABLE = (appToken: string, tableId: string) => `/open-apis/bitable/v1/apps/${encodeURIComponent(appToken)}/tables/${encodeURIComponent(tableId)}`;

/** Lark's largest batches (bitable-writes.md §6.1). */
const MAX_BATCH = { create: 1000, update: 1000, delete: 500 } as const;
/** records/search's filter takes at most 50 conditions (bitable.md §2.4): upserts are matched 50 at a time. */
const MATCH_CHUNK = 50;
/** records/search's largest page: the key index reads a whole field 500 records a call. */
const SCAN_PAGE = 500;
/** batch_get takes at most 100 record ids (bitable.md §2.6). */
const READ_BACK_CHUNK = 100;
/** Attempts of one read (search, batch_get, fields) that Lark asks to make later. */
const READ_ATTEMPTS = 4;

/** Codes that mean "try the same call again, later" (with the same client_token). */
const RETRY_LATER = new Set([1254291, 1254290, 99991400, 1255040, 1254608, 1254002, 1255001, 1255002, 1254036]);
/** The request is too heavy for now: the same records in smaller batches. */
const TOO_HEAVY = 1254607;
/** A record's value refused by Lark (bitable-writes.md §6.3; bitable.md §5). */
const VALUE_CODES = new Set([1254045, 1254015, 1254060, 1254061, 1254062, 1254063, 1254064, 1254065, 1254066, 1254067, 1254068, 1254069, 1254072, 1254074, 1254001]);
/** The Base or table is not there, or the identity may not edit it: every record fails alike. */
const NOT_WRITABLE = new Set([91403, 1254302, 1254040, 1254041, 1254003, 1254004, 99991672, 99991679, 1254306, 1254103]);

const EDIT_HINT =
  'the app cannot edit this Base: add it to the Base as a collaborator with edit permission (the Base\'s "..." menu, More, Add document app / 添加文档应用, edit), ' +
  'or write as a signed-in user who may edit it (identity: { "user": "<open_id>" })';

/** Rows read back, and the number of the read (sync/read-seq.ts). */
interface ReadRows {
  rows: StreamRow[];
  readSeq?: string;
}

export interface ApplierDeps {
  db: Kysely<Database>;
  http: LarkHttp;
  log: Logger;
  pacer: Pacer;
  /** tokens to write with: the app's in the tenant, or a signed-in user's */
  tokensFor(appId: string, tenantKey: string, user: string | null): Promise<TenantTokens>;
  /** fetch attachment URLs on private networks too (tests, simulators) */
  allowPrivateAttachments: boolean;
}

export interface ApplierOptions {
  /** A job gives its worker slot back after this long and queues a successor for the rest. */
  budgetMs: number;
  /** Attempts of one call (timeouts, 5xx) within a job before the job leaves it for a later one. */
  attemptsPerJob: number;
  callTimeoutMs: number;
}

export const defaultApplierOptions: ApplierOptions = { budgetMs: 60_000, attemptsPerJob: 8, callTimeoutMs: 30_000 };

class RetryLater extends Error {
  constructor(readonly afterMs: number, message: string) {
    super(message);
  }
}

/** Everything a failed call means for its records. */
type Outcome =
  | { kind: 'ok'; data: Record<string, unknown> }
  | { kind: 'retry'; waitMs: number; why: string }
  | { kind: 'split'; why: string }
  | { kind: 'invalid'; code: number; message: string }
  | { kind: 'fatal'; errorClass: string; message: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * Lets I/O in between long stretches of work (converting 1,000 records), so the answer of the call
 * in flight is taken, and the next call sent, without waiting for them.
 */
const yieldToIo = () => new Promise<void>((r) => setImmediate(r));
/**
 * Calls kept planned behind the one in flight: two, so a call whose planning outlasts one flight
 * (an upsert chunk of 2,000 records: its creates and its updates) is still ready in time.
 */
const AHEAD_CALLS = 2;
/** How often a job whose calls are all answered looks for new writes while its read-back goes on. */
const IDLE_RECHECK_MS = 250;
/** Records converted between two yieldToIo(). */
const CONVERT_SLICE = 100;
/** The read-back starts a step at most this long after a write call left (see Lane); Lark answers in about 150 ms. */
const LANE_WINDOW_MS = 100;
/**
 * The next call's rate-limit token is taken this long before the call in flight is due to answer
 * (its predecessors' latency), so the token's round trip is not spent while the Base waits; and
 * is used only if the call leaves within PACED_FRESH_MS of taking it, so a call never leaves
 * more than that after its token (the bucket's spacing holds within that).
 */
const PACE_LEAD_MS = 25;
const PACED_FRESH_MS = 60;

type BatchOp = 'create' | 'update' | 'delete';
type Member = { write_id: string; idx: number };

/** A planned call, with what sending it needs: its tenant and its records in body order. */
interface Planned {
  batch: BaseWriteBatchRow;
  /** its body as sent, serialized when it was planned (not while the Base waits for it) */
  json: string;
  tenantKey: string;
  members: Member[];
  /** Times sent by this job and not yet added to its write's upstream_calls (see countSends). */
  sends?: number;
  /**
   * Stored by this job already counted as sent (attempts = 1, in the transaction that planned
   * it), so its first send spends no round trip on counting; while `left` is false this job
   * knows it never left, and may still plan its records again (unplanAfter).
   */
  marked?: boolean;
  /** It left at least once in this job. */
  left?: boolean;
  /** Its rate-limit token, taken shortly before the call in flight was due to answer (see paceAhead). */
  paced?: { at: number; taken: Promise<unknown> };
  /**
   * Planned ahead, while another call was in flight, from the records pending then: if it is not
   * full by the time it is due, it is planned again with what arrived meanwhile (coalescing).
   */
  ahead?: boolean;
}

/** What one planning step did: planned a call, only settled records (refused, cancelled), found nothing to do, or must wait for an answer first. */
type PlanStep = 'planned' | 'progress' | 'idle' | 'blocked';

/** Records changed state under the planner (a cancel): plan again. */
class PlanRace extends Error {}

/**
 * The Base's write lane, seen from beside it. Lark takes one write call at a time per Base, so
 * from an answer until the next call leaves the Base waits for larksync, and what is done while a
 * call is in flight goes in the order the lane needs it: the call after it is planned (converted,
 * stored, serialized: it must be ready when the answer comes) and the answer before it committed
 * (what a write's progress shows), then the read-back goes on. A read-back step (a commit of
 * 1,000 rows costs tens of milliseconds of CPU) starts, and each slice of its rows is prepared,
 * only early in a call's flight, so it is done before the answer is due instead of delaying the
 * call after it.
 */
class Lane {
  private state: 'idle' | 'closed' | 'planning' | 'flight' = 'idle';
  private leftAt = 0;
  private wake: Promise<void>;
  private woken!: () => void;

  constructor(
    /** how long after a call left the read-back may still start a step */
    private readonly windowMs = LANE_WINDOW_MS,
  ) {
    this.wake = this.nextWake();
  }

  private nextWake(): Promise<void> {
    return new Promise((resolve) => {
      this.woken = resolve;
    });
  }

  private change(state: Lane['state']): void {
    this.state = state;
    const woken = this.woken;
    this.wake = this.nextWake();
    woken();
  }

  /** An answer came: the next call is being readied. */
  close(): void {
    this.change('closed');
  }

  /** A call left; `planning`: the call after it is being planned. */
  departed(planning: boolean): void {
    this.leftAt = Date.now();
    this.change(planning ? 'planning' : 'flight');
  }

  /** The call after the one in flight is planned. */
  planned(): void {
    if (this.state === 'planning') this.change('flight');
  }

  /** No call in flight or about to leave (planning, waiting to retry, stopped). */
  idle(): void {
    this.change('idle');
  }

  /** Resolves once the lane is not closed (committing answers goes beside the planning: it is what progress shows). */
  async clear(): Promise<void> {
    while (this.state === 'closed') await this.wake;
  }

  /** Resolves while no call is in flight, or early in a call's flight once the next one is planned. */
  async fresh(): Promise<void> {
    while (this.state === 'closed' || this.state === 'planning' || (this.state === 'flight' && Date.now() - this.leftAt > this.windowMs)) await this.wake;
  }
}

/** What one job knows about the Base it works for. */
class BaseContext {
  /** The table's fields, read once per job (the read in progress shared by the warm-up and the planner). */
  readonly schemas = new Map<string, Promise<Map<string, TableField>>>();
  /** halved after each 1254607, per table and op */
  readonly limits = new Map<string, number>();
  readonly tokens = new Map<string, Promise<TenantTokens>>();
  /** upsert keys, by `${tableId}\0${field}` */
  readonly keys = new Map<string, KeyIndex>();
  /** Calls planned and not answered yet, by batch id (sent in id order). */
  readonly planned = new Map<string, Planned>();
  /** The reader failed: the sender stops. */
  failure: unknown;
  /** Closed from an answer until the next call leaves: work beside the calls waits for it. */
  readonly lane = new Lane();
  /** The shortest time a write call took to answer in this job (ms), for paceAhead. */
  fastestAnswerMs: number | undefined;
  /** Planning and unplanning one at a time (the planner runs while a call is in flight). */
  private readonly planning = new OneAtATime();

  constructor(
    readonly appId: string,
    readonly appToken: string,
  ) {}

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.planning.run(fn);
  }

  /** Whether every call planned after `afterId` is as large as Lark (and the table's limit) allows. */
  plannedFull(afterId: string): boolean {
    for (const p of this.planned.values()) {
      const most = Math.min(MAX_BATCH[p.batch.op], this.limits.get(`${p.batch.table_id}:${p.batch.op}`) ?? MAX_BATCH[p.batch.op]);
      if (BigInt(p.batch.id) > BigInt(afterId) && p.members.length < most) return false;
    }
    return true;
  }

  /** How many calls are planned after `afterId`. */
  plannedAfter(afterId: string): number {
    let n = 0;
    for (const p of this.planned.values()) if (BigInt(p.batch.id) > BigInt(afterId)) n += 1;
    return n;
  }

  /** The first planned call after `afterId` (ids are bigint strings). */
  firstPlanned(afterId: string): Planned | undefined {
    let best: Planned | undefined;
    for (const p of this.planned.values()) {
      const id = BigInt(p.batch.id);
      if (id > BigInt(afterId) && (!best || id < BigInt(best.batch.id))) best = p;
    }
    return best;
  }
}

/**
 * Applies a Base's accepted writes, one Lark call at a time (the job runs in the Base's own queue,
 * so one job per Base runs across every replica), in the order they were accepted.
 *
 * A call is planned before it is sent: its body and a fresh client_token (UUIDv4) are stored with
 * its records in one transaction, and a planned call is only ever sent again with that same token
 * (after a timeout, a 5xx, a crash), so Lark applies it at most once (bitable-writes.md §6.2).
 * Calls are sent in the order they were planned; a call Lark refused as a whole (1254607, a bad
 * value somewhere in it, no permission) is replaced by smaller ones in its place, and calls planned
 * behind it and never sent are planned again after them.
 *
 * Three things go on at once, so the Base is never idle between calls:
 * - the sender: one call in flight, the next one sent as soon as the answer is in;
 * - the planner: while a call is in flight, the next one is converted and stored;
 * - the reader (read-back.ts): answered calls' rows are read back into base_records.
 * An answer is committed (records ok with their record ids, the call 'written') while the next
 * call is in flight; a crash before that commit sends the call again with its token, which Lark
 * answers from the first time. A write is reported finished once its calls are read back.
 */
export class WriteApplier {
  constructor(
    private readonly deps: ApplierDeps,
    private readonly options: ApplierOptions = defaultApplierOptions,
  ) {}

  /** Works on the Base until nothing is left ('done') or the job's time is up ('more'). */
  async run(appId: string, appToken: string): Promise<'done' | 'more'> {
    const ctx = new BaseContext(appId, appToken);
    const deadline = Date.now() + this.options.budgetMs;
    const reader = new ReadBack<ReadRows>(
      (item) => this.readRows(ctx, item),
      (item, read) => this.commitRead(ctx, item, read.rows, read.readSeq),
      () => ctx.lane.fresh(),
    );
    // The first call waits on the tenant's token and the table's fields (a Lark read): read them
    // while the job loads what earlier jobs left, not after. A failure here is the planner's to
    // meet again and report.
    const warm = this.warmUp(ctx).catch(() => undefined);
    for (const item of await this.writtenCalls(ctx)) reader.push(item);
    await this.loadPlanned(ctx);
    await warm;
    const reading = reader.run(deadline).catch((err: unknown) => {
      ctx.failure ??= err;
      throw err;
    });
    // Awaited below; handled now, so a reader that fails while the sender runs is not an unhandled rejection.
    reading.catch(() => undefined);
    let sent: 'done' | 'more';
    try {
      sent = await this.sendAll(ctx, deadline, reader);
    } catch (err) {
      reader.stop();
      await reading.catch(() => undefined);
      throw err;
    }
    reader.close();
    await reading;
    await this.settleOpen(appId, appToken);
    return sent === 'more' || reader.left > 0 ? 'more' : 'done';
  }

  /**
   * The sender: the planned calls in order, one in flight. From an answer to the next call's
   * departure the Base waits on larksync alone, so that stretch does nothing else: the next call
   * was planned (converted, stored, serialized) while the last one was in flight, the answer is
   * committed and the call after next planned only once the next one has left, and the reader
   * holds back meanwhile (ctx.lane).
   */
  private async sendAll(ctx: BaseContext, deadline: number, reader: ReadBack<ReadRows>): Promise<'done' | 'more'> {
    let after = '0';
    let commits: Promise<void> = Promise.resolve();
    /** Answered calls whose answer is not committed yet, in order. */
    const uncommitted: Array<{ p: Planned; ids: Array<string | null> }> = [];
    let commitFailure: unknown;
    /** The planning started when the last call left, and how it failed. */
    let planning: Promise<void> = Promise.resolve();
    let planFailure: unknown;
    try {
      for (;;) {
        if (planFailure !== undefined) throw planFailure;
        if (commitFailure !== undefined) throw commitFailure;
        if (ctx.failure !== undefined) throw ctx.failure;
        if (Date.now() > deadline) return 'more';
        const next = ctx.firstPlanned(after);
        if (!next) {
          ctx.lane.idle();
          const step = await ctx.exclusive(() => this.planStep(ctx));
          if (step === 'idle') {
            // Nothing to send. While the read-back catches up (behind a bulk load it trails by up
            // to a minute: batch_get reads 2,000 records/s at most), a write accepted meanwhile is
            // sent at once instead of waiting for this job's end.
            if (reader.drained) return 'done';
            await reader.whenDrained(IDLE_RECHECK_MS);
            continue;
          }
          if (step === 'blocked') throw new Error('planning waits for an answer, but no call is in flight');
          continue;
        }
        // Planned ahead and not full: records that arrived since may join it (it was never sent).
        if (next.ahead && next.members.length < MAX_BATCH[next.batch.op] && (await this.morePending(ctx))) {
          ctx.lane.idle();
          await ctx.exclusive(() => this.unplanAfter(ctx, (BigInt(next.batch.id) - 1n).toString()));
          next.ahead = false;
          continue;
        }
        let ahead: Promise<void> | undefined;
        let pacing: Promise<void> | undefined;
        let outcome: Exclude<Outcome, { kind: 'retry' }>;
        try {
          outcome = await this.transmit(ctx, next, () => {
            // Planned while this call is in flight, and its rate-limit token taken shortly before the answer is due.
            const leftAt = Date.now();
            ahead = this.planAhead(ctx, next.batch.id).finally(() => ctx.lane.planned());
            planning = ahead.catch((err: unknown) => {
              planFailure ??= err;
            });
            pacing = this.paceAhead(ctx, next.batch.id, leftAt).catch(() => undefined);
            return true;
          });
        } catch (err) {
          ctx.lane.idle();
          await ahead?.catch(() => undefined);
          await pacing;
          await this.countSends(this.deps.db, [next]).catch(() => undefined);
          throw err;
        }
        if (outcome.kind === 'ok') {
          const ids = this.answered(ctx, next, outcome.data);
          // The Base is idle from now until the next call leaves: the answer is committed after.
          ctx.lane.close();
          uncommitted.push({ p: next, ids });
          commits = commits
            .then(() => ctx.lane.clear())
            // Everything answered by now goes in (later links of the chain may find nothing).
            .then(() => (commitFailure === undefined ? this.commitAnswers(uncommitted.splice(0), reader) : undefined))
            .catch((err: unknown) => {
              commitFailure ??= err;
            });
          after = next.batch.id;
          // Planned while this call was in flight (it started when the call left). Only the next
          // call must be ready: planning further ahead (a whole upsert chunk) goes on beside it.
          if (!ctx.firstPlanned(after)) await planning;
          continue;
        }
        // Refused as a whole: whatever was planned behind it goes back to pending, and it is
        // replaced by smaller calls (or its records fail) in its place.
        ctx.lane.idle();
        await ahead?.catch(() => undefined);
        await pacing;
        await commits;
        if (commitFailure !== undefined) throw commitFailure;
        await ctx.exclusive(async () => {
          await this.countSends(this.deps.db, [next]);
          await this.unplanAfter(ctx, next.batch.id);
          ctx.planned.delete(next.batch.id);
          if (outcome.kind === 'split') await this.split(ctx, next);
          else if (outcome.kind === 'invalid') await this.bisect(ctx, next, outcome);
          else await this.fail(next, outcome.errorClass, outcome.message);
        });
      }
    } finally {
      ctx.lane.idle();
      await planning;
      await commits;
    }
  }

  /** Plans calls behind `afterId` while it is in flight, until AHEAD_CALLS are planned (or nothing more can be). */
  private planAhead(ctx: BaseContext, afterId: string): Promise<void> {
    return ctx.exclusive(async () => {
      // A call planned short had all there was: the next would only split what arrives meanwhile
      // from it (the short one takes those in before it leaves, see sendAll).
      while (ctx.plannedAfter(afterId) < AHEAD_CALLS && ctx.plannedFull(afterId)) {
        const step = await this.planStep(ctx, true);
        if (step === 'idle' || step === 'blocked') return;
      }
    });
  }

  /**
   * Takes the rate-limit token of the call planned after `afterId` shortly before the call in
   * flight (which left at `leftAt`) is due to answer, going by the fastest answer of this job.
   */
  private async paceAhead(ctx: BaseContext, afterId: string, leftAt: number): Promise<void> {
    if (ctx.fastestAnswerMs === undefined) return;
    const wait = leftAt + ctx.fastestAnswerMs - PACE_LEAD_MS - Date.now();
    if (wait > 0) await sleep(wait);
    // The call after it, if it is planned by then.
    const next = ctx.firstPlanned(afterId);
    if (!next || next.paced) return;
    const taken = this.takeWriteToken(await this.tokens(ctx, next.tenantKey, next.batch.identity_user));
    // Awaited when the call leaves; a failure there takes a fresh token instead.
    taken.catch(() => undefined);
    next.paced = { at: Date.now(), taken };
  }

  /** A token of the tenant's write-call budget (Lark's limit per app and tenant). */
  private takeWriteToken(tokens: TenantTokens): Promise<number> {
    const limit = WRITE_LIMITS['bitable.records.write'];
    return this.deps.pacer.take(bucketOf(tokens.app.appId, tokens.tenantKey, 'bitable.records.write', limit), limit);
  }

  /** Whether any open write of the Base has records not planned yet. */
  private async morePending(ctx: BaseContext): Promise<boolean> {
    const res = await sql<{ found: boolean }>`
      select exists (select 1 from base_writes w join base_write_records r on r.write_id = w.id
                      where w.app_id = ${ctx.appId} and w.app_token = ${ctx.appToken} and w.status in ('queued', 'running') and r.state = 'pending') as found`.execute(this.deps.db);
    return res.rows[0]?.found === true;
  }

  /** Calls planned by an earlier job and not answered: sent first, in order. */
  private async loadPlanned(ctx: BaseContext): Promise<void> {
    const batches = await this.deps.db
      .selectFrom('base_write_batches')
      .selectAll()
      .where('app_id', '=', ctx.appId)
      .where('app_token', '=', ctx.appToken)
      .where('status', '=', 'planned')
      .orderBy('id')
      .execute();
    for (const batch of batches) {
      const members = await this.deps.db
        .selectFrom('base_write_records as r')
        .innerJoin('base_writes as w', 'w.id', 'r.write_id')
        .select(['r.write_id', 'r.idx', 'w.tenant_key'])
        .where('r.batch_id', '=', batch.id)
        .orderBy('r.write_id')
        .orderBy('r.idx')
        .execute();
      const tenantKey = members[0]?.tenant_key;
      if (!tenantKey) {
        await this.deps.db.updateTable('base_write_batches').set({ status: 'failed', finished_at: sql<Date>`now()` }).where('id', '=', batch.id).execute();
        continue;
      }
      ctx.planned.set(batch.id, { batch, json: JSON.stringify(batch.body), tenantKey, members: members.map((m) => ({ write_id: m.write_id, idx: m.idx })) });
    }
  }

  /** The token and the fields the oldest pending write's first call needs. */
  private async warmUp(ctx: BaseContext): Promise<void> {
    const write = await this.nextWrite(ctx.appId, ctx.appToken);
    if (!write || write.op === 'delete') return;
    await this.schema(ctx, await this.tokens(ctx, write.tenant_key, write.identity_user), write.table_id);
  }

  /** Calls answered by an earlier job and not read back yet. */
  private async writtenCalls(ctx: BaseContext): Promise<ReadBackItem[]> {
    const res = await sql<{ id: string; table_id: string; op: BatchOp; identity_user: string | null; tenant_key: string | null; record_ids: Array<string | null> | null; write_ids: string[] | null }>`
      select b.id::text as id, b.table_id, b.op, b.identity_user,
             (select w.tenant_key from base_write_records r join base_writes w on w.id = r.write_id where r.batch_id = b.id limit 1) as tenant_key,
             (select array_agg(r.record_id order by r.write_id, r.idx) from base_write_records r where r.batch_id = b.id) as record_ids,
             (select array_agg(distinct r.write_id::text) from base_write_records r where r.batch_id = b.id) as write_ids
        from base_write_batches b
       where b.app_id = ${ctx.appId} and b.app_token = ${ctx.appToken} and b.status = 'written'
       order by b.id`.execute(this.deps.db);
    return res.rows.map((r) => ({
      batchId: r.id,
      tableId: r.table_id,
      op: r.op,
      identityUser: r.identity_user,
      tenantKey: r.tenant_key ?? '',
      recordIds: (r.record_ids ?? []).filter((x): x is string => x !== null),
      writeIds: r.write_ids ?? [],
    }));
  }

  /** The oldest write of the Base that still has records to plan. */
  private async nextWrite(appId: string, appToken: string): Promise<BaseWriteRow | undefined> {
    return this.deps.db
      .selectFrom('base_writes as w')
      .selectAll('w')
      .where('w.app_id', '=', appId)
      .where('w.app_token', '=', appToken)
      .where('w.status', 'in', ['queued', 'running'])
      .where(({ exists, selectFrom }) => exists(selectFrom('base_write_records as r').select('r.idx').whereRef('r.write_id', '=', 'w.id').where('r.state', '=', 'pending')))
      .orderBy('w.id')
      .limit(1)
      .executeTakeFirst();
  }

  private tokens(ctx: BaseContext, tenantKey: string, user: string | null): Promise<TenantTokens> {
    const key = `${tenantKey}\u0000${user ?? ''}`;
    let t = ctx.tokens.get(key);
    if (!t) {
      t = this.deps.tokensFor(ctx.appId, tenantKey, user);
      t.catch(() => ctx.tokens.delete(key));
      ctx.tokens.set(key, t);
    }
    return t;
  }

  /**
   * One paced read from Lark (fields, search, batch_get) with the write's identity. A read Lark
   * asks to make later (a frequency limit, a 5xx, a timeout) is made again here, a few times: a
   * key index half read or a call's read-back would otherwise be dropped for one throttled page.
   */
  private async call<T>(tokens: TenantTokens, api: WriteApi, req: { method: 'GET' | 'POST'; path: string; endpoint: string; query?: Record<string, string | number | undefined>; body?: unknown }): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      await this.deps.pacer.take(bucketOf(tokens.app.appId, tokens.tenantKey, api, WRITE_LIMITS[api]), WRITE_LIMITS[api]);
      try {
        const res = await tokens.withToken((token, baseUrl) =>
          this.deps.http.call<{ data?: T }>(baseUrl, { ...req, bearer: token, timeoutMs: this.options.callTimeoutMs }),
        );
        return (res.body.data ?? {}) as T;
      } catch (err) {
        const outcome = classify(err);
        if (outcome.kind !== 'retry' || attempt >= READ_ATTEMPTS) throw err;
        await sleep(outcome.waitMs + Math.random() * 200);
      }
    }
  }

  /** The table's fields by name, as Lark lists them now (once per job and table). */
  private async schema(ctx: BaseContext, tokens: TenantTokens, tableId: string): Promise<Map<string, TableField>> {
    let s = ctx.schemas.get(tableId);
    if (!s) {
      s = this.readSchema(ctx, tokens, tableId);
      // A failed read is not kept: the planner reads again and reports what it meets.
      s.catch(() => ctx.schemas.delete(tableId));
      ctx.schemas.set(tableId, s);
    }
    return s;
  }

  private async readSchema(ctx: BaseContext, tokens: TenantTokens, tableId: string): Promise<Map<string, TableField>> {
    const fields = new Map<string, TableField>();
    let pageToken: string | undefined;
    do {
      const data = await this.call<{ items?: TableField[]; has_more?: boolean; page_token?: string }>(tokens, 'bitable.fields.list', {
        method: 'GET',
        path: `${TABLE(ctx.appToken, tableId)}/fields`,
        endpoint: '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/fields',
        query: { page_size: 100, page_token: pageToken },
      });
      for (const f of data.items ?? []) if (f.field_name) fields.set(f.field_name, f);
      pageToken = data.has_more && data.page_token ? data.page_token : undefined;
    } while (pageToken);
    return fields;
  }

  /** Plans the next call(s): the oldest write's pending records (and those of the writes queued behind it that may join). */
  private async planStep(ctx: BaseContext, ahead = false): Promise<PlanStep> {
    const write = await this.nextWrite(ctx.appId, ctx.appToken);
    if (!write) return 'idle';
    if (write.status === 'queued') {
      await this.deps.db.updateTable('base_writes').set({ status: 'running', started_at: sql<Date>`now()` }).where('id', '=', write.id).where('status', '=', 'queued').execute();
    }
    try {
      return await this.plan(ctx, write, ahead);
    } catch (err) {
      // A cancel moved records under the planner: its transaction rolled back; plan again.
      if (err instanceof PlanRace) return 'progress';
      throw err;
    }
  }

  private async plan(ctx: BaseContext, write: BaseWriteRow, ahead: boolean): Promise<PlanStep> {
    let tokens: TenantTokens;
    let schema: Map<string, TableField>;
    try {
      tokens = await this.tokens(ctx, write.tenant_key, write.identity_user);
      schema = write.op === 'delete' ? new Map() : await this.schema(ctx, tokens, write.table_id);
    } catch (err) {
      const outcome = classify(err);
      if (outcome.kind === 'fatal') {
        await this.failPending([write.id], outcome.errorClass, outcome.message);
        return 'progress';
      }
      throw new RetryLater(outcome.kind === 'retry' ? outcome.waitMs : 5_000, `could not read the table's fields: ${(err as Error).message}`);
    }
    if (write.op === 'upsert') return this.planUpsert(ctx, write, tokens, schema);
    const op = write.op;
    const limit = Math.min(MAX_BATCH[op], ctx.limits.get(`${write.table_id}:${op}`) ?? MAX_BATCH[op]);
    // Coalesced: pending records of this write and of the writes queued right behind it for the
    // same table, op and identity, in order, up to Lark's largest batch. Another kind of write in
    // between ends the batch, so no write is applied out of order.
    const rows = await sql<{ write_id: string; idx: number; input: Record<string, unknown> }>`
      with followers as (
        select w.id from base_writes w
         where w.app_id = ${ctx.appId} and w.app_token = ${ctx.appToken} and w.id >= ${write.id}::bigint and w.status in ('queued', 'running')
           and w.id < coalesce((select min(o.id) from base_writes o
                                 where o.app_id = ${ctx.appId} and o.app_token = ${ctx.appToken} and o.id > ${write.id}::bigint
                                   and o.status in ('queued', 'running')
                                   and (o.table_id, o.op, coalesce(o.identity_user, '')) is distinct from (${write.table_id}, ${op}, ${write.identity_user ?? ''})), 9223372036854775807)
      )
      select r.write_id::text as write_id, r.idx, r.input from base_write_records r
       where r.write_id in (select id from followers) and r.state = 'pending'
       order by r.write_id, r.idx
       limit ${limit}`.execute(this.deps.db);
    const planned: Array<{ write_id: string; idx: number; body: Record<string, unknown> | string }> = [];
    const failed: Array<{ write_id: string; idx: number; error: WriteRecordError }> = [];
    const warnings = new Map<string, Set<string>>();
    const seenIds = new Set<string>();
    for (const [i, r] of rows.rows.entries()) {
      if (i > 0 && i % CONVERT_SLICE === 0) await yieldToIo();
      if (op === 'delete') {
        planned.push({ write_id: r.write_id, idx: r.idx, body: String(r.input.recordId) });
        continue;
      }
      // Two updates of one record in one call: their order would be Lark's to choose.
      if (op === 'update') {
        const id = String(r.input.recordId);
        if (seenIds.has(id)) break;
        seenIds.add(id);
      }
      const converted = await this.convert(ctx, tokens, schema, (r.input.fields ?? {}) as Record<string, unknown>);
      if ('error' in converted) {
        failed.push({ write_id: r.write_id, idx: r.idx, error: converted.error });
        continue;
      }
      for (const w of converted.ok.warnings) (warnings.get(r.write_id) ?? warnings.set(r.write_id, new Set()).get(r.write_id)!).add(w);
      planned.push({ write_id: r.write_id, idx: r.idx, body: op === 'update' ? { record_id: r.input.recordId, fields: converted.ok.fields } : { fields: converted.ok.fields } });
    }
    const made: Planned[] = [];
    await this.deps.db.transaction().execute(async (trx) => {
      await this.markFailed(trx, failed);
      await this.addWarnings(trx, warnings);
      if (planned.length > 0) made.push({ ...(await this.insertBatch(trx, ctx, write, op, planned)), ahead });
    });
    for (const p of made) ctx.planned.set(p.batch.id, p);
    return made.length > 0 ? 'planned' : 'progress';
  }

  /**
   * Upserts: up to 1,000 updates and 1,000 creates planned at once, matched on the write's key
   * field through the job's key index (upsert-keys.ts). A match value twice in a row ends the
   * chunk, so the second sees the record the first created, and so does a value that a create
   * not answered yet writes (keysInFlight): the next chunk is planned while this one's calls are
   * in flight.
   */
  private async planUpsert(ctx: BaseContext, write: BaseWriteRow, tokens: TenantTokens, schema: Map<string, TableField>): Promise<PlanStep> {
    const rows = await this.deps.db
      .selectFrom('base_write_records')
      .select(['idx', 'input'])
      .where('write_id', '=', write.id)
      .where('state', '=', 'pending')
      .orderBy('idx')
      .limit(MAX_BATCH.create + MAX_BATCH.update)
      .execute();
    if (rows.length === 0) return 'progress';
    const matchOf = (input: Record<string, unknown>) => {
      const [f, raw] = Object.entries((input.match ?? {}) as Record<string, unknown>)[0] ?? ['', ''];
      return { field: f, value: String(raw) };
    };
    const field = matchOf(rows[0]!.input).field;
    const failed: Array<{ write_id: string; idx: number; error: WriteRecordError }> = [];
    if (!schema.has(field)) {
      for (const r of rows) {
        if (matchOf(r.input).field === field) failed.push({ write_id: write.id, idx: r.idx, error: { code: 'unknown_field', message: `match: no field "${field}" in this table`, field } });
      }
      await this.deps.db.transaction().execute((trx) => this.markFailed(trx, failed));
      return 'progress';
    }
    // A call not answered yet may create, delete or re-key records of this table: wait for it.
    const existing = ctx.keys.get(`${write.table_id}\u0000${field}`);
    const creating = this.keysInFlight(ctx, write.table_id, field, existing);
    if (creating === 'blocked') return 'blocked';
    // The index is first read with no call on the table unanswered: one that creates records would
    // land in it, or not, whatever its answer teaches an index that does not exist yet.
    if (!existing && [...ctx.planned.values()].some((p) => p.batch.table_id === write.table_id && p.batch.op !== 'update')) return 'blocked';
    let index: KeyIndex;
    try {
      index = existing ?? (await this.keyIndex(ctx, tokens, write, field));
    } catch (err) {
      const outcome = classify(err);
      if (outcome.kind === 'fatal') {
        await this.failPending([write.id], outcome.errorClass, outcome.message);
        return 'progress';
      }
      throw new RetryLater(outcome.kind === 'retry' ? outcome.waitMs : 5_000, `could not match the upserts' ${field}: ${(err as Error).message}`);
    }

    const chunk: Array<{ idx: number; value: string; fields: Record<string, unknown> }> = [];
    const values = new Set<string>();
    // Values are searched 50 at a time: in search mode a chunk is a single call's worth.
    const most = index.mode === 'search' ? MAX_BATCH.create : rows.length;
    for (const r of rows) {
      const m = matchOf(r.input);
      // A value being created by a call not answered yet ends the chunk too: its record's id comes with the answer.
      if (m.field !== field || values.has(m.value) || creating.has(m.value) || chunk.length >= most) break;
      values.add(m.value);
      chunk.push({ idx: r.idx, value: m.value, fields: (r.input.fields ?? {}) as Record<string, unknown> });
    }
    if (chunk.length === 0) return 'blocked';
    const found = index.mode === 'search' ? await this.searchValues(ctx, tokens, write.table_id, field, [...values], index) : new Map<string, string[]>();

    const createLimit = Math.min(MAX_BATCH.create, ctx.limits.get(`${write.table_id}:create`) ?? MAX_BATCH.create);
    const updateLimit = Math.min(MAX_BATCH.update, ctx.limits.get(`${write.table_id}:update`) ?? MAX_BATCH.update);
    const creates: Array<{ write_id: string; idx: number; body: Record<string, unknown> }> = [];
    const updates: Array<{ write_id: string; idx: number; body: Record<string, unknown> }> = [];
    const warnings = new Map<string, Set<string>>();
    for (const [i, c] of chunk.entries()) {
      if (i > 0 && i % CONVERT_SLICE === 0) await yieldToIo();
      const ids = index.lookup(c.value, found.get(c.value));
      if (ids.length > 1) {
        failed.push({ write_id: write.id, idx: c.idx, error: { code: 'ambiguous_match', message: `${ids.length} records have ${field} = "${c.value.slice(0, 100)}": make it unique or update by recordId`, field } });
        continue;
      }
      if (ids.length === 1 ? updates.length >= updateLimit : creates.length >= createLimit) break;
      // The match field is written too, so a created record carries the value it was matched on.
      const converted = await this.convert(ctx, tokens, schema, { [field]: c.value, ...c.fields });
      if ('error' in converted) {
        failed.push({ write_id: write.id, idx: c.idx, error: converted.error });
        continue;
      }
      for (const w of converted.ok.warnings) (warnings.get(write.id) ?? warnings.set(write.id, new Set()).get(write.id)!).add(w);
      if (ids.length === 1) updates.push({ write_id: write.id, idx: c.idx, body: { record_id: ids[0], fields: converted.ok.fields } });
      else creates.push({ write_id: write.id, idx: c.idx, body: { fields: converted.ok.fields } });
    }
    const made: Planned[] = [];
    await this.deps.db.transaction().execute(async (trx) => {
      await this.markFailed(trx, failed);
      await this.addWarnings(trx, warnings);
      if (creates.length > 0) made.push(await this.insertBatch(trx, ctx, write, 'create', creates));
      if (updates.length > 0) made.push(await this.insertBatch(trx, ctx, write, 'update', updates));
    });
    for (const p of made) ctx.planned.set(p.batch.id, p);
    return made.length > 0 ? 'planned' : 'progress';
  }

  /**
   * What the calls planned and not answered yet on this table may do to which record holds a
   * value of `field`. 'blocked': more than the index can follow (a delete, a value with no text,
   * an update that changes the value the index knows for its record); else the values their
   * creates write. An upsert of such a value waits for the create's answer (the new record's id);
   * upserts of other values may be planned meanwhile, so the Base's next calls are ready when the
   * create answers (waiting for every create to answer left the Base idle ~140 ms a chunk).
   */
  private keysInFlight(ctx: BaseContext, tableId: string, field: string, index: KeyIndex | undefined): 'blocked' | Set<string> {
    const creating = new Set<string>();
    for (const p of ctx.planned.values()) {
      if (p.batch.table_id !== tableId) continue;
      if (p.batch.op === 'delete') return 'blocked';
      for (const r of (p.batch.body.records ?? []) as Array<{ record_id?: string; fields?: Record<string, unknown> }>) {
        const key = writtenKey(r.fields, field);
        if (key === undefined) continue;
        if (key === null) return 'blocked';
        if (p.batch.op === 'create') creating.add(key);
        else if (!index || index.valueHeldBy(String(r.record_id)) !== key) return 'blocked';
      }
    }
    return creating;
  }

  /**
   * The job's key index for a table and field, from the cheapest source that is complete:
   * - what larksync holds (known-keys.ts: base_records and the calls not read back yet), when it
   *   holds as many records as Lark lists and agrees with Lark's first page: no more calls;
   * - else the whole field read once, when that takes fewer calls than searching the pending
   *   upserts' values (50 a call), else values searched as needed.
   * Reading the field took 200 search calls (10 s at 20/s, the Base idle) for a 100,000-record
   * table before the first upsert could be sent.
   */
  private async keyIndex(ctx: BaseContext, tokens: TenantTokens, write: BaseWriteRow, field: string): Promise<KeyIndex> {
    // Lark's count and first page, and what larksync holds, read at once.
    const held = knownKeys(this.deps.db, { tenantKey: write.tenant_key, appId: ctx.appId, appToken: ctx.appToken, tableId: write.table_id, field });
    held.catch(() => undefined);
    let page = await this.keyPage(ctx, tokens, write.table_id, field, undefined);
    const known = this.knownIndex(write, field, page, await held);
    if (known) {
      ctx.keys.set(`${write.table_id}\u0000${field}`, known);
      return known;
    }
    const pending = await sql<{ n: number }>`
      select count(*)::int as n from base_write_records r join base_writes w on w.id = r.write_id
       where w.app_id = ${ctx.appId} and w.app_token = ${ctx.appToken} and w.table_id = ${write.table_id} and w.op = 'upsert'
         and w.status in ('queued', 'running') and r.state = 'pending' and r.input->'match' ? ${field}`.execute(this.deps.db);
    const searches = Math.ceil((pending.rows[0]?.n ?? 0) / MATCH_CHUNK);
    const scan = Math.ceil((page.total ?? Number.POSITIVE_INFINITY) / SCAN_PAGE) <= searches;
    const index = new KeyIndex(write.table_id, field, scan ? 'scan' : 'search');
    if (scan) {
      for (;;) {
        for (const item of page.items ?? []) {
          const text = cellText(item.fields?.[field]);
          if (item.record_id && text !== undefined) index.learn(item.record_id, text);
        }
        if (!page.has_more || !page.page_token) break;
        page = await this.keyPage(ctx, tokens, write.table_id, field, page.page_token);
      }
    }
    ctx.keys.set(`${write.table_id}\u0000${field}`, index);
    return index;
  }

  /**
   * The index from what larksync holds, if it holds every record Lark lists (`first`: Lark's first
   * page of the field, with the table's total) and agrees with that page; undefined otherwise.
   */
  private knownIndex(write: BaseWriteRow, field: string, first: { items?: LarkBaseRecord[]; total?: number }, known: KnownKeys): KeyIndex | undefined {
    if (typeof first.total !== 'number') return undefined;
    if (known === 'unusable' || known.size !== first.total) return undefined;
    for (const item of first.items ?? []) {
      if (!item.record_id || !known.has(item.record_id) || known.get(item.record_id) !== cellText(item.fields?.[field])) return undefined;
    }
    return KeyIndex.fromKnown(write.table_id, field, known);
  }

  private keyPage(ctx: BaseContext, tokens: TenantTokens, tableId: string, field: string, pageToken: string | undefined) {
    return this.call<{ items?: LarkBaseRecord[]; has_more?: boolean; page_token?: string; total?: number }>(tokens, 'bitable.records.search', {
      method: 'POST',
      path: `${TABLE(ctx.appToken, tableId)}/records/search`,
      endpoint: '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records/search',
      query: { page_size: SCAN_PAGE, page_token: pageToken },
      body: { field_names: [field] },
    });
  }

  /** Record ids by the text of `field` for the given values (records/search, `is`, `or`, 50 values a call); learnt by the index. */
  private async searchValues(ctx: BaseContext, tokens: TenantTokens, tableId: string, field: string, values: string[], index: KeyIndex): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    const groups: string[][] = [];
    for (let i = 0; i < values.length; i += MATCH_CHUNK) groups.push(values.slice(i, i + MATCH_CHUNK));
    const answers = await Promise.all(groups.map((g) => this.findByValues(ctx, tokens, tableId, field, g)));
    for (const a of answers) for (const [v, ids] of a) out.set(v, ids);
    for (const [v, ids] of out) for (const id of ids) index.learn(id, v);
    return out;
  }

  /** Record ids by the text of `field`, for the given values (records/search, `is`, `or`). */
  private async findByValues(ctx: BaseContext, tokens: TenantTokens, tableId: string, field: string, values: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    let pageToken: string | undefined;
    do {
      const data = await this.call<{ items?: LarkBaseRecord[]; has_more?: boolean; page_token?: string }>(tokens, 'bitable.records.search', {
        method: 'POST',
        path: `${TABLE(ctx.appToken, tableId)}/records/search`,
        endpoint: '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records/search',
        query: { page_size: 500, page_token: pageToken },
        body: { field_names: [field], filter: { conjunction: 'or', conditions: values.map((v) => ({ field_name: field, operator: 'is', value: [v] })) } },
      });
      for (const item of data.items ?? []) {
        const text = cellText(item.fields?.[field]);
        if (text === undefined || !item.record_id || !values.includes(text)) continue;
        out.set(text, [...(out.get(text) ?? []), item.record_id]);
      }
      pageToken = data.has_more && data.page_token ? data.page_token : undefined;
    } while (pageToken);
    return out;
  }

  /** Fields checked and converted; attachment inputs uploaded into the Base. */
  private async convert(ctx: BaseContext, tokens: TenantTokens, schema: Map<string, TableField>, input: Record<string, unknown>) {
    const res = convertFields(input, schema);
    if ('error' in res) return res;
    for (const u of res.ok.uploads) {
      const tokensOut = [...u.keep];
      for (const src of u.sources) {
        try {
          const file = await loadSource(src, this.deps.allowPrivateAttachments);
          await this.deps.pacer.take(
            bucketOf(tokens.app.appId, tokens.tenantKey, 'drive.medias.upload', WRITE_LIMITS['drive.medias.upload']),
            WRITE_LIMITS['drive.medias.upload'],
          );
          tokensOut.push({ file_token: await uploadToBase(this.deps.http, tokens, ctx.appToken, file) });
        } catch (err) {
          const why = err instanceof AttachmentError ? err.message : `the upload failed (${(err as Error).message.slice(0, 200)})`;
          return { error: { code: 'attachment_failed', message: `${u.field}: an attachment ${why}`, field: u.field } satisfies WriteRecordError };
        }
      }
      res.ok.fields[u.field] = tokensOut;
    }
    return res;
  }

  /** Stores a call (body, fresh client_token) and marks its records batched; throws PlanRace if any was no longer pending. */
  private async insertBatch(
    trx: Transaction<Database>,
    ctx: BaseContext,
    write: BaseWriteRow,
    op: BatchOp,
    records: Array<{ write_id: string; idx: number; body: Record<string, unknown> | string }>,
  ): Promise<Planned> {
    const body = { records: records.map((r) => r.body) };
    const json = JSON.stringify(body);
    const batch = await trx
      .insertInto('base_write_batches')
      .values({
        app_id: ctx.appId,
        app_token: ctx.appToken,
        table_id: write.table_id,
        op,
        identity_user: write.identity_user,
        client_token: randomUUID(),
        body: json,
        status: 'planned',
        // Counted as sent from now (see Planned.marked): the call leaves without a round trip to count it.
        attempts: 1,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const moved = await sql`
      update base_write_records r set state = 'batched', batch_id = ${batch.id}::bigint
        from jsonb_to_recordset(${JSON.stringify(records.map((x) => ({ w: x.write_id, i: x.idx })))}::jsonb) as p(w bigint, i int)
       where r.write_id = p.w and r.idx = p.i and r.state = 'pending'`.execute(trx);
    if (Number(moved.numAffectedRows ?? 0) !== records.length) throw new PlanRace('records changed state while being planned');
    return { batch: { ...batch, body }, json, tenantKey: write.tenant_key, members: records.map((r) => ({ write_id: r.write_id, idx: r.idx })), marked: true };
  }

  /**
   * Sends a planned call (again, with its own client_token, after a timeout or a 5xx) until Lark
   * gives an answer that is not "later". `onSent` runs once, when the call first leaves, and says
   * whether it started planning the next call (see Lane).
   */
  private async transmit(ctx: BaseContext, p: Planned, onSent: () => boolean = () => false): Promise<Exclude<Outcome, { kind: 'retry' }>> {
    const { batch } = p;
    const path = `${TABLE(ctx.appToken, batch.table_id)}/records/batch_${batch.op}`;
    let sent = false;
    let sentAt = 0;
    for (let attempt = 0; ; attempt += 1) {
      let outcome: Outcome;
      try {
        const tokens = await this.tokens(ctx, p.tenantKey, batch.identity_user);
        // Counted before it leaves (a call with attempts = 0 was never sent: unplanAfter relies
        // on it), while the rate limit's token is taken: the only round trips between an answer
        // and the next call, so a call this job stored as sent already (marked) is not counted
        // again on its first send, and a token taken shortly before (paceAhead) is used if it is
        // fresh. The call's row alone: its write's row is locked by the commit of the answer
        // before it (settleWrites), so the write's upstream_calls is counted with the answer
        // instead (countSends).
        const counted = p.marked === true && !p.left;
        p.sends = (p.sends ?? 0) + 1;
        p.left = true;
        const paced = p.paced && Date.now() - p.paced.at <= PACED_FRESH_MS ? p.paced.taken : undefined;
        p.paced = undefined;
        const take = () => this.takeWriteToken(tokens);
        const ready = Promise.all([
          counted ? undefined : sql`update base_write_batches set attempts = attempts + 1 where id = ${batch.id}::bigint`.execute(this.deps.db),
          paced ? paced.then(() => undefined, take) : take(),
        ]);
        // Awaited in the call below; a token lookup that fails first must not leave it unhandled.
        ready.catch(() => undefined);
        const res = await tokens.withToken(async (token, baseUrl) => {
          // (Run again with a fresh token after Lark refused the first: the same attempt.)
          await ready;
          sentAt = Date.now();
          const answer = this.deps.http.call<{ data?: Record<string, unknown> }>(baseUrl, {
            method: 'POST',
            path,
            endpoint: `/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records/batch_${batch.op}`,
            query: { client_token: batch.client_token, user_id_type: 'open_id' },
            json: p.json,
            bearer: token,
            timeoutMs: this.options.callTimeoutMs,
          });
          const planning = !sent && onSent();
          sent = true;
          ctx.lane.departed(planning);
          return answer;
        });
        outcome = { kind: 'ok', data: res.body.data ?? {} };
        ctx.fastestAnswerMs = Math.min(ctx.fastestAnswerMs ?? Number.POSITIVE_INFINITY, Date.now() - sentAt);
      } catch (err) {
        outcome = classify(err);
      }
      if (outcome.kind !== 'retry') return outcome;
      if (attempt + 1 >= this.options.attemptsPerJob) throw new RetryLater(outcome.waitMs, `batch ${batch.id}: ${outcome.why}`);
      ctx.lane.idle();
      await sleep(outcome.waitMs + Math.random() * 200);
    }
  }

  /**
   * Lark applied the call: its record ids in member order, and what it did to the job's key
   * indexes of the table (records created with a value, values changed, records deleted).
   */
  private answered(ctx: BaseContext, p: Planned, data: Record<string, unknown>): Array<string | null> {
    const { batch } = p;
    ctx.planned.delete(batch.id);
    const answered = (data.records ?? []) as Array<{ record_id?: string }>;
    const sent = (batch.body.records ?? []) as Array<string | { record_id?: string; fields?: Record<string, unknown> }>;
    // batch_create answers its records in the order sent (unconfirmed: assumed, as every SDK
    // example reads it); update and delete answers carry their record ids.
    const ids = p.members.map((_, i) => {
      if (batch.op === 'create') return answered[i]?.record_id ?? null;
      const s = sent[i];
      return (typeof s === 'string' ? s : s?.record_id) ?? null;
    });
    for (const [key, index] of ctx.keys) {
      if (index.tableId !== batch.table_id) continue;
      sent.forEach((s, i) => {
        const id = ids[i];
        if (!id) return;
        if (batch.op === 'delete') return index.forget(id);
        const value = writtenKey(typeof s === 'string' ? undefined : s.fields, index.field);
        if (value === null) ctx.keys.delete(key);
        else if (value !== undefined) index.learn(id, value);
      });
    }
    return ids;
  }

  /**
   * Answers, committed (records ok with their ids, the calls 'written') in one transaction, then
   * handed to the reader in order. Answers that came while an earlier commit ran are committed
   * together: one commit per answer, each waiting for the lane, could fall behind the calls.
   */
  private async commitAnswers(answers: Array<{ p: Planned; ids: Array<string | null> }>, reader: ReadBack<ReadRows>): Promise<void> {
    if (answers.length === 0) return;
    const writeIds = [...new Set(answers.flatMap((a) => a.p.members.map((m) => m.write_id)))];
    await this.deps.db.transaction().execute(async (trx) => {
      const rows = answers.flatMap(({ p, ids }) => p.members.map((m, i) => ({ w: m.write_id, i: m.idx, id: ids[i] })));
      await sql`
        update base_write_records r set state = 'ok', record_id = p.id
          from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as p(w bigint, i int, id text)
         where r.write_id = p.w and r.idx = p.i`.execute(trx);
      await this.countSends(trx, answers.map((a) => a.p));
      await trx
        .updateTable('base_write_batches')
        .set({ status: 'written' })
        .where(
          'id',
          'in',
          answers.map((a) => a.p.batch.id),
        )
        .execute();
      // Lark holds these records: their writes may end now (the read-back follows).
      await settleWrites(trx, writeIds);
    });
    for (const { p, ids } of answers) {
      reader.push({
        batchId: p.batch.id,
        tableId: p.batch.table_id,
        op: p.batch.op,
        identityUser: p.batch.identity_user,
        tenantKey: p.tenantKey,
        recordIds: ids.filter((x): x is string => x !== null),
        writeIds: [...new Set(p.members.map((m) => m.write_id))],
      });
    }
  }

  /**
   * Adds the calls this job sent to their writes' upstream_calls (each call to its first
   * record's write, as it was counted before). Counted when the call's outcome is committed
   * rather than before it left, so a call in flight when the process died goes uncounted.
   */
  private async countSends(db: Kysely<Database>, calls: Planned[]): Promise<void> {
    const byWrite = new Map<string, number>();
    for (const p of calls) {
      if (!p.sends) continue;
      byWrite.set(p.members[0]!.write_id, (byWrite.get(p.members[0]!.write_id) ?? 0) + p.sends);
      p.sends = 0;
    }
    if (byWrite.size === 0) return;
    await sql`
      update base_writes w set upstream_calls = w.upstream_calls + c.n
        from jsonb_to_recordset(${JSON.stringify([...byWrite].map(([w, n]) => ({ w, n })))}::jsonb) as c(w bigint, n int)
       where w.id = c.w`.execute(db);
  }

  /** The written records as Lark holds them now (batch_get, 100 at a time); a failure only delays them to the next sync. */
  private async readRows(ctx: BaseContext, item: ReadBackItem): Promise<ReadRows> {
    if (item.op === 'delete' || item.recordIds.length === 0) return { rows: [] };
    try {
      const tokens = await this.tokens(ctx, item.tenantKey, item.identityUser);
      // Numbered before the calls (sync/read-seq.ts): a change event's re-read of the same records
      // that started later wins over this read-back, whichever commits first.
      const readSeq = await nextReadSeq(this.deps.db);
      const chunks: string[][] = [];
      for (let i = 0; i < item.recordIds.length; i += READ_BACK_CHUNK) chunks.push(item.recordIds.slice(i, i + READ_BACK_CHUNK));
      // Sent together, paced by the batch_get tier: Lark's latency overlaps, its rate limit holds.
      const answers = await Promise.all(
        chunks.map((ids) =>
          this.call<{ records?: LarkBaseRecord[] }>(tokens, 'bitable.records.batch_get', {
            method: 'POST',
            path: `${TABLE(ctx.appToken, item.tableId)}/records/batch_get`,
            endpoint: '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records/batch_get',
            body: { record_ids: ids, automatic_fields: true },
          }),
        ),
      );
      const out: StreamRow[] = [];
      for (const data of answers) {
        await yieldToIo();
        await ctx.lane.fresh();
        for (const r of data.records ?? []) {
          const row = recordRow(ctx.appToken, item.tableId, r);
          if (row) out.push(row);
        }
      }
      return { rows: out, readSeq };
    } catch (err) {
      // Only Lark may turn a read-back down. Anything else (the database refusing a connection, a
      // bug) fails the job: the call stays 'written' and the next job reads it back, rather than
      // reporting the write succeeded without its rows.
      if (!fromLark(err)) throw err;
      this.deps.log.warn({ appToken: ctx.appToken, batch: item.batchId, err: (err as Error).message }, 'written records could not be read back; the next sync brings them');
      return { rows: [] };
    }
  }

  /** The read-back rows (or, for a delete, the rows marked deleted), the call done, its writes settled: one transaction. */
  private async commitRead(ctx: BaseContext, item: ReadBackItem, rows: StreamRow[], readSeq?: string): Promise<void> {
    // Hashed and encoded before the transaction opens, a slice of rows at a time, each slice only
    // while no answer is due (ctx.lane.fresh): 1,000 rows take tens of milliseconds of CPU, and a
    // step that began early in a call's flight used to run on past its answer, so the next call
    // waited behind it.
    const prepared = rows.length > 0 ? await prepareRows(BASE_RECORDS, rows, () => yieldToIo().then(() => ctx.lane.fresh())) : undefined;
    await this.deps.db.transaction().execute(async (trx) => {
      // What was written shows in base_records (and the records feed) at once, not at the next sync.
      if (prepared) await writeRows(trx, item.tenantKey, null, prepared, { recordSeen: false, readSeq });
      if (item.op === 'delete' && item.recordIds.length > 0) {
        const keys = item.recordIds.map((id) => `${ctx.appToken}:${item.tableId}:${id}`);
        await sql`update base_records set deleted_at = now(), updated_at = now(), change_seq = nextval('sync_change_seq'), change_xid = pg_current_xact_id()
                   where tenant_key = ${item.tenantKey} and record_key = any(${keys}::text[]) and deleted_at is null`.execute(trx);
      }
      await trx.updateTable('base_write_batches').set({ status: 'done', finished_at: sql<Date>`now()` }).where('id', '=', item.batchId).execute();
      await settleWrites(trx, item.writeIds);
      await emitWebhookEvent(trx, { type: 'records.changed', tenantKey: item.tenantKey, data: { streams: [BASE_RECORDS.name] } });
    });
  }

  /**
   * Calls planned after `afterId` and never sent go back: their records pending again, to be
   * planned after the calls that replace the one refused.
   */
  private async unplanAfter(ctx: BaseContext, afterId: string): Promise<void> {
    const later = [...ctx.planned.values()].filter((p) => BigInt(p.batch.id) > BigInt(afterId));
    if (later.length === 0) return;
    // Never sent: counted as sent by no one (attempts = 0), or marked by this job and never left.
    const unsent = later.filter((p) => p.marked && !p.left).map((p) => p.batch.id);
    await this.deps.db.transaction().execute(async (trx) => {
      const dropped = await sql<{ id: string }>`
        update base_write_batches set status = 'failed', finished_at = now()
         where id = any(${later.map((p) => p.batch.id)}::bigint[]) and status = 'planned' and (attempts = 0 or id = any(${unsent}::bigint[])) returning id::text as id`.execute(trx);
      const ids = dropped.rows.map((r) => r.id);
      await sql`update base_write_records set state = 'pending', batch_id = null where batch_id = any(${ids}::bigint[]) and state = 'batched'`.execute(trx);
      for (const id of ids) ctx.planned.delete(id);
    });
  }

  /** 1254607: the same records again, in calls half the size. */
  private async split(ctx: BaseContext, p: Planned): Promise<void> {
    const key = `${p.batch.table_id}:${p.batch.op}`;
    const size = Math.max(1, Math.floor(p.members.length / 2));
    ctx.limits.set(key, size);
    if (p.members.length === 1) {
      ctx.planned.set(p.batch.id, p);
      throw new RetryLater(5_000, `batch ${p.batch.id}: Lark is not ready for even one record (1254607)`);
    }
    await this.reshape(ctx, p, size);
  }

  /**
   * A value Lark refused, somewhere in an all-or-nothing call: halves, until the record at fault
   * stands alone and is marked failed with Lark's code (larksync's own checks catch most before).
   */
  private async bisect(ctx: BaseContext, p: Planned, outcome: { code: number; message: string }): Promise<void> {
    if (p.members.length > 1) return this.reshape(ctx, p, Math.ceil(p.members.length / 2));
    await this.deps.db.transaction().execute(async (trx) => {
      await this.markFailed(trx, [{ ...p.members[0]!, error: { code: String(outcome.code), message: `Lark refused the value (code ${outcome.code}): ${outcome.message}` } }]);
      await trx.updateTable('base_write_batches').set({ status: 'failed', finished_at: sql<Date>`now()` }).where('id', '=', p.batch.id).execute();
      await settleWrites(trx, [p.members[0]!.write_id]);
    });
  }

  /** Replaces a call that was not applied by calls of `size` records, in the same order, each with a new client_token. */
  private async reshape(ctx: BaseContext, p: Planned, size: number): Promise<void> {
    const { batch, members } = p;
    const sent = (batch.body.records ?? []) as Array<Record<string, unknown> | string>;
    const made: Planned[] = [];
    await this.deps.db.transaction().execute(async (trx) => {
      await trx.updateTable('base_write_batches').set({ status: 'failed', finished_at: sql<Date>`now()` }).where('id', '=', batch.id).execute();
      for (let i = 0; i < members.length; i += size) {
        const part = members.slice(i, i + size);
        const body = { records: sent.slice(i, i + size) };
        const json = JSON.stringify(body);
        const created = await trx
          .insertInto('base_write_batches')
          .values({
            app_id: batch.app_id,
            app_token: batch.app_token,
            table_id: batch.table_id,
            op: batch.op,
            identity_user: batch.identity_user,
            client_token: randomUUID(),
            body: json,
            status: 'planned',
            // Counted as sent from now (see Planned.marked): it is sent next, in its place.
            attempts: 1,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await sql`
          update base_write_records r set batch_id = ${created.id}::bigint
            from jsonb_to_recordset(${JSON.stringify(part.map((m) => ({ w: m.write_id, i: m.idx })))}::jsonb) as p(w bigint, i int)
           where r.write_id = p.w and r.idx = p.i`.execute(trx);
        made.push({ batch: { ...created, body }, json, tenantKey: p.tenantKey, members: part, marked: true });
      }
    });
    for (const m of made) ctx.planned.set(m.batch.id, m);
  }

  /** Every record of the call fails alike (no edit permission, the table gone), and so do the rest of their writes. */
  private async fail(p: Planned, errorClass: string, message: string): Promise<void> {
    const writes = [...new Set(p.members.map((m) => m.write_id))];
    await this.deps.db.transaction().execute(async (trx) => {
      await trx.updateTable('base_write_batches').set({ status: 'failed', finished_at: sql<Date>`now()` }).where('id', '=', p.batch.id).execute();
      await this.markFailed(trx, p.members.map((m) => ({ ...m, error: { code: errorClass, message } })));
    });
    await this.failPending(writes, errorClass, message);
  }

  private async failPending(writeIds: string[], errorClass: string, message: string): Promise<void> {
    await this.deps.db.transaction().execute(async (trx) => {
      await sql`update base_write_records set state = 'failed', error = ${JSON.stringify({ code: errorClass, message })}::jsonb
                 where write_id = any(${writeIds}::bigint[]) and state = 'pending'`.execute(trx);
      await trx.updateTable('base_writes').set({ error_class: errorClass, error_message: message.slice(0, 1000) }).where('id', 'in', writeIds).execute();
      await settleWrites(trx, writeIds);
    });
  }

  /** Records refused (by larksync's checks or Lark's); a record cancelled meanwhile stays cancelled. */
  private async markFailed(trx: Transaction<Database>, failed: Array<{ write_id: string; idx: number; error: WriteRecordError }>): Promise<void> {
    if (failed.length === 0) return;
    await sql`
      update base_write_records r set state = 'failed', error = p.e
        from jsonb_to_recordset(${JSON.stringify(failed.map((f) => ({ w: f.write_id, i: f.idx, e: f.error })))}::jsonb) as p(w bigint, i int, e jsonb)
       where r.write_id = p.w and r.idx = p.i and r.state in ('pending', 'batched')`.execute(trx);
    await settleWrites(trx, [...new Set(failed.map((f) => f.write_id))]);
  }

  private async addWarnings(trx: Transaction<Database>, warnings: Map<string, Set<string>>): Promise<void> {
    for (const [writeId, set] of warnings) {
      await sql`
        update base_writes set warnings = (select coalesce(jsonb_agg(distinct w), '[]'::jsonb)
                                             from jsonb_array_elements_text(warnings || ${JSON.stringify([...set].slice(0, 50))}::jsonb) as w)
         where id = ${writeId}::bigint`.execute(trx);
    }
  }

  /** Every open write of the Base that has nothing left open ends (a safety net at the end of each job). */
  private async settleOpen(appId: string, appToken: string): Promise<void> {
    const open = await this.deps.db.selectFrom('base_writes').select('id').where('app_id', '=', appId).where('app_token', '=', appToken).where('status', 'in', ['queued', 'running']).execute();
    await this.deps.db.transaction().execute((trx) => settleWrites(trx, open.map((o) => o.id)));
  }
}

/** An error that is Lark's answer (or its absence, or who may call it), not larksync's own. */
function fromLark(err: unknown): boolean {
  return err instanceof LarkApiError || err instanceof LarkResponseRefusedError || err instanceof LarkTransportError || err instanceof UserAuthorizationRequiredError;
}

/** What Lark's answer (or its absence) means for a call. */
function classify(err: unknown): Outcome {
  if (err instanceof UserAuthorizationRequiredError) return { kind: 'fatal', errorClass: 'user_authorization_required', message: err.message };
  if (err instanceof LarkApiError) {
    if (err.code === TOO_HEAVY) return { kind: 'split', why: 'data not ready (1254607)' };
    if (err.isRateLimited || RETRY_LATER.has(err.code) || err.httpStatus >= 500) {
      const waitMs = err.retryAfterSeconds !== undefined ? Math.min(60_000, err.retryAfterSeconds * 1000 + 50) : err.code === 1254291 ? 700 : 1_000;
      return { kind: 'retry', waitMs, why: `Lark answered ${err.code}` };
    }
    if (NOT_WRITABLE.has(err.code) || err.httpStatus === 403) {
      const notFound = err.code === 1254040 || err.code === 1254041 || err.code === 1254003 || err.code === 1254004;
      return notFound
        ? { kind: 'fatal', errorClass: 'not_found', message: `the Base or table was not found (code ${err.code}): check appToken and tableId, or the URL` }
        : { kind: 'fatal', errorClass: 'permission_denied', message: `${EDIT_HINT} (code ${err.code})` };
    }
    if (VALUE_CODES.has(err.code)) return { kind: 'invalid', code: err.code, message: err.larkMessage };
    if (err.isTokenInvalid) return { kind: 'retry', waitMs: 2_000, why: 'token refused' };
    return { kind: 'invalid', code: err.code, message: err.larkMessage };
  }
  if (err instanceof LarkResponseRefusedError) return { kind: 'fatal', errorClass: 'upstream_refused', message: err.message };
  if (err instanceof LarkTransportError) return { kind: 'retry', waitMs: 1_000, why: 'timeout' };
  return { kind: 'retry', waitMs: 2_000, why: (err as Error).message ?? String(err) };
}

export { RetryLater };

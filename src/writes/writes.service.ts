import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { parseBaseUrl } from '../connectors/base/config.js';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import type { LarkHttp } from '../lark/http.js';
import type { WriteRequestType } from '../schemas/writes.js';
import type { TokenService } from '../tokens/tokens.service.js';
import { settleWrites } from './settle.js';
import type { BaseWriteRow, RecordState, WriteOp, WriteRecordError, WriteStatus } from './writes.table.js';

export const APPLY_TASK = 'apply_base_writes';

/** The per-Base job queue: graphile-worker runs one job of a queue at a time, across every replica. */
export const baseQueue = (appId: string, appToken: string) => `base-writes:${appId}:${appToken}`;

export interface WriteRecordView {
  index: number;
  state: RecordState;
  recordId: string | null;
  error: WriteRecordError | null;
}

export interface WriteView {
  id: string;
  tenantKey: string;
  table: { appToken: string; tableId: string };
  op: WriteOp;
  identity: { user: string } | null;
  status: WriteStatus;
  counts: { total: number; ok: number; failed: number; pending: number; cancelled: number };
  /** records Lark holds whose rows are still being read back into base_records */
  readBackPending: number;
  warnings: string[];
  error: { class: string; message: string } | null;
  upstreamCalls: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  records?: WriteRecordView[];
}

export const FINISHED: readonly WriteStatus[] = ['succeeded', 'failed', 'partial', 'cancelled'];

/** Canonical JSON (sorted keys), so the same body hashes the same whatever its key order. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

/** Records hashed between two turns of the event loop. */
const HASH_SLICE = 500;

/**
 * The request's hash for Idempotency-Key replays: sha256 of
 * canonical({ table, op, records, identity }), fed to the hash a slice of records at a time with
 * a turn of the event loop between slices. Whole, the canonical form of 10,000 records held the
 * loop for 80-170 ms, and every Base's write lane waited behind it (an answer in, the next call
 * not sent). The bytes hashed are those of the one canonical string, so hashes stored before stay
 * valid.
 */
async function requestHash(table: { appToken: string; tableId: string }, op: WriteOp, records: unknown[], identity: string | null): Promise<string> {
  const h = createHash('sha256');
  // canonical() sorts keys: identity, op, records, table.
  h.update(`{"identity":${canonical(identity)},"op":${canonical(op)},"records":[`);
  for (let i = 0; i < records.length; i += 1) {
    if (i > 0 && i % HASH_SLICE === 0) await nextTurn();
    h.update(i === 0 ? canonical(records[i]) : `,${canonical(records[i])}`);
  }
  h.update(`],"table":${canonical(table)}}`);
  return h.digest('hex');
}

/** A record item must carry what its op needs, nothing it would ignore. */
function checkShape(op: WriteOp, records: WriteRequestType['records']): void {
  records.forEach((r, i) => {
    const at = `body.records.${i}`;
    const need = (ok: boolean, what: string) => {
      if (!ok) throw new AppError(400, 'invalid_request', `${at}: ${op} takes ${what}`);
    };
    if (op === 'create') need(r.fields !== undefined && r.recordId === undefined && r.match === undefined, '{ fields }');
    if (op === 'update') need(r.fields !== undefined && r.recordId !== undefined && r.match === undefined, '{ recordId, fields }');
    if (op === 'upsert') need(r.fields !== undefined && r.match !== undefined && r.recordId === undefined, '{ match: { "<field name>": value }, fields }');
    if (op === 'delete') need(r.recordId !== undefined && r.fields === undefined && r.match === undefined, '{ recordId }');
  });
}

/**
 * Writes into Base, accepted here: stored with each record before the 202, then applied by the
 * per-Base job (write-applier.ts) in the order they were accepted for that Base.
 */
export class WritesService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly tokens: TokenService,
    private readonly http: LarkHttp,
  ) {}

  /**
   * Stores a write (and queues its Base's job) in one transaction. With an Idempotency-Key, the
   * same key and the same body return the first write; the same key with another body is a 409.
   */
  async accept(tenantKey: string, body: WriteRequestType, idempotencyKey: string | undefined): Promise<{ write: WriteView; created: boolean }> {
    const tenant = await this.db.selectFrom('tenants').select(['app_id', 'status']).where('tenant_key', '=', tenantKey).executeTakeFirst();
    if (!tenant) throw new AppError(404, 'tenant_not_found', `tenant ${tenantKey} is not known`);
    if (tenant.status !== 'active') throw new AppError(409, 'tenant_not_active', `tenant ${tenantKey} is ${tenant.status}; writes run only for active tenants`);
    checkShape(body.op, body.records);
    const table = await this.resolveTable(tenantKey, body.table);
    const identityUser = body.identity?.user ?? null;
    if (identityUser) {
      const grant = await this.db
        .selectFrom('user_grants')
        .select(['status'])
        .where('app_id', '=', tenant.app_id)
        .where('tenant_key', '=', tenantKey)
        .where('open_id', '=', identityUser)
        .executeTakeFirst();
      if (grant?.status !== 'active') {
        throw new AppError(409, 'user_authorization_required', `user ${identityUser} has no active authorization in this tenant: they must sign in to larksync first`);
      }
    }
    const hash = await requestHash(table, body.op, body.records, identityUser);
    if (idempotencyKey !== undefined) {
      const existing = await this.findByKey(tenantKey, idempotencyKey);
      if (existing) return this.replay(existing, hash);
    }
    try {
      const id = await this.db.transaction().execute(async (trx) => {
        const write = await trx
          .insertInto('base_writes')
          .values({
            tenant_key: tenantKey,
            app_id: tenant.app_id,
            app_token: table.appToken,
            table_id: table.tableId,
            op: body.op,
            identity_user: identityUser,
            status: 'queued',
            idempotency_key: idempotencyKey ?? null,
            request_hash: hash,
            record_count: body.records.length,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        // One statement for up to 10,000 records.
        await sql`
          insert into base_write_records (write_id, idx, input, state)
          select ${write.id}::bigint, (r.n - 1)::int, r.value, 'pending'
            from jsonb_array_elements(${JSON.stringify(body.records)}::jsonb) with ordinality as r(value, n)`.execute(trx);
        // A job per Base (not per write): graphile-worker runs one job of a queue at a time on
        // every replica together, which is the one-write-call-per-Base rule. The key keeps a
        // burst of accepted writes from piling up jobs; a job already running picks them up.
        await sql`select graphile_worker.add_job(${APPLY_TASK}, json_build_object('appId', ${tenant.app_id}::text, 'appToken', ${table.appToken}::text),
                    queue_name => ${baseQueue(tenant.app_id, table.appToken)}, job_key => ${`${baseQueue(tenant.app_id, table.appToken)}:next`},
                    max_attempts => 25)`.execute(trx);
        return write.id;
      });
      return { write: (await this.get(id, { records: false }))!, created: true };
    } catch (err) {
      // Two requests with one key at once: the loser answers as a replay of the winner.
      if ((err as { code?: string }).code === '23505' && idempotencyKey !== undefined) {
        const existing = await this.findByKey(tenantKey, idempotencyKey);
        if (existing) return this.replay(existing, hash);
      }
      throw err;
    }
  }

  private async findByKey(tenantKey: string, key: string): Promise<BaseWriteRow | undefined> {
    return this.db.selectFrom('base_writes').selectAll().where('tenant_key', '=', tenantKey).where('idempotency_key', '=', key).executeTakeFirst();
  }

  private async replay(existing: BaseWriteRow, hash: string): Promise<{ write: WriteView; created: boolean }> {
    if (existing.request_hash !== hash) {
      throw new AppError(409, 'idempotency_key_reused', 'this Idempotency-Key was used with another request body; use a new key for a new write');
    }
    return { write: (await this.get(existing.id, { records: false }))!, created: false };
  }

  /** A table as named in the request; a wiki URL is resolved to its Base with the tenant's token. */
  private async resolveTable(tenantKey: string, table: WriteRequestType['table']): Promise<{ appToken: string; tableId: string }> {
    if ('appToken' in table) return { appToken: table.appToken, tableId: table.tableId };
    const ref = parseBaseUrl(table.url);
    if (!ref) throw new AppError(400, 'invalid_request', 'body.table.url: give a Base URL with ?table=<table id> (or a wiki page that is a Base)');
    if (ref.kind === 'ids') return { appToken: ref.appToken, tableId: ref.tableId };
    const node = await this.tokens
      .withTenantToken(tenantKey, (token, baseUrl) =>
        this.http.call<{ data?: { node?: { obj_type?: string; obj_token?: string } } }>(baseUrl, {
          method: 'GET',
          path: '/open-apis/wiki/v2/spaces/get_node',
          query: { token: ref.nodeToken, obj_type: 'wiki' },
          bearer: token,
        }),
      )
      .catch(() => undefined);
    const n = node?.body.data?.node;
    if (n?.obj_type !== 'bitable' || !n.obj_token) {
      throw new AppError(400, 'invalid_request', 'body.table.url: the wiki page is not a Base the app can open; give the Base URL or add the app to the wiki space');
    }
    return { appToken: n.obj_token, tableId: ref.tableId };
  }

  async get(id: string, opts: { records: boolean } = { records: true }): Promise<WriteView | undefined> {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    const w = await this.db.selectFrom('base_writes').selectAll().where('id', '=', id).executeTakeFirst();
    if (!w) return undefined;
    // One pass over the write's own records (its primary key), the records still to be read back
    // counted in the same pass against the Base's few calls not yet read back (an init plan, run
    // once). A lateral count per such call cost 63 ms a write while the read-back lagged (70 calls
    // of 1,000 records each to visit), and a client polling ten writes every 250 ms kept a core
    // of Postgres busy: CPU taken from the writes themselves on a small machine.
    const counts = await sql<{ state: RecordState; n: number; unread: number }>`
      select r.state, count(*)::int as n,
             (count(*) filter (where r.state = 'ok' and r.batch_id = any(array(
                select b.id from base_write_batches b
                 where b.app_id = ${w.app_id} and b.app_token = ${w.app_token} and b.status = 'written'))))::int as unread
        from base_write_records r
       where r.write_id = ${id}::bigint
       group by r.state`.execute(this.db);
    const by = Object.fromEntries(counts.rows.map((r) => [r.state, r.n])) as Partial<Record<RecordState, number>>;
    const unread = counts.rows.reduce((n, r) => n + r.unread, 0);
    const view = toView(w, by, unread);
    if (opts.records) {
      const rows = await this.db
        .selectFrom('base_write_records')
        .select(['idx', 'state', 'record_id', 'error'])
        .where('write_id', '=', id)
        .orderBy('idx')
        .execute();
      view.records = rows.map((r) => ({ index: r.idx, state: r.state, recordId: r.record_id, error: r.error }));
    }
    return view;
  }

  async list(tenantKey: string, opts: { status?: WriteStatus; limit: number }): Promise<WriteView[]> {
    let q = this.db.selectFrom('base_writes').selectAll().where('tenant_key', '=', tenantKey).orderBy('id', 'desc').limit(opts.limit);
    if (opts.status) q = q.where('status', '=', opts.status);
    const rows = await q.execute();
    const out: WriteView[] = [];
    for (const r of rows) out.push((await this.get(r.id, { records: false }))!);
    return out;
  }

  /**
   * Stops what has not been sent: pending records are cancelled. Records already in a batch are
   * on their way to Lark (or there) and finish; the write ends once they have.
   */
  async cancel(id: string): Promise<WriteView | undefined> {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    await this.db.transaction().execute(async (trx) => {
      const w = await trx.selectFrom('base_writes').select(['status']).where('id', '=', id).forUpdate().executeTakeFirst();
      if (!w || FINISHED.includes(w.status)) return;
      await trx.updateTable('base_write_records').set({ state: 'cancelled' }).where('write_id', '=', id).where('state', '=', 'pending').execute();
      // Ends now if nothing is on its way: cancelled if nothing was written, partial if some was.
      await settleWrites(trx, [id]);
    });
    return this.get(id, { records: false });
  }

  /** Waits until the write has finished, or `seconds` have passed; answers it as it is then. */
  async waitFor(id: string, seconds: number): Promise<WriteView | undefined> {
    const until = Date.now() + seconds * 1000;
    for (;;) {
      const w = await this.get(id, { records: false });
      if (!w || FINISHED.includes(w.status) || Date.now() >= until) return w;
      await new Promise((r) => setTimeout(r, Math.min(200, Math.max(10, until - Date.now()))));
    }
  }
}

function toView(w: BaseWriteRow, by: Partial<Record<RecordState, number>>, readBackPending: number): WriteView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: w.id,
    tenantKey: w.tenant_key,
    table: { appToken: w.app_token, tableId: w.table_id },
    op: w.op,
    identity: w.identity_user ? { user: w.identity_user } : null,
    status: w.status,
    counts: {
      total: w.record_count,
      ok: by.ok ?? 0,
      failed: by.failed ?? 0,
      pending: (by.pending ?? 0) + (by.batched ?? 0),
      cancelled: by.cancelled ?? 0,
    },
    readBackPending,
    warnings: w.warnings,
    error: w.error_class ? { class: w.error_class, message: w.error_message ?? '' } : null,
    upstreamCalls: w.upstream_calls,
    createdAt: w.created_at.toISOString(),
    startedAt: iso(w.started_at),
    finishedAt: iso(w.finished_at),
  };
}

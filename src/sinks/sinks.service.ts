import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import { SinkDelivery, defaultDeliveryOptions, type DeliveryDeps, type DeliveryOutcome, type DeliveryOverrides } from './delivery.js';
import { checkSinkUrl, checkSinkUrlResolves } from './sink-url.js';
import { countDocs, getSink, sinkKeyContext, sinksDue, type DocCounts } from './sinks.repository.js';
import type { SinkDocStatus, SinkRow, SinkType } from './sinks.table.js';

/** The graphile task delivering one sink; its jobs run one at a time per sink (queue `sink:<tenant>:<name>`). */
export const DELIVER_TASK = 'deliver_sink';
/** The minute cron queueing a delivery for each sink with work. */
export const QUEUE_DELIVERIES_TASK = 'queue_sink_deliveries';

export const sinkQueue = (tenantKey: string, name: string) => `sink:${tenantKey}:${name}`;
const jobKey = (tenantKey: string, name: string) => `${DELIVER_TASK}:${tenantKey}:${name}`;

export interface SinkInput {
  type: SinkType;
  url: string;
  /** Required to create a sink; when replacing one, omitted keeps the stored key. */
  apiKey?: string;
  datasetId: string;
  enabled?: boolean;
}

export interface SinkView {
  tenantKey: string;
  name: string;
  type: SinkType;
  url: string;
  datasetId: string;
  enabled: boolean;
  /** The key itself is never returned. */
  apiKeySet: true;
  delivery: {
    state: 'idle' | 'working' | 'backing_off' | 'disabled' | 'not_fed';
    failures: number;
    nextAttemptAt: string | null;
    lastError: string | null;
    lastErrorAt: string | null;
    lastDeliveredAt: string | null;
  };
  documents: DocCounts;
  createdAt: string;
  updatedAt: string;
}

export interface SinkDocumentView {
  larkToken: string;
  title: string | null;
  status: SinkDocStatus;
  /** The sink document serving this Lark document. */
  sinkDocumentId: string | null;
  sinkDocumentName: string | null;
  /** The body hash the sink document holds, and the one docs_content has now. */
  pushedHash: string | null;
  bodyHash: string | null;
  /** The sink's parse / indexing status as it named it last (RAGFlow `run`, Dify `indexing_status`). */
  sinkStatus: string | null;
  /** A newer version on its way. */
  pendingDocumentId: string | null;
  restarts: number;
  lastError: string | null;
  deliveredAt: string | null;
  updatedAt: string;
}

const RAGFLOW_DATASET = /^[0-9a-f]{32}$/;
const DIFY_DATASET = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The dataset id as the product writes it, or an error naming what is wrong. */
function checkDatasetId(type: SinkType, value: string): string {
  const v = value.trim().toLowerCase();
  if (type === 'ragflow') {
    const bare = v.replace(/-/g, '');
    if (RAGFLOW_DATASET.test(bare)) return bare;
    throw new AppError(400, 'invalid_dataset_id', 'datasetId: a RAGFlow dataset id is 32 hex digits (the id in the dataset page URL, or GET /api/v1/datasets)');
  }
  if (DIFY_DATASET.test(v)) return v;
  if (/^[0-9a-f]{32}$/.test(v)) return `${v.slice(0, 8)}-${v.slice(8, 12)}-${v.slice(12, 16)}-${v.slice(16, 20)}-${v.slice(20)}`;
  throw new AppError(400, 'invalid_dataset_id', 'datasetId: a Dify knowledge base id is a UUID (the id in the knowledge base URL, or GET /v1/datasets)');
}

function checkApiKey(type: SinkType, key: string): void {
  if (type === 'dify' && /^app-/.test(key)) {
    throw new AppError(400, 'invalid_api_key', 'apiKey: this is a Dify app key (app-…); use a knowledge-base key (dataset-…) from Knowledge → Service API → API Key');
  }
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * Knowledge-base sinks of a tenant (REST) and their deliveries (worker). The API key is sealed at
 * rest under a context naming the tenant and the sink, and never returned or logged.
 */
/** queueSoon queues deliveries at most this often. */
const QUEUE_SOON_MS = 5_000;

export class SinksService {
  readonly delivery: SinkDelivery;
  private queuedSoonAt = 0;

  constructor(
    private readonly deps: DeliveryDeps,
    options: DeliveryOverrides = {},
  ) {
    this.delivery = new SinkDelivery(deps, { ...defaultDeliveryOptions, ...options, http: { ...defaultDeliveryOptions.http, ...options.http } });
  }

  private get db(): Kysely<Database> {
    return this.deps.db;
  }

  private async tenantOrThrow(tenantKey: string): Promise<{ status: string }> {
    const t = await this.db.selectFrom('tenants').select(['status']).where('tenant_key', '=', tenantKey).executeTakeFirst();
    if (!t) throw new AppError(404, 'tenant_not_found', `tenant ${tenantKey} is not known`);
    return t;
  }

  private notFound(tenantKey: string, name: string): AppError {
    return new AppError(404, 'sink_not_found', `tenant ${tenantKey} has no sink ${name}; create it with PUT /api/v1/tenants/${tenantKey}/sinks/${name}`);
  }

  /** Creates or replaces a sink. A new destination (type, url, dataset) starts a fresh mapping. */
  async put(tenantKey: string, name: string, input: SinkInput): Promise<{ sink: SinkView; created: boolean }> {
    const tenant = await this.tenantOrThrow(tenantKey);
    if (tenant.status === 'uninstalled') throw new AppError(409, 'tenant_not_active', `tenant ${tenantKey} is uninstalled; sinks can be configured once it installs the app again`);
    const checked = checkSinkUrl(input.type, input.url, this.deps.allowPrivate);
    if (!checked.ok) throw new AppError(400, 'invalid_sink_url', `url ${checked.problem}`);
    const resolves = await checkSinkUrlResolves(checked.url, this.deps.allowPrivate);
    if (resolves) throw new AppError(400, 'invalid_sink_url', `url: ${resolves}`);
    const datasetId = checkDatasetId(input.type, input.datasetId);
    if (input.apiKey !== undefined) checkApiKey(input.type, input.apiKey);
    const enabled = input.enabled ?? true;
    const created = await this.db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom('sinks').selectAll().where('tenant_key', '=', tenantKey).where('name', '=', name).forUpdate().executeTakeFirst();
      const sealed = input.apiKey === undefined ? undefined : this.deps.sealer.seal(input.apiKey, sinkKeyContext(tenantKey, name));
      if (!existing) {
        if (!sealed) throw new AppError(400, 'api_key_required', 'apiKey is required to create a sink (RAGFlow: avatar → API; Dify: Knowledge → Service API → API Key)');
        await trx
          .insertInto('sinks')
          .values({ tenant_key: tenantKey, name, type: input.type, url: checked.url, dataset_id: datasetId, api_key_sealed: sealed, enabled })
          .execute();
        return true;
      }
      const moved = existing.type !== input.type || existing.url !== checked.url || existing.dataset_id !== datasetId;
      if (moved) {
        // Another destination: the old mapping means nothing there. Its documents stay where they are.
        await trx.deleteFrom('sink_documents').where('tenant_key', '=', tenantKey).where('sink_name', '=', name).execute();
      }
      await trx
        .updateTable('sinks')
        .set({
          type: input.type,
          url: checked.url,
          dataset_id: datasetId,
          enabled,
          ...(sealed ? { api_key_sealed: sealed } : {}),
          ...(moved
            ? { generation: existing.generation + 1, cursor_xid: '0', cursor_seq: '0', rebuild_requested: true, remote_state: '{}', failures: 0, next_attempt_at: null, last_error: null, last_error_at: null }
            : // A new key or a re-enable is worth trying at once.
              { failures: 0, next_attempt_at: null }),
          updated_at: new Date(),
        })
        .where('tenant_key', '=', tenantKey)
        .where('name', '=', name)
        .execute();
      return false;
    });
    if (enabled) await this.queueDelivery(tenantKey, name);
    return { sink: (await this.get(tenantKey, name))!, created };
  }

  async get(tenantKey: string, name: string): Promise<SinkView | undefined> {
    const row = await getSink(this.db, tenantKey, name);
    if (!row) return undefined;
    return this.view(row);
  }

  async getOrThrow(tenantKey: string, name: string): Promise<SinkView> {
    await this.tenantOrThrow(tenantKey);
    const v = await this.get(tenantKey, name);
    if (!v) throw this.notFound(tenantKey, name);
    return v;
  }

  private async view(row: SinkRow): Promise<SinkView> {
    const documents = await countDocs(this.db, row.tenant_key, row.name);
    const fed = await sql<{ ok: boolean }>`
      select true as ok from connectors where tenant_key = ${row.tenant_key} and module = 'docs'
         and jsonb_typeof(config -> 'sinks') = 'array' and (config -> 'sinks') @> jsonb_build_array(${row.name}::text)`.execute(this.db);
    const backingOff = row.next_attempt_at !== null && row.next_attempt_at.getTime() > Date.now();
    const state = !row.enabled ? 'disabled' : fed.rows.length === 0 ? 'not_fed' : backingOff ? 'backing_off' : documents.pending + documents.delivering > 0 ? 'working' : 'idle';
    return {
      tenantKey: row.tenant_key,
      name: row.name,
      type: row.type,
      url: row.url,
      datasetId: row.dataset_id,
      enabled: row.enabled,
      apiKeySet: true,
      delivery: {
        state,
        failures: row.failures,
        nextAttemptAt: backingOff ? iso(row.next_attempt_at) : null,
        lastError: row.last_error,
        lastErrorAt: iso(row.last_error_at),
        lastDeliveredAt: iso(row.last_delivered_at),
      },
      documents,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    };
  }

  /**
   * Forgets a sink: its configuration, key and mapping. The documents already in the sink stay
   * there (larksync does not empty a dataset it may not own alone); PUT the sink again and the
   * mapping is rebuilt from their lark_token metadata, without duplicates.
   */
  async delete(tenantKey: string, name: string): Promise<void> {
    await this.tenantOrThrow(tenantKey);
    const gone = await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('sink_documents').where('tenant_key', '=', tenantKey).where('sink_name', '=', name).execute();
      const res = await trx.deleteFrom('sinks').where('tenant_key', '=', tenantKey).where('name', '=', name).executeTakeFirst();
      return Number(res.numDeletedRows) > 0;
    });
    if (!gone) throw this.notFound(tenantKey, name);
    await sql`select graphile_worker.remove_job(${jobKey(tenantKey, name)})`.execute(this.db).catch(() => undefined);
  }

  async documents(tenantKey: string, name: string, q: { status?: SinkDocStatus; limit: number; cursor?: string }): Promise<{ documents: SinkDocumentView[]; nextCursor: string | null }> {
    await this.getOrThrow(tenantKey, name);
    let after = '';
    if (q.cursor !== undefined) {
      after = Buffer.from(q.cursor, 'base64url').toString('utf8');
      if (!after.startsWith('d:')) throw new AppError(400, 'invalid_cursor', 'cursor is not one this API returned; start without it');
      after = after.slice(2);
    }
    const res = await sql<{
      doc_token: string;
      title: string | null;
      status: SinkDocStatus;
      remote_id: string | null;
      remote_name: string | null;
      pushed_hash: string | null;
      body_hash: string | null;
      remote_status: string | null;
      pending_id: string | null;
      restarts: number;
      last_error: string | null;
      delivered_at: Date | null;
      updated_at: Date;
    }>`
      select s.doc_token, coalesce(c.title, s.title) as title, s.status, s.remote_id, s.remote_name, s.pushed_hash,
             case when c.deleted_at is null then coalesce(c.body_hash, c.content_hash) end as body_hash,
             s.remote_status, s.pending_id, s.restarts, s.last_error, s.delivered_at, s.updated_at
        from sink_documents s
        left join docs_content c on c.tenant_key = s.tenant_key and c.record_key = s.doc_token
       where s.tenant_key = ${tenantKey} and s.sink_name = ${name}
         ${q.status ? sql`and s.status = ${q.status}` : sql``}
         and s.doc_token > ${after}
       order by s.doc_token
       limit ${q.limit + 1}`.execute(this.db);
    const page = res.rows.slice(0, q.limit);
    return {
      documents: page.map((r) => ({
        larkToken: r.doc_token,
        title: r.title,
        status: r.status,
        sinkDocumentId: r.remote_id,
        sinkDocumentName: r.remote_name,
        pushedHash: r.pushed_hash,
        bodyHash: r.body_hash,
        sinkStatus: r.remote_status,
        pendingDocumentId: r.pending_id,
        restarts: r.restarts,
        lastError: r.last_error,
        deliveredAt: iso(r.delivered_at),
        updatedAt: r.updated_at.toISOString(),
      })),
      nextCursor: res.rows.length > q.limit ? Buffer.from(`d:${page.at(-1)!.doc_token}`).toString('base64url') : null,
    };
  }

  /**
   * Lists the whole dataset, rebuilds the mapping from it (after a database restore, or documents
   * changed in the sink by hand), deletes duplicates, and checks every document again: failed
   * ones are retried.
   */
  async reconcile(tenantKey: string, name: string): Promise<SinkView> {
    await this.getOrThrow(tenantKey, name);
    await this.db
      .updateTable('sinks')
      .set({ rebuild_requested: true, failures: 0, next_attempt_at: null, updated_at: new Date() })
      .where('tenant_key', '=', tenantKey)
      .where('name', '=', name)
      .execute();
    await this.queueDelivery(tenantKey, name);
    return this.getOrThrow(tenantKey, name);
  }

  /** Queues the sink's delivery job (deduplicated by job key; serial per sink by its queue). */
  async queueDelivery(tenantKey: string, name: string, runAt?: Date): Promise<void> {
    await sql`select graphile_worker.add_job(
      ${DELIVER_TASK},
      json_build_object('tenantKey', ${tenantKey}::text, 'name', ${name}::text),
      queue_name => ${sinkQueue(tenantKey, name)},
      run_at => ${runAt ?? null}::timestamptz,
      max_attempts => 10,
      job_key => ${jobKey(tenantKey, name)}
    )`.execute(this.db);
  }

  /**
   * queueDue soon, without waiting: at most once every QUEUE_SOON_MS however often it is asked
   * (every committed page of a docs run asks). A failure is logged; the minute cron queues again.
   */
  queueSoon(): void {
    const now = Date.now();
    if (now - this.queuedSoonAt < QUEUE_SOON_MS) return;
    this.queuedSoonAt = now;
    this.queueDue().catch((err: unknown) => this.deps.log.warn({ errMessage: (err as Error).message }, 'queueing sink deliveries after a docs page failed'));
  }

  /** The minute cron: a delivery for each enabled sink whose feed moved or whose documents are due. */
  async queueDue(): Promise<number> {
    const due = await sinksDue(this.db);
    for (const s of due) await this.queueDelivery(s.tenant_key, s.name);
    return due.length;
  }

  /** The task: one delivery job, then its continuation when work is left or parses are running. */
  async deliver(tenantKey: string, name: string): Promise<DeliveryOutcome> {
    const outcome = await this.delivery.run(tenantKey, name);
    if (outcome.nextRunAt) await this.queueDelivery(tenantKey, name, outcome.nextRunAt);
    return outcome;
  }
}

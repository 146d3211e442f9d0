import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  type FaultAnswer,
  type FaultKind,
  type Job,
  type KbBaseOptions,
  type KbFault,
  KbFakeBase,
  type UploadedFile,
  extOf,
  jobFinished,
  jobFraction,
  named,
  nginxPage,
  readMultipart,
  versionAtLeast,
} from './common.js';

/**
 * A Dify Knowledge ("dataset") Service API stand-in under `/v1`, written from
 * ../shared/kb/ragflow-dify.md §2, §3 "Dify fake", §4 and §5: real HTTP statuses with
 * `{code, message, status}`, `dataset-` bearer keys, the same-name upsert, the update rules
 * (only `display_status == available`), the `limit` cap with its `has_more` quirk, the indexing
 * state machine and metadata (since 1.1.0).
 *
 * Routes (names for count(), injectFault(), setLatency()):
 *   datasets.list               GET    /v1/datasets
 *   datasets.get                GET    /v1/datasets/{id}
 *   documents.createByText      POST   /v1/datasets/{id}/document/create-by-text   (+ create_by_text)
 *   documents.createByFile      POST   /v1/datasets/{id}/document/create-by-file   (+ create_by_file; multipart)
 *   documents.updateByText      POST   /v1/datasets/{id}/documents/{doc}/update-by-text (+ update_by_text)
 *   documents.updateByFile      POST   /v1/datasets/{id}/documents/{doc}/update-by-file (+ update_by_file; deprecated)
 *   documents.patch             PATCH  /v1/datasets/{id}/documents/{doc}           (multipart file update; `patchFileUpdate`)
 *   documents.delete            DELETE /v1/datasets/{id}/documents/{doc}
 *   documents.list              GET    /v1/datasets/{id}/documents
 *   documents.get               GET    /v1/datasets/{id}/documents/{doc}
 *   documents.indexingStatus    GET    /v1/datasets/{id}/documents/{batch}/indexing-status
 *   documents.status            PATCH  /v1/datasets/{id}/documents/status/{enable|disable|archive|un_archive}
 *   metadata.create             POST   /v1/datasets/{id}/metadata                  (1.1.0+)
 *   metadata.list               GET    /v1/datasets/{id}/metadata                  (1.1.0+)
 *   metadata.set                POST   /v1/datasets/{id}/documents/metadata        (1.1.0+)
 *   metadata.builtIn            POST   /v1/datasets/{id}/metadata/built-in/{enable|disable} (1.1.0+)
 */

export type IndexingStatus = 'waiting' | 'parsing' | 'cleaning' | 'splitting' | 'indexing' | 'completed' | 'error' | 'paused';
export type DisplayStatus = 'queuing' | 'indexing' | 'paused' | 'error' | 'available' | 'disabled' | 'archived';
const STAGES: IndexingStatus[] = ['waiting', 'parsing', 'cleaning', 'splitting', 'indexing'];
const ACTIVE: IndexingStatus[] = ['parsing', 'cleaning', 'splitting', 'indexing'];
const BUILT_IN = ['document_name', 'uploader', 'upload_date', 'last_update_date', 'source'] as const;

export interface DifyOptions extends KbBaseOptions {
  /** The Dify server version (default '1.16.0'); gates metadata (1.1.0) and the defaults below. */
  version?: string;
  /** Time from `waiting` to `completed` on the fake's clock (default 100 ms), split evenly over the 5 stages. */
  indexMs?: number;
  /**
   * Same-name create re-indexes the enabled document in place (§2.3). The version that switched is
   * unconfirmed; default: on from 0.15.0 (≤ 0.9.x created duplicates, #9177).
   */
  nameUpsert?: boolean;
  /** `PATCH /documents/{id}` file update. Version unconfirmed (§5); default on from 1.16.0 (documented 2026-07). */
  patchFileUpdate?: boolean;
  /** DELETE answer: 204 empty (current, default), 200 `{"result":"success"}`, or 200 with a body of `204` (older). */
  deleteAnswer?: 'no-content' | 'result' | 'body-204';
  /**
   * When DELETE answers 400 `document_indexing`. The service-side trigger is unconfirmed (§5):
   * default 'active' = while parsing/cleaning/splitting/indexing (a document stuck in the queue,
   * `waiting`, can be deleted — the usual way out of #28513-style stuck queues); 'never' disables it.
   */
  deleteWhileIndexing?: 'active' | 'never';
  /** UPLOAD_FILE_SIZE_LIMIT in MB (default 15). */
  uploadFileSizeLimitMb?: number;
  /** ETL_TYPE: the extension list (default 'dify'). */
  etlType?: 'dify' | 'Unstructured';
  /** UPLOAD_FILE_EXTENSION_BLACKLIST. */
  extensionBlacklist?: string[];
  /**
   * `keyword` matching: SQL LIKE '%kw%' with `%`/`_` unescaped. Case sensitivity is unconfirmed
   * (§5); default case-sensitive (PostgreSQL LIKE), the behaviour a client cannot count on escaping.
   */
  keywordCaseInsensitive?: boolean;
  /** Cloud "knowledge request rate limit": write calls per tenant per sliding 60 s before 403 (default off). */
  cloudRateLimitPerMinute?: number;
}

interface Tenant {
  id: string;
  keys: Set<string>;
}

interface MetaField {
  id: string;
  name: string;
  type: 'string' | 'number' | 'time';
}

interface Dataset {
  id: string;
  tenantId: string;
  name: string;
  description: string | null;
  indexingTechnique: 'high_quality' | 'economy' | null;
  docForm: string | null;
  processRule: Record<string, unknown> | null;
  processRuleId: string | null;
  enableApi: boolean;
  builtInFieldEnabled: boolean;
  fields: MetaField[];
  createdAt: number;
  updatedAt: number;
  nextPosition: number;
}

interface IndexJob extends Job {
  pausedAt?: number;
}

interface Doc {
  id: string;
  datasetId: string;
  tenantId: string;
  position: number;
  name: string;
  content: Buffer;
  file: { id: string; name: string; extension: string; mimeType: string; createdAt: number };
  batch: string;
  docForm: string;
  docLanguage: string;
  enabled: boolean;
  disabledAt: number | null;
  archived: boolean;
  archivedAt: number | null;
  createdAt: number;
  updatedAt: number;
  /** Settled state (when no job runs). */
  indexingStatus: IndexingStatus;
  error: string | null;
  times: { processingStartedAt: number | null; parsingCompletedAt: number | null; cleaningCompletedAt: number | null; splittingCompletedAt: number | null; completedAt: number | null; stoppedAt: number | null; pausedAt: number | null };
  job?: IndexJob;
  metadata: Record<string, unknown>;
  metadataLocked: boolean;
  processRule: Record<string, unknown> | null;
}

/** What a test sees of a stored document. */
export interface DifyDocView {
  id: string;
  datasetId: string;
  name: string;
  content: Buffer;
  /** Metadata values by field name (built-in fields included when enabled). */
  metadata: Record<string, unknown>;
  /** `display_status` (after settling the indexing model at the fake's `now()`). */
  status: DisplayStatus;
  indexingStatus: IndexingStatus;
  enabled: boolean;
  archived: boolean;
  batch: string;
  createdAt: number;
  updatedAt: number;
}

type Q = Record<string, string | string[] | undefined>;
const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const MIME: Record<string, string> = {
  txt: 'text/plain',
  md: 'text/markdown',
  markdown: 'text/markdown',
  mdx: 'text/markdown',
  pdf: 'application/pdf',
  html: 'text/html',
  htm: 'text/html',
  csv: 'text/csv',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
};

/** Dify's `batch`: %Y%m%d%H%M%S plus 6 random digits. */
function newBatch(nowMs: number): string {
  const d = new Date(nowMs);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp = `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
  return `${stamp}${100000 + (randomBytes(4).readUInt32BE(0) % 900000)}`;
}

/** SQL LIKE '%kw%' without escaping: `%` any run, `_` any one character. */
function likeMatcher(keyword: string, caseInsensitive: boolean): RegExp {
  const body = [...keyword].map((c) => (c === '%' ? '.*' : c === '_' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(body, caseInsensitive ? 'is' : 's');
}

/** Python slicing by code points (name[:200]). */
const truncate = (s: string, n: number) => [...s].slice(0, n).join('');

class DifyError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly params?: string,
  ) {
    super(message);
  }
}

export class DifyFake extends KbFakeBase {
  readonly version: string;
  private readonly opts: Required<Omit<DifyOptions, keyof KbBaseOptions | 'version' | 'cloudRateLimitPerMinute'>> & { cloudRateLimitPerMinute: number };
  private readonly tenants = new Map<string, Tenant>();
  private readonly keyOwner = new Map<string, string>();
  private readonly datasetsById = new Map<string, Dataset>();
  private readonly docsById = new Map<string, Doc>();
  private readonly writeTimes = new Map<string, number[]>();

  constructor(options: DifyOptions = {}) {
    super(options);
    this.version = (options.version ?? '1.16.0').replace(/^v/, '');
    this.opts = {
      indexMs: options.indexMs ?? 100,
      nameUpsert: options.nameUpsert ?? versionAtLeast(this.version, '0.15.0'),
      patchFileUpdate: options.patchFileUpdate ?? versionAtLeast(this.version, '1.16.0'),
      deleteAnswer: options.deleteAnswer ?? 'no-content',
      deleteWhileIndexing: options.deleteWhileIndexing ?? 'active',
      uploadFileSizeLimitMb: options.uploadFileSizeLimitMb ?? 15,
      etlType: options.etlType ?? 'dify',
      extensionBlacklist: options.extensionBlacklist ?? [],
      keywordCaseInsensitive: options.keywordCaseInsensitive ?? false,
      cloudRateLimitPerMinute: options.cloudRateLimitPerMinute ?? 0,
    };
    this.registerRoutes();
  }

  at(v: string): boolean {
    return versionAtLeast(this.version, v);
  }

  setOptions(patch: Partial<DifyFake['opts']>): void {
    Object.assign(this.opts, patch);
  }

  // ---------------------------------------------------------------- accounts, keys, knowledge bases (test hooks)

  /** A workspace (tenant) with one knowledge-base API key `dataset-…` reaching all its knowledge bases. */
  addOwner(opts: { id?: string; apiKey?: string } = {}): { tenantId: string; apiKey: string } {
    const id = opts.id ?? randomUUID();
    if (!this.tenants.has(id)) this.tenants.set(id, { id, keys: new Set() });
    return { tenantId: id, apiKey: this.addApiKey(id, opts.apiKey) };
  }

  addApiKey(tenantId: string, key = `dataset-${randomBytes(18).toString('base64url').slice(0, 24)}`): string {
    const t = this.tenants.get(tenantId);
    if (!t) throw new Error(`DifyFake: unknown tenant ${tenantId}`);
    t.keys.add(key);
    this.keyOwner.set(key, tenantId);
    return key;
  }

  revokeApiKey(key: string): void {
    const owner = this.keyOwner.get(key);
    if (owner) this.tenants.get(owner)?.keys.delete(key);
    this.keyOwner.delete(key);
  }

  /**
   * A knowledge base. `indexingTechnique`/`docForm` null (the default) = a new, empty knowledge
   * base whose first document must carry `indexing_technique` (and `process_rule` for files).
   */
  addDataset(
    owner: string,
    opts: { name: string; indexingTechnique?: 'high_quality' | 'economy' | null; docForm?: string | null; processRule?: Record<string, unknown> | null; enableApi?: boolean },
  ): { id: string; name: string } {
    const tenantId = this.keyOwner.get(owner) ?? owner;
    if (!this.tenants.has(tenantId)) throw new Error(`DifyFake: unknown owner ${owner}`);
    const t = this.nowS();
    const ds: Dataset = {
      id: randomUUID(),
      tenantId,
      name: opts.name,
      description: null,
      indexingTechnique: opts.indexingTechnique ?? null,
      docForm: opts.docForm ?? null,
      processRule: opts.processRule ?? null,
      processRuleId: opts.processRule ? randomUUID() : null,
      enableApi: opts.enableApi ?? true,
      builtInFieldEnabled: false,
      fields: [],
      createdAt: t,
      updatedAt: t,
      nextPosition: 1,
    };
    this.datasetsById.set(ds.id, ds);
    return { id: ds.id, name: ds.name };
  }

  /** The knowledge base's "Service API" switch (off = 403 forbidden). */
  setEnableApi(datasetId: string, on: boolean): void {
    const ds = this.datasetsById.get(datasetId);
    if (ds) ds.enableApi = on;
  }

  /** Holds a metadata operation on the document: metadata.set answers 400 until released. */
  lockMetadata(documentId: string, locked = true): void {
    const d = this.docsById.get(documentId);
    if (d) d.metadataLocked = locked;
  }

  /** Console-only pause/resume of an indexing run (indexing_status `paused`, display `paused`). */
  pauseIndexing(documentId: string): void {
    const d = this.docsById.get(documentId);
    if (!d) return;
    this.settle(d);
    if (d.job && d.job.pausedAt === undefined) d.job.pausedAt = this.now();
  }

  resumeIndexing(documentId: string): void {
    const d = this.docsById.get(documentId);
    if (!d?.job || d.job.pausedAt === undefined) return;
    d.job.startedAt += this.now() - d.job.pausedAt;
    d.job.pausedAt = undefined;
  }

  /** Ends a document's current indexing now (completed, or error with `fail`). */
  finishIndexing(documentId: string, result: 'done' | 'fail' = 'done'): void {
    const d = this.docsById.get(documentId);
    if (!d?.job) return;
    d.job = { ...d.job, outcome: result, durationMs: 0, startedAt: this.now(), pausedAt: undefined };
    this.settle(d);
  }

  // ---------------------------------------------------------------- inspection

  documents(datasetId?: string): DifyDocView[] {
    return [...this.docsById.values()].filter((d) => datasetId === undefined || d.datasetId === datasetId).map((d) => this.view(d));
  }

  document(id: string): DifyDocView | undefined {
    const d = this.docsById.get(id);
    return d ? this.view(d) : undefined;
  }

  findDocuments(q: { datasetId?: string; name?: string; metadata?: Record<string, unknown> }): DifyDocView[] {
    return this.documents(q.datasetId).filter(
      (d) => (q.name === undefined || d.name === q.name) && Object.entries(q.metadata ?? {}).every(([k, v]) => String(d.metadata[k]) === String(v)),
    );
  }

  /** Metadata fields of a knowledge base. */
  metadataFields(datasetId: string): MetaField[] {
    return structuredClone(this.datasetsById.get(datasetId)?.fields ?? []);
  }

  private view(d: Doc): DifyDocView {
    this.settle(d);
    return {
      id: d.id,
      datasetId: d.datasetId,
      name: d.name,
      content: Buffer.from(d.content),
      metadata: this.metadataValues(d),
      status: this.displayStatus(d),
      indexingStatus: this.indexingStatus(d),
      enabled: d.enabled,
      archived: d.archived,
      batch: d.batch,
      createdAt: d.createdAt,
      updatedAt: d.updatedAt,
    };
  }

  // ---------------------------------------------------------------- indexing model

  private nowS(): number {
    return Math.floor(this.now() / 1000);
  }

  /** Folds a finished job into the document's settled state. */
  private settle(d: Doc): void {
    const job = d.job;
    if (!job || job.pausedAt !== undefined || !jobFinished(job, this.now())) return;
    const end = job.startedAt + job.durationMs;
    d.times = { ...this.stageTimes(job, end) };
    if (job.outcome === 'fail') {
      d.indexingStatus = 'error';
      d.error = job.message ?? 'Simulated indexing failure.';
      d.times.stoppedAt = Math.floor(end / 1000);
      d.times.completedAt = null;
    } else {
      d.indexingStatus = 'completed';
      d.error = null;
      d.times.completedAt = Math.floor(end / 1000);
    }
    d.job = undefined;
  }

  private stageTimes(job: IndexJob, at: number): Doc['times'] {
    const t = (fraction: number) => {
      const ms = job.startedAt + fraction * job.durationMs;
      return jobFraction(job, at) >= fraction && ms <= at ? Math.floor(ms / 1000) : null;
    };
    return {
      processingStartedAt: t(0.2),
      parsingCompletedAt: t(0.4),
      cleaningCompletedAt: t(0.6),
      splittingCompletedAt: t(0.8),
      completedAt: null,
      stoppedAt: null,
      pausedAt: job.pausedAt === undefined ? null : Math.floor(job.pausedAt / 1000),
    };
  }

  private indexingStatus(d: Doc): IndexingStatus {
    this.settle(d);
    const job = d.job;
    if (!job) return d.indexingStatus;
    if (job.pausedAt !== undefined) return 'paused';
    const at = this.now();
    const f = jobFraction(job, at);
    return STAGES[Math.min(4, Math.floor(f * 5))] as IndexingStatus;
  }

  private times(d: Doc): Doc['times'] {
    this.settle(d);
    if (!d.job) return d.times;
    return this.stageTimes(d.job, d.job.pausedAt ?? this.now());
  }

  private displayStatus(d: Doc): DisplayStatus {
    const s = this.indexingStatus(d);
    if (s === 'waiting') return 'queuing';
    if (s === 'paused') return 'paused';
    if (ACTIVE.includes(s)) return 'indexing';
    if (s === 'error') return 'error';
    if (d.archived) return 'archived';
    return d.enabled ? 'available' : 'disabled';
  }

  private startIndexing(d: Doc): void {
    const drawn = this.drawOutcome(d);
    d.job = { startedAt: this.now(), durationMs: this.opts.indexMs, outcome: drawn.outcome, hangAt: drawn.hangAt, message: drawn.message };
    d.indexingStatus = 'waiting';
    d.error = null;
    d.times = { processingStartedAt: null, parsingCompletedAt: null, cleaningCompletedAt: null, splittingCompletedAt: null, completedAt: null, stoppedAt: null, pausedAt: null };
  }

  private wordCount(d: Doc): number {
    return [...d.content.toString('utf8')].length;
  }

  // ---------------------------------------------------------------- metadata values

  private builtInValues(d: Doc): Record<string, unknown> {
    return {
      document_name: d.name,
      uploader: 'api',
      upload_date: d.createdAt,
      last_update_date: d.updatedAt,
      source: 'file_upload',
    };
  }

  private metadataValues(d: Doc): Record<string, unknown> {
    const ds = this.datasetsById.get(d.datasetId);
    return { ...structuredClone(d.metadata), ...(ds?.builtInFieldEnabled ? this.builtInValues(d) : {}) };
  }

  private docMetadataJson(d: Doc): Array<Record<string, unknown>> {
    const ds = this.datasetsById.get(d.datasetId);
    const out: Array<Record<string, unknown>> = [];
    for (const f of ds?.fields ?? []) {
      if (f.name in d.metadata) out.push({ id: f.id, name: f.name, type: f.type, value: d.metadata[f.name] });
    }
    if (ds?.builtInFieldEnabled) {
      for (const [name, value] of Object.entries(this.builtInValues(d))) {
        out.push({ id: 'built-in', name, type: name.endsWith('_date') ? 'time' : 'string', value });
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- JSON shapes

  private docJson(d: Doc, detail = false): Record<string, unknown> {
    const ds = this.datasetsById.get(d.datasetId);
    const status = this.indexingStatus(d);
    const words = this.wordCount(d);
    const completed = status === 'completed';
    const out: Record<string, unknown> = {
      id: d.id,
      position: d.position,
      data_source_type: 'upload_file',
      data_source_info: { upload_file_id: d.file.id },
      data_source_detail_dict: {
        upload_file: { id: d.file.id, name: d.file.name, size: d.content.length, extension: d.file.extension, mime_type: d.file.mimeType, created_by: d.tenantId, created_at: d.file.createdAt },
      },
      dataset_process_rule_id: ds?.processRuleId ?? null,
      name: d.name,
      created_from: 'api',
      created_by: d.tenantId,
      created_at: d.createdAt,
      tokens: completed ? Math.ceil(words / 4) : 0,
      indexing_status: status,
      error: status === 'error' ? d.error : null,
      enabled: d.enabled,
      disabled_at: d.disabledAt,
      disabled_by: d.enabled ? null : d.tenantId,
      archived: d.archived,
      display_status: this.displayStatus(d),
      word_count: words,
      hit_count: 0,
      doc_form: d.docForm,
      doc_metadata: this.docMetadataJson(d),
      summary_index_status: null,
      need_summary: false,
    };
    if (!detail) return out;
    const times = this.times(d);
    const segments = completed ? Math.max(1, Math.ceil(words / 500)) : 0;
    return {
      ...out,
      updated_at: d.updatedAt,
      completed_at: times.completedAt,
      indexing_latency: times.completedAt !== null && times.processingStartedAt !== null ? times.completedAt - times.processingStartedAt : null,
      segment_count: segments,
      average_segment_length: segments ? Math.round(words / segments) : 0,
      doc_type: null,
      doc_language: d.docLanguage,
      dataset_process_rule: ds?.processRule ? { mode: ds.processRule.mode ?? 'custom', rules: ds.processRule.rules ?? {} } : null,
      document_process_rule: d.processRule ? { id: ds?.processRuleId, dataset_id: d.datasetId, mode: d.processRule.mode ?? 'custom', rules: d.processRule.rules ?? {} } : null,
      archived_at: d.archivedAt,
    };
  }

  private datasetJson(ds: Dataset): Record<string, unknown> {
    const docs = [...this.docsById.values()].filter((d) => d.datasetId === ds.id);
    return {
      id: ds.id,
      name: ds.name,
      description: ds.description,
      provider: 'vendor',
      permission: 'only_me',
      data_source_type: 'upload_file',
      indexing_technique: ds.indexingTechnique,
      app_count: 0,
      document_count: docs.length,
      word_count: docs.reduce((n, d) => n + this.wordCount(d), 0),
      created_by: ds.tenantId,
      created_at: ds.createdAt,
      updated_by: ds.tenantId,
      updated_at: ds.updatedAt,
      embedding_model: ds.indexingTechnique === 'high_quality' ? 'text-embedding-3-small' : null,
      embedding_model_provider: ds.indexingTechnique === 'high_quality' ? 'langgenius/openai/openai' : null,
      embedding_available: true,
      retrieval_model_dict: { search_method: 'semantic_search', reranking_enable: false, top_k: 3, score_threshold_enabled: false },
      tags: [],
      doc_form: ds.docForm,
      chunk_structure: ds.docForm,
      external_knowledge_info: null,
      external_retrieval_model: null,
      doc_metadata: this.at('1.1.0') ? ds.fields.map((f) => ({ id: f.id, name: f.name, type: f.type })) : undefined,
      built_in_field_enabled: ds.builtInFieldEnabled,
      enable_api: ds.enableApi,
    };
  }

  // ---------------------------------------------------------------- envelopes

  private send(reply: FastifyReply, status: number, body: unknown) {
    return reply.code(status).header('content-type', 'application/json').send(JSON.stringify(body));
  }

  private error(reply: FastifyReply, e: DifyError) {
    const body: Record<string, unknown> = { code: e.code, message: e.message, status: e.status };
    if (e.params !== undefined) body.params = e.params;
    return this.send(reply, e.status, body);
  }

  protected faultAnswer(kind: FaultKind, fault: KbFault | undefined): FaultAnswer {
    const json = (status: number, code: string, message: string): FaultAnswer => ({
      status,
      contentType: 'application/json',
      body: JSON.stringify({ code, message: fault?.message ?? message, status }),
    });
    switch (kind) {
      case 'error':
        return json(500, 'internal_server_error', 'The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.');
      case 'rate_limited':
        return json(429, 'too_many_requests', 'Too many requests. Please try again later.');
      case 'cloud_rate_limit':
        return json(403, 'forbidden', 'Sorry, you have reached the knowledge base request rate limit of your subscription.');
      case 'custom':
        return {
          status: fault?.status ?? 500,
          contentType: typeof fault?.body === 'string' ? 'text/plain' : 'application/json',
          body: typeof fault?.body === 'string' ? fault.body : JSON.stringify(fault?.body ?? { code: 'internal_server_error', message: fault?.message ?? 'simulated', status: fault?.status ?? 500 }),
        };
      case 'bad_gateway':
        return nginxPage(502);
      default:
        return nginxPage(503);
    }
  }

  // ---------------------------------------------------------------- routing, auth

  private routeTable(): Array<{ re: RegExp; methods: string[] }> {
    const p = '/v1/datasets';
    const id = '[0-9a-fA-F-]{32,36}';
    const docMethods = ['GET', 'DELETE', ...(this.opts.patchFileUpdate ? ['PATCH'] : [])];
    return [
      { re: new RegExp(`^${p}$`), methods: ['GET', 'POST'] },
      { re: new RegExp(`^${p}/${id}$`), methods: ['GET', 'PATCH', 'DELETE'] },
      { re: new RegExp(`^${p}/${id}/document/(create-by-text|create_by_text|create-by-file|create_by_file)$`), methods: ['POST'] },
      { re: new RegExp(`^${p}/${id}/documents$`), methods: ['GET'] },
      { re: new RegExp(`^${p}/${id}/documents/${id}$`), methods: docMethods },
      { re: new RegExp(`^${p}/${id}/documents/${id}/(update-by-text|update_by_text|update-by-file|update_by_file)$`), methods: ['POST'] },
      { re: new RegExp(`^${p}/${id}/documents/[^/]+/indexing-status$`), methods: ['GET'] },
      { re: new RegExp(`^${p}/${id}/documents/status/(enable|disable|archive|un_archive)$`), methods: ['PATCH'] },
      ...(this.at('1.1.0')
        ? [
            { re: new RegExp(`^${p}/${id}/metadata$`), methods: ['GET', 'POST'] },
            { re: new RegExp(`^${p}/${id}/documents/metadata$`), methods: ['POST'] },
            { re: new RegExp(`^${p}/${id}/metadata/built-in/(enable|disable)$`), methods: ['POST'] },
          ]
        : []),
    ];
  }

  /** Werkzeug's 404 / 405 in Dify's envelope. */
  private unrouted(req: FastifyRequest, reply: FastifyReply) {
    const path = req.url.split('?')[0] ?? '';
    const match = this.routeTable().find((r) => r.re.test(path));
    if (match && !match.methods.includes(req.method)) {
      return this.error(reply, new DifyError(405, 'method_not_allowed', 'The method is not allowed for the requested URL.'));
    }
    return this.error(reply, new DifyError(404, 'not_found', 'The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.'));
  }

  /** validate_dataset_token: the key's tenant, and the dataset of the path when there is one. */
  private auth(req: FastifyRequest): { tenantId: string; ds?: Dataset } {
    const header = req.headers.authorization;
    if (header === undefined || !header.includes(' ')) {
      throw new DifyError(401, 'unauthorized', "Authorization header must be provided and start with 'Bearer'");
    }
    const i = header.indexOf(' ');
    if (header.slice(0, i).toLowerCase() !== 'bearer') throw new DifyError(401, 'unauthorized', "Authorization scheme must be 'Bearer'");
    const tenantId = this.keyOwner.get(header.slice(i + 1).trim());
    if (!tenantId) throw new DifyError(401, 'unauthorized', 'Access token is invalid');
    const dsId = (req.params as { dataset_id?: string }).dataset_id;
    if (dsId === undefined) return { tenantId };
    const ds = this.datasetsById.get(dsId);
    if (!ds || ds.tenantId !== tenantId) throw new DifyError(404, 'not_found', 'Dataset not found.');
    if (!ds.enableApi) throw new DifyError(403, 'forbidden', 'Dataset api access is not enabled.');
    return { tenantId, ds };
  }

  /** Cloud's per-tenant knowledge rate limit: a 403 with a message, not a 429 (§2.1). */
  private rateLimit(tenantId: string): void {
    const limit = this.opts.cloudRateLimitPerMinute;
    if (!limit) return;
    const now = this.now();
    const times = (this.writeTimes.get(tenantId) ?? []).filter((t) => t > now - 60_000);
    if (times.length >= limit) {
      this.writeTimes.set(tenantId, times);
      throw new DifyError(403, 'forbidden', 'Sorry, you have reached the knowledge base request rate limit of your subscription.');
    }
    times.push(now);
    this.writeTimes.set(tenantId, times);
  }

  private doc(ds: Dataset, id: string | undefined, message = 'Document not found.'): Doc {
    const d = id === undefined ? undefined : this.docsById.get(id);
    if (!d || d.datasetId !== ds.id) throw new DifyError(404, 'not_found', message);
    this.settle(d);
    return d;
  }

  private body(req: FastifyRequest): Record<string, unknown> {
    const b = req.body;
    return b && typeof b === 'object' && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
  }

  private allowedExtensions(): Set<string> {
    const base = 'txt markdown md mdx pdf html htm xlsx xls docx csv vtt properties'.split(' ');
    const extra = this.opts.etlType === 'Unstructured' ? 'doc eml msg pptx xml epub'.split(' ') : [];
    const blocked = new Set(this.opts.extensionBlacklist.map((e) => e.toLowerCase().replace(/^\./, '')));
    return new Set([...base, ...extra].filter((e) => !blocked.has(e)));
  }

  private checkFile(f: UploadedFile): void {
    if (!f.filename) throw new DifyError(400, 'filename_not_exists_error', 'The specified filename does not exist.');
    const limit = this.opts.uploadFileSizeLimitMb * 1024 * 1024;
    if (f.data.length > limit) throw new DifyError(413, 'file_too_large', `File size exceeded. ${(f.data.length / 1024 / 1024).toFixed(2)} MB > ${this.opts.uploadFileSizeLimitMb} MB`);
    if (!this.allowedExtensions().has(extOf(f.filename))) throw new DifyError(415, 'unsupported_file_type', 'File type not allowed.');
  }

  /** A handler that throws DifyError; the path's UUIDs are checked like werkzeug's uuid converter. */
  private handle(fn: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> | unknown, opts: { minVersion?: string; enabled?: () => boolean; uuidParams?: string[] } = {}) {
    return async (req: FastifyRequest, reply: FastifyReply) => {
      const params = req.params as Record<string, string>;
      if ((opts.minVersion && !this.at(opts.minVersion)) || (opts.enabled && !opts.enabled())) return this.unrouted(req, reply);
      for (const p of opts.uuidParams ?? ['dataset_id']) {
        if (params[p] !== undefined && !UUID_RE.test(params[p])) return this.unrouted(req, reply);
      }
      try {
        return await fn(req, reply);
      } catch (e) {
        if (e instanceof DifyError) return this.error(reply, e);
        throw e;
      }
    };
  }

  // ---------------------------------------------------------------- create and update

  private newDoc(ds: Dataset, tenantId: string, name: string, content: Buffer, ext: string, docForm: string, extra: { docLanguage?: string; processRule?: Record<string, unknown> | null }): Doc {
    const nowS = this.nowS();
    const d: Doc = {
      id: randomUUID(),
      datasetId: ds.id,
      tenantId,
      position: ds.nextPosition++,
      name,
      content,
      file: { id: randomUUID(), name, extension: ext, mimeType: MIME[ext] ?? 'application/octet-stream', createdAt: nowS },
      batch: newBatch(this.now()),
      docForm,
      docLanguage: extra.docLanguage ?? 'English',
      enabled: true,
      disabledAt: null,
      archived: false,
      archivedAt: null,
      createdAt: nowS,
      updatedAt: nowS,
      indexingStatus: 'waiting',
      error: null,
      times: { processingStartedAt: null, parsingCompletedAt: null, cleaningCompletedAt: null, splittingCompletedAt: null, completedAt: null, stoppedAt: null, pausedAt: null },
      metadata: {},
      metadataLocked: false,
      processRule: extra.processRule ?? ds.processRule,
    };
    this.docsById.set(d.id, d);
    this.startIndexing(d);
    return d;
  }

  /**
   * save_document_with_dataset_id: validates the knowledge-base settings, then either re-indexes
   * an enabled same-name document in place (the name upsert, §2.3) or creates a new one.
   */
  private create(
    ds: Dataset,
    tenantId: string,
    input: { name: string; content: Buffer; ext: string; args: Record<string, unknown>; docFormDefault: string; requireProcessRule: boolean; duplicate: boolean },
  ): { document: Record<string, unknown>; batch: string } {
    const a = input.args;
    const technique = a.indexing_technique;
    if (technique !== undefined && technique !== null && technique !== 'high_quality' && technique !== 'economy') {
      throw new DifyError(400, 'invalid_param', 'Invalid indexing technique.');
    }
    if (!ds.indexingTechnique && !technique) throw new DifyError(400, 'invalid_param', 'indexing_technique is required.');
    const docForm = typeof a.doc_form === 'string' ? a.doc_form : input.docFormDefault;
    if (!['text_model', 'hierarchical_model', 'qa_model'].includes(docForm)) throw new DifyError(400, 'invalid_param', 'Invalid doc_form.');
    if (ds.docForm && ds.docForm !== docForm) throw new DifyError(400, 'invalid_param', 'doc_form is different from the dataset doc_form.');
    const processRule = a.process_rule && typeof a.process_rule === 'object' ? (a.process_rule as Record<string, unknown>) : null;
    if (input.requireProcessRule && !ds.processRule && !processRule) throw new DifyError(400, 'invalid_param', 'process_rule is required.');
    this.rateLimit(tenantId);
    ds.indexingTechnique ??= technique as 'high_quality' | 'economy';
    ds.docForm ??= docForm;
    if (processRule) {
      ds.processRule = processRule;
      ds.processRuleId = randomUUID();
    } else if (!ds.processRule) {
      // create-by-text without a rule: Dify's automatic rule (the doc is silent; tolerant default).
      ds.processRule = { mode: 'automatic', rules: {} };
      ds.processRuleId = randomUUID();
    }
    ds.updatedAt = this.nowS();
    const docLanguage = typeof a.doc_language === 'string' ? a.doc_language : undefined;
    if (this.opts.nameUpsert && input.duplicate) {
      // Enabled, not archived, upload_file documents with exactly this name; `.first()` = the oldest here.
      const same = [...this.docsById.values()]
        .filter((d) => d.datasetId === ds.id && d.enabled && !d.archived && d.name === input.name)
        .sort((x, y) => x.position - y.position)[0];
      if (same) {
        // Points the existing document at the new upload, new batch, re-indexed whatever its state.
        same.content = input.content;
        same.file = { id: randomUUID(), name: input.name, extension: input.ext, mimeType: MIME[input.ext] ?? 'application/octet-stream', createdAt: this.nowS() };
        same.batch = newBatch(this.now());
        same.docForm = docForm;
        if (docLanguage) same.docLanguage = docLanguage;
        if (processRule) same.processRule = processRule;
        same.updatedAt = this.nowS();
        this.startIndexing(same);
        this.recordWrite('upsert', same);
        return { document: this.docJson(same), batch: same.batch };
      }
    }
    const d = this.newDoc(ds, tenantId, input.name, input.content, input.ext, docForm, { docLanguage, processRule });
    this.recordWrite('create', d);
    return { document: this.docJson(d), batch: d.batch };
  }

  /** update_document_with_dataset_id: only an `available` document; re-indexed, batch unchanged. */
  private update(ds: Dataset, tenantId: string, d: Doc, input: { name?: string; content?: Buffer; ext?: string; args: Record<string, unknown> }) {
    if (this.displayStatus(d) !== 'available') throw new DifyError(400, 'invalid_param', 'Document is not available');
    const docForm = typeof input.args.doc_form === 'string' ? input.args.doc_form : undefined;
    if (docForm && ds.docForm && docForm !== ds.docForm) throw new DifyError(400, 'invalid_param', 'doc_form is different from the dataset doc_form.');
    this.rateLimit(tenantId);
    if (input.content !== undefined) {
      d.content = input.content;
      const ext = input.ext ?? d.file.extension;
      d.file = { id: randomUUID(), name: input.name ?? d.name, extension: ext, mimeType: MIME[ext] ?? 'application/octet-stream', createdAt: this.nowS() };
    }
    if (input.name !== undefined) d.name = input.name;
    if (input.args.process_rule && typeof input.args.process_rule === 'object') d.processRule = input.args.process_rule as Record<string, unknown>;
    if (typeof input.args.doc_language === 'string') d.docLanguage = input.args.doc_language;
    d.updatedAt = this.nowS();
    this.startIndexing(d);
    this.recordWrite(input.content !== undefined ? 'update-content' : 'rename', d);
    return { document: this.docJson(d), batch: d.batch };
  }

  private parseData(raw: string[] | undefined): Record<string, unknown> {
    const text = raw?.[0];
    if (text === undefined || text === '') return {};
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new DifyError(400, 'invalid_param', (e as Error).message);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new DifyError(400, 'invalid_param', 'data must be a JSON object.');
    return v as Record<string, unknown>;
  }

  private async fileForm(req: FastifyRequest, required: boolean): Promise<{ file?: UploadedFile; args: Record<string, unknown> }> {
    if (!req.isMultipart()) {
      if (required) throw new DifyError(400, 'no_file_uploaded', 'Please upload your file.');
      return { args: {} };
    }
    const form = await readMultipart(req);
    const args = this.parseData(form.fields.data);
    if (form.files.length > 1) throw new DifyError(400, 'too_many_files', 'Only one file is allowed.');
    const file = form.files.find((f) => f.field === 'file');
    if (!file) {
      if (required) throw new DifyError(400, 'no_file_uploaded', 'Please upload your file.');
      return { args };
    }
    return { file, args };
  }

  // ---------------------------------------------------------------- routes

  private registerRoutes(): void {
    const app = this.app;
    const P = '/v1/datasets';

    app.setNotFoundHandler((req, reply) => this.unrouted(req, reply));
    app.setErrorHandler((err: Error & { kbBadJson?: boolean; statusCode?: number }, _req, reply) => {
      if (err.kbBadJson) return this.error(reply, new DifyError(400, 'bad_request', 'Invalid JSON payload received or JSON payload is empty.'));
      if (err.statusCode === 413) return this.error(reply, new DifyError(413, 'file_too_large', 'File size exceeded.'));
      return this.error(reply, new DifyError(500, 'internal_server_error', 'The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.'));
    });

    const intArg = (q: Q, name: string, dflt: number): number => {
      const raw = first(q[name]);
      if (raw === undefined || raw === '') return dflt;
      const n = Number(raw);
      if (!Number.isInteger(n)) throw new DifyError(400, 'invalid_param', `invalid literal for int() with base 10: '${raw}'`, name);
      return n;
    };

    /** Dify's paging: `limit` capped at 100 while `has_more` compares with the requested limit (§2.2). */
    const paged = <T>(items: T[], q: Q) => {
      const page = Math.max(1, intArg(q, 'page', 1));
      const limit = intArg(q, 'limit', 20);
      const perPage = Math.min(Math.max(1, limit), 100);
      const data = items.slice((page - 1) * perPage, page * perPage);
      return { data, has_more: data.length === limit, limit, total: items.length, page };
    };

    // ------------------------------------------------ knowledge bases

    app.get(P, named('datasets.list'), this.handle(async (req, reply) => {
      const { tenantId } = this.auth(req);
      const q = req.query as Q;
      let list = [...this.datasetsById.values()].filter((d) => d.tenantId === tenantId);
      const keyword = first(q.keyword);
      if (keyword) {
        const re = likeMatcher(keyword, true);
        list = list.filter((d) => re.test(d.name));
      }
      list.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
      const page = paged(list, q);
      return this.send(reply, 200, { ...page, data: page.data.map((d) => this.datasetJson(d)) });
    }));

    app.get(`${P}/:dataset_id`, named('datasets.get'), this.handle(async (req, reply) => {
      const { ds } = this.auth(req);
      return this.send(reply, 200, this.datasetJson(ds as Dataset));
    }));

    // ------------------------------------------------ create

    const createByText = this.handle(async (req, reply) => {
      const { tenantId, ds } = this.auth(req);
      const b = this.body(req);
      if (typeof b.name !== 'string' || b.name === '') throw new DifyError(400, 'invalid_param', 'Missing required parameter in the JSON body or the post body or the query string', 'name');
      if (typeof b.text !== 'string') throw new DifyError(400, 'invalid_param', 'Missing required parameter in the JSON body or the post body or the query string', 'text');
      const name = truncate(b.name, 200);
      if (typeof b.original_document_id === 'string' && b.original_document_id) {
        // original_document_id turns the create into an update of that document.
        const d = this.doc(ds as Dataset, b.original_document_id);
        return this.send(reply, 200, this.update(ds as Dataset, tenantId, d, { name, content: Buffer.from(b.text, 'utf8'), ext: 'txt', args: b }));
      }
      // The text is stored as a .txt upload named `name[:200]`; the `duplicate` flag is not exposed here.
      const out = this.create(ds as Dataset, tenantId, {
        name,
        content: Buffer.from(b.text, 'utf8'),
        ext: 'txt',
        args: b,
        docFormDefault: 'text_model',
        requireProcessRule: false,
        duplicate: true,
      });
      return this.send(reply, 200, out);
    });
    app.post(`${P}/:dataset_id/document/create-by-text`, named('documents.createByText'), createByText);
    app.post(`${P}/:dataset_id/document/create_by_text`, named('documents.createByText'), createByText);

    const createByFile = this.handle(async (req, reply) => {
      const { tenantId, ds } = this.auth(req);
      const { file, args } = await this.fileForm(req, true);
      if (!(ds as Dataset).indexingTechnique && !args.indexing_technique) throw new DifyError(400, 'invalid_param', 'indexing_technique is required.');
      const f = file as UploadedFile;
      this.checkFile(f);
      const out = this.create(ds as Dataset, tenantId, {
        name: f.filename,
        content: f.data,
        ext: extOf(f.filename),
        args,
        docFormDefault: (ds as Dataset).docForm ?? 'text_model',
        requireProcessRule: true,
        // Whether `"duplicate": false` in `data` is honoured is unconfirmed (§5): KnowledgeConfig
        // carries the field and this route builds it from `data`, so the fake honours it.
        duplicate: args.duplicate !== false,
      });
      return this.send(reply, 200, out);
    });
    app.post(`${P}/:dataset_id/document/create-by-file`, named('documents.createByFile'), createByFile);
    app.post(`${P}/:dataset_id/document/create_by_file`, named('documents.createByFile'), createByFile);

    // ------------------------------------------------ update

    const docParams = ['dataset_id', 'document_id'];
    const updateByText = this.handle(async (req, reply) => {
      const { tenantId, ds } = this.auth(req);
      const d = this.doc(ds as Dataset, (req.params as { document_id: string }).document_id);
      const b = this.body(req);
      if (typeof b.text === 'string' && (typeof b.name !== 'string' || b.name === '')) {
        throw new DifyError(400, 'invalid_param', 'name is required when text is provided.', 'name');
      }
      const input: { name?: string; content?: Buffer; ext?: string; args: Record<string, unknown> } = { args: b };
      if (typeof b.name === 'string' && b.name !== '') input.name = truncate(b.name, 200);
      if (typeof b.text === 'string') {
        input.content = Buffer.from(b.text, 'utf8');
        input.ext = 'txt';
      }
      return this.send(reply, 200, this.update(ds as Dataset, tenantId, d, input));
    }, { uuidParams: docParams });
    app.post(`${P}/:dataset_id/documents/:document_id/update-by-text`, named('documents.updateByText'), updateByText);
    app.post(`${P}/:dataset_id/documents/:document_id/update_by_text`, named('documents.updateByText'), updateByText);

    const updateByFile = async (req: FastifyRequest, reply: FastifyReply) => {
      const { tenantId, ds } = this.auth(req);
      const d = this.doc(ds as Dataset, (req.params as { document_id: string }).document_id);
      const { file, args } = await this.fileForm(req, false);
      if (file) this.checkFile(file);
      const out = this.update(ds as Dataset, tenantId, d, file ? { name: file.filename, content: file.data, ext: extOf(file.filename), args } : { args });
      return this.send(reply, 200, out);
    };
    app.post(`${P}/:dataset_id/documents/:document_id/update-by-file`, named('documents.updateByFile'), this.handle(updateByFile, { uuidParams: docParams }));
    app.post(`${P}/:dataset_id/documents/:document_id/update_by_file`, named('documents.updateByFile'), this.handle(updateByFile, { uuidParams: docParams }));
    app.patch(`${P}/:dataset_id/documents/:document_id`, named('documents.patch'), this.handle(updateByFile, { uuidParams: docParams, enabled: () => this.opts.patchFileUpdate }));

    // ------------------------------------------------ delete, list, get, indexing status

    app.delete(`${P}/:dataset_id/documents/:document_id`, named('documents.delete'), this.handle(async (req, reply) => {
      const { tenantId, ds } = this.auth(req);
      const d = this.doc(ds as Dataset, (req.params as { document_id: string }).document_id, 'Document Not Exists.');
      if (d.archived) throw new DifyError(403, 'archived_document_immutable', 'The archived document is not editable.');
      if (this.opts.deleteWhileIndexing === 'active' && ACTIVE.includes(this.indexingStatus(d))) {
        throw new DifyError(400, 'document_indexing', 'Cannot delete document during indexing.');
      }
      this.rateLimit(tenantId);
      this.docsById.delete(d.id);
      this.recordWrite('delete', d);
      if (this.opts.deleteAnswer === 'result') return this.send(reply, 200, { result: 'success' });
      if (this.opts.deleteAnswer === 'body-204') return this.send(reply, 200, 204);
      return reply.code(204).send();
    }, { uuidParams: docParams }));

    app.get(`${P}/:dataset_id/documents`, named('documents.list'), this.handle(async (req, reply) => {
      const { ds } = this.auth(req);
      const q = req.query as Q;
      let docs = [...this.docsById.values()].filter((d) => d.datasetId === (ds as Dataset).id);
      const keyword = first(q.keyword);
      if (keyword) {
        const re = likeMatcher(keyword, this.opts.keywordCaseInsensitive);
        docs = docs.filter((d) => re.test(d.name));
      }
      const status = first(q.status);
      // Unknown status values filter nothing (tolerant; the doc lists the known ones).
      if (status && ['queuing', 'indexing', 'paused', 'error', 'available', 'disabled', 'archived'].includes(status)) {
        docs = docs.filter((d) => this.displayStatus(d) === status);
      }
      docs.sort((a, b) => b.createdAt - a.createdAt || b.position - a.position);
      const page = paged(docs, q);
      return this.send(reply, 200, { ...page, data: page.data.map((d) => this.docJson(d)) });
    }));

    app.get(`${P}/:dataset_id/documents/:document_id`, named('documents.get'), this.handle(async (req, reply) => {
      const { ds } = this.auth(req);
      const d = this.doc(ds as Dataset, (req.params as { document_id: string }).document_id);
      const mode = first((req.query as Q).metadata) ?? 'all';
      if (!['all', 'only', 'without'].includes(mode)) throw new DifyError(400, 'invalid_param', `Invalid metadata value: ${mode}`);
      const full = this.docJson(d, true);
      if (mode === 'only') return this.send(reply, 200, { id: d.id, doc_type: full.doc_type, doc_metadata: full.doc_metadata });
      if (mode === 'without') {
        delete full.doc_type;
        delete full.doc_metadata;
      }
      return this.send(reply, 200, full);
    }, { uuidParams: docParams }));

    app.get(`${P}/:dataset_id/documents/:batch/indexing-status`, named('documents.indexingStatus'), this.handle(async (req, reply) => {
      const { ds } = this.auth(req);
      const batch = (req.params as { batch: string }).batch;
      const docs = [...this.docsById.values()].filter((d) => d.datasetId === (ds as Dataset).id && d.batch === batch);
      if (docs.length === 0) throw new DifyError(404, 'not_found', 'Documents not found.');
      const data = docs.map((d) => {
        const t = this.times(d);
        const status = this.indexingStatus(d);
        const total = Math.max(1, Math.ceil(this.wordCount(d) / 500));
        return {
          id: d.id,
          indexing_status: status,
          processing_started_at: t.processingStartedAt,
          parsing_completed_at: t.parsingCompletedAt,
          cleaning_completed_at: t.cleaningCompletedAt,
          splitting_completed_at: t.splittingCompletedAt,
          completed_at: t.completedAt,
          paused_at: t.pausedAt,
          error: status === 'error' ? d.error : null,
          stopped_at: t.stoppedAt,
          completed_segments: status === 'completed' ? total : 0,
          total_segments: t.splittingCompletedAt !== null || status === 'completed' ? total : 0,
        };
      });
      return this.send(reply, 200, { data });
    }));

    // ------------------------------------------------ enable / disable / archive

    app.patch(`${P}/:dataset_id/documents/status/:action`, named('documents.status'), this.handle(async (req, reply) => {
      const action = (req.params as { action: string }).action;
      if (!['enable', 'disable', 'archive', 'un_archive'].includes(action)) return this.unrouted(req, reply);
      const { tenantId, ds } = this.auth(req);
      const ids = this.body(req).document_ids;
      if (!Array.isArray(ids)) throw new DifyError(400, 'invalid_param', 'Missing required parameter in the JSON body or the post body or the query string', 'document_ids');
      // Unknown ids are skipped (the batch loop continues); same-state documents are no-ops.
      const docs = ids.map((id) => this.docsById.get(String(id))).filter((d): d is Doc => d !== undefined && d.datasetId === (ds as Dataset).id);
      for (const d of docs) {
        this.settle(d);
        if (action === 'disable' && d.enabled && this.indexingStatus(d) !== 'completed') {
          throw new DifyError(400, 'invalid_action', `Document: ${d.name} is not completed.`);
        }
      }
      this.rateLimit(tenantId);
      const nowS = this.nowS();
      for (const d of docs) {
        if (action === 'enable' && !d.enabled) {
          d.enabled = true;
          d.disabledAt = null;
        } else if (action === 'disable' && d.enabled) {
          d.enabled = false;
          d.disabledAt = nowS;
        } else if (action === 'archive' && !d.archived) {
          d.archived = true;
          d.archivedAt = nowS;
        } else if (action === 'un_archive' && d.archived) {
          d.archived = false;
          d.archivedAt = null;
        } else continue;
        d.updatedAt = nowS;
        this.recordWrite(action as 'enable' | 'disable' | 'archive' | 'un_archive', d);
      }
      return this.send(reply, 200, { result: 'success' });
    }));

    // ------------------------------------------------ metadata (1.1.0+)

    const meta = { minVersion: '1.1.0' };
    app.post(`${P}/:dataset_id/metadata`, named('metadata.create'), this.handle(async (req, reply) => {
      const { ds } = this.auth(req);
      const b = this.body(req);
      const type = b.type;
      const name = b.name;
      if (type !== 'string' && type !== 'number' && type !== 'time') throw new DifyError(400, 'invalid_param', 'Invalid metadata type.', 'type');
      if (typeof name !== 'string' || name === '') throw new DifyError(400, 'invalid_param', 'Missing required parameter in the JSON body or the post body or the query string', 'name');
      if (name.length > 255) throw new DifyError(400, 'invalid_param', 'Metadata name cannot exceed 255 characters.');
      if ((BUILT_IN as readonly string[]).includes(name)) throw new DifyError(400, 'invalid_param', 'Metadata name already exists in Built-in fields.');
      const d = ds as Dataset;
      if (d.fields.some((f) => f.name === name)) throw new DifyError(400, 'invalid_param', 'Metadata name already exists.');
      const field: MetaField = { id: randomUUID(), name, type };
      d.fields.push(field);
      return this.send(reply, 201, field);
    }, meta));

    app.get(`${P}/:dataset_id/metadata`, named('metadata.list'), this.handle(async (req, reply) => {
      const { ds } = this.auth(req);
      const d = ds as Dataset;
      const docs = [...this.docsById.values()].filter((x) => x.datasetId === d.id);
      return this.send(reply, 200, {
        doc_metadata: d.fields.map((f) => ({ ...f, count: docs.filter((x) => f.name in x.metadata).length })),
        built_in_field_enabled: d.builtInFieldEnabled,
      });
    }, meta));

    app.post(`${P}/:dataset_id/metadata/built-in/:action`, named('metadata.builtIn'), this.handle(async (req, reply) => {
      const action = (req.params as { action: string }).action;
      if (action !== 'enable' && action !== 'disable') return this.unrouted(req, reply);
      const { ds } = this.auth(req);
      (ds as Dataset).builtInFieldEnabled = action === 'enable';
      return this.send(reply, 200, { result: 'success' });
    }, meta));

    app.post(`${P}/:dataset_id/documents/metadata`, named('metadata.set'), this.handle(async (req, reply) => {
      const { tenantId, ds } = this.auth(req);
      const ops = this.body(req).operation_data;
      if (!Array.isArray(ops)) throw new DifyError(400, 'invalid_param', 'Missing required parameter in the JSON body or the post body or the query string', 'operation_data');
      type Op = { document_id?: string; metadata_list?: Array<{ id?: string; name?: string; value?: unknown }>; partial_update?: boolean };
      const plan: Array<{ d: Doc; op: Op }> = [];
      for (const op of ops as Op[]) {
        const d = op?.document_id ? this.docsById.get(op.document_id) : undefined;
        if (!d || d.datasetId !== (ds as Dataset).id) throw new DifyError(400, 'invalid_param', 'Document not found.');
        if (d.metadataLocked) throw new DifyError(400, 'invalid_param', 'Another document metadata operation is running, please wait a moment.');
        if (!Array.isArray(op.metadata_list)) throw new DifyError(400, 'invalid_param', 'metadata_list is required.');
        plan.push({ d, op });
      }
      this.rateLimit(tenantId);
      for (const { d, op } of plan) {
        // Values are keyed by field name; partial_update false replaces the whole set (built-in
        // fields come back on their own when enabled, see metadataValues()).
        const next: Record<string, unknown> = op.partial_update ? { ...d.metadata } : {};
        for (const m of op.metadata_list ?? []) {
          if (typeof m?.name === 'string' && !(BUILT_IN as readonly string[]).includes(m.name)) next[m.name] = m.value ?? null;
        }
        d.metadata = next;
        d.updatedAt = this.nowS();
        this.recordWrite('metadata', d);
      }
      return this.send(reply, 200, { result: 'success' });
    }, meta));
  }
}

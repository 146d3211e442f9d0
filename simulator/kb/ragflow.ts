import { createHash, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  type FaultAnswer,
  type FaultKind,
  type Job,
  type KbBaseOptions,
  type KbFault,
  KbFakeBase,
  extOf,
  jobFinished,
  jobFraction,
  named,
  nginxPage,
  readMultipart,
  uuid1Hex,
  versionAtLeast,
} from './common.js';

/**
 * A RAGFlow stand-in (HTTP API `/api/v1`, tags v0.13.0 … v0.27.0), written from
 * ../shared/kb/ragflow-dify.md §1, §3 "RAGFlow fake", §4 and §5. Application errors are HTTP 200
 * with a non-zero `code`; only the v0.25+ auth answers a real 401.
 *
 * Routes (names for count(), injectFault(), setLatency()):
 *   datasets.list      GET    /api/v1/datasets
 *   datasets.create    POST   /api/v1/datasets
 *   datasets.get       GET    /api/v1/datasets/{id}                         (v0.26+)
 *   documents.upload   POST   /api/v1/datasets/{id}/documents               (multipart `file`, repeatable)
 *   documents.list     GET    /api/v1/datasets/{id}/documents
 *   documents.delete   DELETE /api/v1/datasets/{id}/documents               (JSON {ids} / {delete_all})
 *   documents.update   PUT|PATCH /api/v1/datasets/{id}/documents/{doc}      (PUT ≤0.24 and ≥0.25.2, PATCH ≥0.25)
 *   documents.download GET    /api/v1/datasets/{id}/documents/{doc}
 *   chunks.parse       POST   /api/v1/datasets/{id}/chunks                  {document_ids}
 *   chunks.stop        DELETE /api/v1/datasets/{id}/chunks                  {document_ids}
 *   documents.parse    POST   /api/v1/datasets/{id}/documents/parse         (v0.26+ alias)
 *   documents.stop     POST   /api/v1/datasets/{id}/documents/stop          (v0.26+ alias)
 *   metadata.update    POST   /api/v1/datasets/{id}/metadata/update         (v0.23+)
 *   metadata.summary   GET    /api/v1/datasets/{id}/metadata/summary        (v0.23+)
 */

export const RAGFLOW_VERSIONS = [
  '0.13.0', '0.14.0', '0.15.0', '0.16.0', '0.17.0', '0.18.0', '0.19.0', '0.20.0', '0.21.0', '0.22.0',
  '0.23.0', '0.24.0', '0.25.0', '0.25.1', '0.25.2', '0.26.0', '0.27.0',
] as const;

/** RetCode (common/constants.py). */
export const RetCode = {
  SUCCESS: 0,
  NOT_EFFECTIVE: 10,
  EXCEPTION_ERROR: 100,
  ARGUMENT_ERROR: 101,
  DATA_ERROR: 102,
  OPERATING_ERROR: 103,
  CONNECTION_ERROR: 105,
  RUNNING: 106,
  PERMISSION_ERROR: 108,
  AUTHENTICATION_ERROR: 109,
  SERVER_ERROR: 500,
} as const;

export type RunText = 'UNSTART' | 'RUNNING' | 'CANCEL' | 'DONE' | 'FAIL';
const RUN_TEXT: RunText[] = ['UNSTART', 'RUNNING', 'CANCEL', 'DONE', 'FAIL'];

export const CHUNK_METHODS = [
  'naive', 'manual', 'qa', 'table', 'paper', 'book', 'laws', 'presentation', 'picture', 'one', 'knowledge_graph', 'email', 'audio', 'tag',
] as const;

/** Accepted extensions (api/utils/file_utils.py `filename_type`): pdf, "doc" types, audio, visual. */
const DOC_TYPES = new Set(
  'msg eml doc docx ppt pptx yml xml htm json jsonl ldjson csv txt ini xls xlsx wps rtf hlp pages numbers key md mdx py js java c cpp h php go ts sh cs kt html sql epub'.split(' '),
);
const AURAL_TYPES = new Set('wav flac ape alac wavpack wv mp3 aac ogg vorbis opus'.split(' '));
const VISUAL_TYPES = new Set('jpg jpeg png tif gif pcx tga exif fpx svg psd cdr pcd dxf ufo eps ai raw wmf webp avif apng icon ico mpg mpeg avi rm rmvb mov wmv asf dat asx wvx mpe mpa mp4'.split(' '));

/** List-value separators split in v0.24+ (doc_metadata_service). */
const META_SPLIT = /[,，;；|、]/;

export interface RagflowOptions extends KbBaseOptions {
  /** The RAGFlow tag to reproduce (default '0.27.0'); route tables and semantics follow §1.6. */
  version?: string;
  /**
   * Time a parse takes from RUNNING to DONE/FAIL on the fake's clock (default 100 ms). Progress
   * grows linearly; the document row is settled when read (no background sync lag: the sync
   * interval is unconfirmed, §5).
   */
  parseMs?: number;
  /**
   * Exact-name matching (duplicate renaming, the `name` filter, rename clashes). Unconfirmed (§5:
   * MySQL collation); default 'ci' because RAGFlow's MySQL runs a case-insensitive utf8mb4
   * collation, which is the realistic case a client must survive.
   */
  nameMatching?: 'ci' | 'cs';
  /**
   * HTTP status of the page_size>100 / ids>100 error (code 100 in the body). Unconfirmed (§5: the
   * code answers 200, #19414 reports 500); default 200.
   */
  pageSizeErrorHttpStatus?: number;
  /** MAX_CONTENT_LENGTH (default 128 MiB ≤ v0.17, 1 GiB after); above it nginx's 413 page. */
  maxContentLength?: number;
  /** MAX_FILE_NUM_PER_USER (0 = unlimited, the default). */
  maxFilesPerTenant?: number;
}

interface Tenant {
  id: string;
  keys: Set<string>;
}

interface Dataset {
  id: string;
  tenantId: string;
  name: string;
  description: string | null;
  chunkMethod: string;
  parserConfig: Record<string, unknown>;
  embeddingModel: string;
  permission: string;
  pipelineId: string | null;
  createTime: number;
  updateTime: number;
}

interface Doc {
  id: string;
  datasetId: string;
  tenantId: string;
  name: string;
  location: string;
  content: Buffer;
  suffix: string;
  type: string;
  chunkMethod: string;
  parserConfig: Record<string, unknown>;
  pipelineId: string | null;
  metaFields: Record<string, unknown>;
  enabled: boolean;
  run: number;
  progress: number;
  progressMsg: string;
  processBeginAt: number | null;
  processDuration: number;
  chunkCount: number;
  tokenCount: number;
  createTime: number;
  updateTime: number;
  job?: Job;
}

/** What a test sees of a stored document. */
export interface RagflowDocView {
  id: string;
  datasetId: string;
  name: string;
  content: Buffer;
  size: number;
  /** `meta_fields`. */
  metadata: Record<string, unknown>;
  /** The `run` state (after settling the parse model at the fake's `now()`). */
  status: RunText;
  progress: number;
  progressMsg: string;
  enabled: boolean;
  chunkMethod: string;
  chunkCount: number;
  createTime: number;
  updateTime: number;
}

type AuthStyle = 'token_required' | 'login_required';
type Q = Record<string, string | string[] | undefined>;

const DEFAULT_PARSER_CONFIG = {
  chunk_token_num: 512,
  delimiter: '\n',
  html4excel: false,
  layout_recognize: 'DeepDOC',
  raptor: { use_raptor: false },
};

/** Python's repr of a list of strings, as in "Documents not found: ['a', 'b']". */
const pyList = (items: string[]) => `[${items.map((s) => `'${s}'`).join(', ')}]`;
const httpDate = (ms: number) => new Date(ms).toUTCString();
const bytesOf = (s: string) => Buffer.byteLength(s, 'utf8');
const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
const many = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export class RagflowFake extends KbFakeBase {
  readonly version: string;
  private readonly opts: Required<Pick<RagflowOptions, 'parseMs' | 'nameMatching' | 'pageSizeErrorHttpStatus' | 'maxContentLength' | 'maxFilesPerTenant'>>;
  private readonly tenants = new Map<string, Tenant>();
  private readonly keyOwner = new Map<string, string>();
  private readonly datasetsById = new Map<string, Dataset>();
  private readonly docsById = new Map<string, Doc>();
  private lastTime = 0;

  constructor(options: RagflowOptions = {}) {
    super(options);
    const version = (options.version ?? '0.27.0').replace(/^v/, '');
    if (!versionAtLeast(version, '0.13.0') || versionAtLeast(version, '0.28.0')) {
      throw new Error(`RagflowFake: version ${version} is outside the documented range v0.13.0 … v0.27.x`);
    }
    this.version = version;
    this.opts = {
      parseMs: options.parseMs ?? 100,
      nameMatching: options.nameMatching ?? 'ci',
      pageSizeErrorHttpStatus: options.pageSizeErrorHttpStatus ?? 200,
      maxContentLength: options.maxContentLength ?? (this.at('0.18.0') ? 1024 ** 3 : 128 * 1024 ** 2),
      maxFilesPerTenant: options.maxFilesPerTenant ?? 0,
    };
    this.registerRoutes();
  }

  /** version >= v */
  at(v: string): boolean {
    return versionAtLeast(this.version, v);
  }

  /** Changes parse timing or list/limit behaviour of a running fake. */
  setOptions(patch: Partial<RagflowFake['opts']>): void {
    Object.assign(this.opts, patch);
  }

  // ---------------------------------------------------------------- owners, keys, datasets (test hooks)

  /** A RAGFlow account (tenant) with one API key `ragflow-…`. */
  addOwner(opts: { id?: string; apiKey?: string } = {}): { tenantId: string; apiKey: string } {
    const id = opts.id ?? uuid1Hex();
    if (!this.tenants.has(id)) this.tenants.set(id, { id, keys: new Set() });
    const apiKey = this.addApiKey(id, opts.apiKey);
    return { tenantId: id, apiKey };
  }

  addApiKey(tenantId: string, key = `ragflow-${randomBytes(24).toString('base64url').slice(0, 32)}`): string {
    const t = this.tenants.get(tenantId);
    if (!t) throw new Error(`RagflowFake: unknown tenant ${tenantId}`);
    t.keys.add(key);
    this.keyOwner.set(key, tenantId);
    return key;
  }

  revokeApiKey(key: string): void {
    const owner = this.keyOwner.get(key);
    if (owner) this.tenants.get(owner)?.keys.delete(key);
    this.keyOwner.delete(key);
  }

  /** Creates a dataset directly (owner: tenant id or one of its API keys). */
  addDataset(owner: string, opts: { name: string; chunkMethod?: string; pipelineId?: string }): { id: string; name: string } {
    const tenantId = this.keyOwner.get(owner) ?? owner;
    if (!this.tenants.has(tenantId)) throw new Error(`RagflowFake: unknown owner ${owner}`);
    const ds = this.newDataset(tenantId, { name: opts.name, chunk_method: opts.chunkMethod });
    ds.pipelineId = opts.pipelineId ?? null;
    return { id: ds.id, name: ds.name };
  }

  datasets(): Array<{ id: string; name: string; tenantId: string; documentCount: number }> {
    return [...this.datasetsById.values()].map((d) => ({ id: d.id, name: d.name, tenantId: d.tenantId, documentCount: this.docsOf(d.id).length }));
  }

  // ---------------------------------------------------------------- inspection

  documents(datasetId?: string): RagflowDocView[] {
    return [...this.docsById.values()].filter((d) => datasetId === undefined || d.datasetId === datasetId).map((d) => this.view(d));
  }

  document(id: string): RagflowDocView | undefined {
    const d = this.docsById.get(id);
    return d ? this.view(d) : undefined;
  }

  /** Documents whose name and/or meta_fields match (values compared as strings). */
  findDocuments(q: { datasetId?: string; name?: string; metadata?: Record<string, unknown> }): RagflowDocView[] {
    return this.documents(q.datasetId).filter(
      (d) =>
        (q.name === undefined || d.name === q.name) &&
        Object.entries(q.metadata ?? {}).every(([k, v]) => String(d.metadata[k]) === String(v)),
    );
  }

  /** Ends a document's current parse now (DONE, or FAIL with `fail`), whatever its rule said. */
  finishParse(id: string, result: 'done' | 'fail' = 'done'): void {
    const d = this.docsById.get(id);
    if (!d || !d.job) return;
    d.job = { ...d.job, outcome: result, durationMs: 0 };
    this.settle(d);
  }

  private view(d: Doc): RagflowDocView {
    this.settle(d);
    return {
      id: d.id,
      datasetId: d.datasetId,
      name: d.name,
      content: Buffer.from(d.content),
      size: d.content.length,
      metadata: structuredClone(d.metaFields),
      status: RUN_TEXT[d.run] as RunText,
      progress: d.progress,
      progressMsg: d.progressMsg,
      enabled: d.enabled,
      chunkMethod: d.chunkMethod,
      chunkCount: d.chunkCount,
      createTime: d.createTime,
      updateTime: d.updateTime,
    };
  }

  // ---------------------------------------------------------------- model

  /** Strictly increasing ms timestamps, so create_time ordering is stable within one millisecond. */
  private stamp(): number {
    this.lastTime = Math.max(this.lastTime + 1, Math.floor(this.now()));
    return this.lastTime;
  }

  private newDataset(tenantId: string, body: Record<string, unknown>): Dataset {
    const t = this.stamp();
    const ds: Dataset = {
      id: uuid1Hex(),
      tenantId,
      name: String(body.name),
      description: typeof body.description === 'string' ? body.description : null,
      chunkMethod: typeof body.chunk_method === 'string' ? body.chunk_method : 'naive',
      parserConfig: (body.parser_config as Record<string, unknown> | undefined) ?? { ...DEFAULT_PARSER_CONFIG },
      embeddingModel: typeof body.embedding_model === 'string' ? body.embedding_model : 'BAAI/bge-large-zh-v1.5@BAAI',
      permission: typeof body.permission === 'string' ? body.permission : 'me',
      pipelineId: typeof body.pipeline_id === 'string' ? body.pipeline_id : null,
      createTime: t,
      updateTime: t,
    };
    this.datasetsById.set(ds.id, ds);
    return ds;
  }

  private docsOf(datasetId: string): Doc[] {
    return [...this.docsById.values()].filter((d) => d.datasetId === datasetId);
  }

  private sameName(a: string, b: string): boolean {
    return this.opts.nameMatching === 'ci' ? a.toLowerCase() === b.toLowerCase() : a === b;
  }

  private nameTaken(datasetId: string, name: string, exceptId?: string): boolean {
    return this.docsOf(datasetId).some((d) => d.id !== exceptId && this.sameName(d.name, name));
  }

  /** `duplicate_name`: stem(1).ext, (2), …; an existing "(n)" suffix is counted up. */
  private uniqueName(datasetId: string, name: string): string {
    let candidate = name;
    for (let tries = 0; tries < 1000; tries += 1) {
      if (!this.nameTaken(datasetId, candidate)) return candidate;
      const dot = candidate.lastIndexOf('.');
      const ext = dot > 0 ? candidate.slice(dot) : '';
      let stem = ext ? candidate.slice(0, -ext.length) : candidate;
      const m = /\((\d+)\)$/.exec(stem);
      let n = 0;
      if (m) {
        n = Number(m[1]);
        stem = stem.slice(0, -m[0].length);
      }
      candidate = `${stem}(${n + 1})${ext}`;
    }
    throw new Error('Failed to generate a unique file name after 1000 attempts.');
  }

  private fileType(ext: string): string | undefined {
    if (ext === 'pdf') return 'pdf';
    if (DOC_TYPES.has(ext)) return 'doc';
    if (AURAL_TYPES.has(ext)) return 'aural';
    if (VISUAL_TYPES.has(ext)) return 'visual';
    return undefined;
  }

  private createDoc(ds: Dataset, name: string, content: Buffer, tenantId: string): Doc {
    const t = this.stamp();
    const ext = extOf(name);
    const doc: Doc = {
      id: uuid1Hex(),
      datasetId: ds.id,
      tenantId,
      name,
      location: name,
      content,
      suffix: ext,
      type: this.fileType(ext) ?? 'doc',
      chunkMethod: ds.chunkMethod,
      parserConfig: structuredClone(ds.parserConfig),
      pipelineId: ds.pipelineId,
      metaFields: {},
      enabled: true,
      run: 0,
      progress: 0,
      progressMsg: '',
      processBeginAt: null,
      processDuration: 0,
      chunkCount: 0,
      tokenCount: 0,
      createTime: t,
      updateTime: t,
    };
    this.docsById.set(doc.id, doc);
    this.recordWrite('create', doc);
    return doc;
  }

  /** Moves a RUNNING document along its job at the fake's clock. */
  private settle(d: Doc): void {
    if (d.run !== 1 || !d.job) return;
    const now = this.now();
    const job = d.job;
    if (jobFinished(job, now)) {
      const end = job.startedAt + job.durationMs;
      d.processDuration = job.durationMs / 1000;
      if (job.outcome === 'fail') {
        d.run = 4;
        d.progress = -1;
        d.progressMsg += `\n${new Date(end).toISOString().slice(11, 19)} [ERROR]${job.message ?? 'Internal server error while chunking: simulated parse failure'}`;
      } else {
        d.run = 3;
        d.progress = 1;
        d.chunkCount = Math.max(1, Math.ceil(d.content.length / 2048));
        d.tokenCount = Math.max(1, Math.ceil(d.content.toString('utf8').split(/\s+/).filter(Boolean).length * 1.3));
        d.progressMsg += `\n${new Date(end).toISOString().slice(11, 19)} Task done (${d.processDuration.toFixed(2)}s)`;
      }
      d.job = undefined;
      return;
    }
    const f = jobFraction(job, now);
    d.progress = f === 0 ? 0 : Math.round(f * 0.99 * 10000) / 10000;
    d.processDuration = (now - job.startedAt) / 1000;
  }

  private startParse(d: Doc): void {
    const now = this.now();
    const drawn = this.drawOutcome(d);
    d.run = 1;
    d.progress = 0;
    d.chunkCount = 0;
    d.tokenCount = 0;
    d.processBeginAt = now;
    d.processDuration = 0;
    d.progressMsg = `${new Date(now).toISOString().slice(11, 19)} Task is queued...`;
    d.job = { startedAt: now, durationMs: this.opts.parseMs, outcome: drawn.outcome, hangAt: drawn.hangAt, message: drawn.message };
    d.updateTime = this.stamp();
    this.recordWrite('parse', d);
  }

  private stopParse(d: Doc): void {
    d.run = 2;
    d.progress = 0;
    d.chunkCount = 0;
    d.job = undefined;
    d.updateTime = this.stamp();
    this.recordWrite('stop', d);
  }

  private deleteDoc(d: Doc): void {
    // A queued or running parse is dropped with the document (its tasks are removed, §1.3.5);
    // whether a live executor could still write chunks afterwards is unconfirmed (§5): here it cannot.
    this.docsById.delete(d.id);
    this.recordWrite('delete', d);
  }

  // ---------------------------------------------------------------- JSON shapes

  private datasetJson(ds: Dataset, withParsing: boolean): Record<string, unknown> {
    const docs = this.docsOf(ds.id);
    for (const d of docs) this.settle(d);
    const out: Record<string, unknown> = {
      avatar: '',
      chunk_count: docs.reduce((n, d) => n + d.chunkCount, 0),
      chunk_method: ds.chunkMethod,
      create_date: httpDate(ds.createTime),
      create_time: ds.createTime,
      created_by: ds.tenantId,
      description: ds.description,
      document_count: docs.length,
      embedding_model: ds.embeddingModel,
      id: ds.id,
      language: 'English',
      name: ds.name,
      pagerank: 0,
      parser_config: ds.parserConfig,
      permission: ds.permission,
      similarity_threshold: 0.2,
      status: '1',
      tenant_id: ds.tenantId,
      token_num: docs.reduce((n, d) => n + d.tokenCount, 0),
      update_date: httpDate(ds.updateTime),
      update_time: ds.updateTime,
      vector_similarity_weight: 0.3,
    };
    if (this.at('0.26.0')) out.pipeline_id = ds.pipelineId;
    if (withParsing) {
      const n = (run: number) => docs.filter((d) => d.run === run).length;
      Object.assign(out, { unstart_count: n(0), running_count: n(1), cancel_count: n(2), done_count: n(3), fail_count: n(4) });
    }
    return out;
  }

  private docJson(d: Doc): Record<string, unknown> {
    this.settle(d);
    const out: Record<string, unknown> = {
      chunk_count: d.chunkCount,
      chunk_method: d.chunkMethod,
      create_date: httpDate(d.createTime),
      create_time: d.createTime,
      created_by: d.tenantId,
      dataset_id: d.datasetId,
      id: d.id,
      location: d.location,
      meta_fields: structuredClone(d.metaFields),
      name: d.name,
      parser_config: d.parserConfig,
      pipeline_id: d.pipelineId,
      process_begin_at: d.processBeginAt === null ? null : httpDate(d.processBeginAt),
      process_duration: d.processDuration,
      progress: d.progress,
      progress_msg: d.progressMsg,
      run: RUN_TEXT[d.run],
      size: d.content.length,
      source_type: 'local',
      status: d.enabled ? '1' : '0',
      suffix: d.suffix,
      thumbnail: '',
      token_count: d.tokenCount,
      type: d.type,
      update_date: httpDate(d.updateTime),
      update_time: d.updateTime,
    };
    // content_hash is listed from v0.25 because all model fields are returned (unconfirmed as a
    // documented field, §5). RAGFlow stores xxh128; the fake gives a 32-hex digest of the same
    // shape (md5): clients may only compare it, never recompute it.
    if (this.at('0.25.0')) out.content_hash = createHash('md5').update(d.content).digest('hex');
    return out;
  }

  private uploadJson(d: Doc, raw: boolean): Record<string, unknown> {
    const base: Record<string, unknown> = {
      created_by: d.tenantId,
      id: d.id,
      location: d.location,
      name: d.name,
      parser_config: d.parserConfig,
      pipeline_id: d.pipelineId,
      size: d.content.length,
      source_type: 'local',
      suffix: d.suffix,
      thumbnail: '',
      type: d.type,
    };
    if (this.at('0.25.0')) base.content_hash = createHash('md5').update(d.content).digest('hex');
    if (raw) return { ...base, kb_id: d.datasetId, parser_id: d.chunkMethod, run: '0' };
    return { ...base, dataset_id: d.datasetId, chunk_method: d.chunkMethod, run: 'UNSTART' };
  }

  // ---------------------------------------------------------------- envelopes

  /** Every application answer is HTTP 200 (§1.2). */
  private result(reply: FastifyReply, body: Record<string, unknown>, status = 200) {
    return reply.code(status).header('content-type', 'application/json').send(JSON.stringify(body));
  }

  private ok(reply: FastifyReply, data?: unknown, extra: Record<string, unknown> = {}) {
    return this.result(reply, data === undefined ? { code: 0, ...extra } : { code: 0, ...extra, data });
  }

  private fail(reply: FastifyReply, code: number, message: string, data?: unknown) {
    return this.result(reply, data === undefined ? { code, message } : { code, message, data });
  }

  private exception(reply: FastifyReply, message: string) {
    return this.fail(reply, RetCode.EXCEPTION_ERROR, message);
  }

  protected faultAnswer(kind: FaultKind, fault: KbFault | undefined): FaultAnswer {
    switch (kind) {
      case 'error':
        return {
          status: 200,
          contentType: 'application/json',
          body: JSON.stringify({ code: 100, message: fault?.message ?? "OperationalError(2013, 'Lost connection to MySQL server during query')" }),
        };
      case 'custom':
        return {
          status: fault?.status ?? 200,
          contentType: typeof fault?.body === 'string' ? 'text/plain' : 'application/json',
          body: typeof fault?.body === 'string' ? fault.body : JSON.stringify(fault?.body ?? { code: 100, message: fault?.message ?? 'simulated' }),
        };
      case 'bad_gateway':
        return nginxPage(502);
      default:
        // unavailable, and the Dify-only kinds (RAGFlow has no rate limiter: its proxy's 503).
        return nginxPage(503);
    }
  }

  // ---------------------------------------------------------------- routing by version

  /** Which (method, path) pairs exist in this version, for Flask's 404-vs-405 decision. */
  private routeTable(): Array<{ re: RegExp; methods: string[] }> {
    const p = '/api/v1/datasets';
    const seg = '[^/]+';
    const docMethods = ['GET'];
    if (!this.at('0.25.0') || this.at('0.25.2')) docMethods.push('PUT');
    if (this.at('0.25.0')) docMethods.push('PATCH');
    return [
      { re: new RegExp(`^${p}$`), methods: ['GET', 'POST', 'DELETE'] },
      { re: new RegExp(`^${p}/${seg}$`), methods: this.at('0.26.0') ? ['GET', 'PUT'] : ['PUT'] },
      { re: new RegExp(`^${p}/${seg}/documents$`), methods: ['GET', 'POST', 'DELETE'] },
      ...(this.at('0.26.0') ? [{ re: new RegExp(`^${p}/${seg}/documents/(parse|stop)$`), methods: ['POST'] }] : []),
      { re: new RegExp(`^${p}/${seg}/documents/${seg}$`), methods: docMethods },
      { re: new RegExp(`^${p}/${seg}/chunks$`), methods: ['POST', 'DELETE'] },
      { re: new RegExp(`^${p}/${seg}/documents/${seg}/chunks$`), methods: ['GET', 'POST', 'DELETE'] },
      ...(this.at('0.23.0')
        ? [
            { re: new RegExp(`^${p}/${seg}/metadata/update$`), methods: ['POST'] },
            { re: new RegExp(`^${p}/${seg}/metadata/summary$`), methods: ['GET'] },
          ]
        : []),
    ];
  }

  /** Werkzeug's NotFound / MethodNotAllowed, surfaced by RAGFlow's error handler as code 100. */
  private unrouted(req: FastifyRequest, reply: FastifyReply) {
    const path = req.url.split('?')[0] ?? '';
    const match = this.routeTable().find((r) => r.re.test(path));
    if (match && !match.methods.includes(req.method)) return this.exception(reply, "<MethodNotAllowed '405: Method Not Allowed'>");
    return this.exception(reply, "<NotFound '404: Not Found'>");
  }

  /** The auth decorator a route used in this version (§1.1: v0.25.x mixed both). */
  private authStyle(route: string): AuthStyle {
    if (!this.at('0.25.0')) return 'token_required';
    if (this.at('0.26.0')) return 'login_required';
    const newStyle = ['datasets.list', 'datasets.create', 'datasets.get', 'documents.upload', 'documents.list', 'documents.update'];
    // The doc names upload/list/update as moved in v0.25.0; the datasets routes are assumed moved
    // with them, download and metadata assumed still on token_required (unconfirmed).
    return newStyle.includes(route) ? 'login_required' : 'token_required';
  }

  /** The caller's tenant, or undefined after answering the auth failure. */
  private auth(req: FastifyRequest, reply: FastifyReply): string | undefined {
    const header = req.headers.authorization;
    if (this.authStyle(this.routeName(req)) === 'token_required') {
      if (!header) {
        void this.result(reply, { code: 0, message: "`Authorization` can't be empty", data: false });
        return undefined;
      }
      const words = header.split(/\s+/).filter(Boolean);
      if (words.length < 2) {
        void this.result(reply, { code: 0, message: 'Please check your authorization format.', data: false });
        return undefined;
      }
      const tenant = this.keyOwner.get(words[1] as string);
      if (!tenant) {
        void this.result(reply, { code: RetCode.AUTHENTICATION_ERROR, message: 'Authentication error: API key is invalid!', data: false });
        return undefined;
      }
      return tenant;
    }
    const key = (header ?? '').replace(/^bearer\s+/i, '').trim();
    const tenant = key ? this.keyOwner.get(key) : undefined;
    if (!tenant) {
      void this.result(reply, { code: 401, message: 'Unauthorized', data: null }, 401);
      return undefined;
    }
    return tenant;
  }

  /** The caller's dataset, or undefined after answering "You don't own the dataset". */
  private ownedDataset(req: FastifyRequest, reply: FastifyReply, tenantId: string): Dataset | undefined {
    const id = (req.params as { dataset_id: string }).dataset_id;
    const ds = this.datasetsById.get(id);
    if (!ds || ds.tenantId !== tenantId) {
      void this.fail(reply, RetCode.DATA_ERROR, `You don't own the dataset ${id}.`);
      return undefined;
    }
    return ds;
  }

  private body(req: FastifyRequest): Record<string, unknown> {
    const b = req.body;
    return b && typeof b === 'object' && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
  }

  // ---------------------------------------------------------------- routes

  private registerRoutes(): void {
    const app = this.app;
    const P = '/api/v1/datasets';

    app.setNotFoundHandler((req, reply) => this.unrouted(req, reply));
    app.setErrorHandler((err: Error & { kbBadJson?: boolean; statusCode?: number; code?: string }, _req, reply) => {
      if (err.kbBadJson) return this.exception(reply, "<BadRequest '400: Bad Request'>");
      if (err.statusCode === 413) return this.exception(reply, "<RequestEntityTooLarge '413: Request Entity Too Large'>");
      return this.exception(reply, `${err.name}(${JSON.stringify(err.message)})`);
    });

    // ------------------------------------------------ datasets

    app.get(P, named('datasets.list'), async (req, reply) => {
      const tenantId = this.auth(req, reply);
      if (!tenantId) return reply;
      const q = req.query as Q;
      const allowed = ['page', 'page_size', 'orderby', 'desc', 'name', 'id', ...(this.at('0.27.0') ? ['include_parsing_status'] : [])];
      const strict = this.at('0.20.0');
      const argErr = (field: string, msg: string, value: unknown) =>
        this.fail(reply, RetCode.ARGUMENT_ERROR, `Field: <${field}> - Message: <${msg}> - Value: <${String(value)}>`);
      if (strict) {
        const extra = Object.keys(q).find((k) => !allowed.includes(k));
        if (extra) return argErr(extra, 'Extra inputs are not permitted', first(q[extra]));
      }
      const page = Number(first(q.page) ?? 1);
      const pageSize = Number(first(q.page_size) ?? 30);
      if (!Number.isInteger(page) || !Number.isInteger(pageSize)) {
        return strict
          ? argErr(Number.isInteger(page) ? 'page_size' : 'page', 'Input should be a valid integer, unable to parse string as an integer', first(Number.isInteger(page) ? q.page_size : q.page))
          : this.exception(reply, `ValueError("invalid literal for int() with base 10")`);
      }
      // Max 100 from v0.26 (§1.3.1). The datasets request model is pydantic, so a pydantic-style
      // 101 here (the doc gives code 100 only for the documents list).
      if (this.at('0.26.0') && pageSize > 100) return argErr('page_size', 'Input should be less than or equal to 100', pageSize);
      const orderby = first(q.orderby) ?? 'create_time';
      if (strict && orderby !== 'create_time' && orderby !== 'update_time') return argErr('orderby', "Input should be 'create_time' or 'update_time'", orderby);
      const desc = String(first(q.desc) ?? 'true').toLowerCase() !== 'false';
      const name = first(q.name);
      const id = first(q.id);
      if (strict && id !== undefined && !/^[0-9a-f]{12}1[0-9a-f]{3}[89ab][0-9a-f]{15}$/i.test(id.replace(/-/g, ''))) {
        return argErr('id', 'Invalid UUID1 format', id);
      }
      let list = [...this.datasetsById.values()].filter((d) => d.tenantId === tenantId);
      if (id !== undefined) list = list.filter((d) => d.id === id.replace(/-/g, ''));
      if (name !== undefined) list = list.filter((d) => this.sameName(d.name, name));
      if ((id !== undefined || name !== undefined) && list.length === 0) {
        // A miss on the exact filters is an error, not an empty list (§1.3.1).
        const what = id ?? name;
        if (!this.at('0.20.0')) return this.fail(reply, RetCode.DATA_ERROR, `You don't own the dataset ${what}`);
        const code = this.at('0.25.0') ? RetCode.DATA_ERROR : RetCode.PERMISSION_ERROR;
        return this.fail(reply, code, `User '${tenantId}' lacks permission for dataset '${what}'`);
      }
      const key = orderby === 'update_time' ? 'updateTime' : 'createTime';
      list.sort((a, b) => (desc ? b[key] - a[key] : a[key] - b[key]));
      const total = list.length;
      const paged = page > 0 && pageSize > 0 ? list.slice((page - 1) * pageSize, page * pageSize) : list;
      const withParsing = String(first(q.include_parsing_status) ?? '').toLowerCase() === 'true';
      return this.result(reply, { code: 0, data: paged.map((d) => this.datasetJson(d, withParsing)), total_datasets: total });
    });

    app.post(P, named('datasets.create'), async (req, reply) => {
      const tenantId = this.auth(req, reply);
      if (!tenantId) return reply;
      const body = this.body(req);
      const known = ['name', 'avatar', 'description', 'embedding_model', 'permission', 'chunk_method', 'parser_config', 'pipeline_id', 'parse_type', 'language', 'pagerank'];
      if (this.at('0.20.0')) {
        const extra = Object.keys(body).find((k) => !known.includes(k));
        if (extra) return this.fail(reply, RetCode.ARGUMENT_ERROR, `Field: <${extra}> - Message: <Extra inputs are not permitted> - Value: <${JSON.stringify(body[extra])}>`);
      }
      const name = typeof body.name === 'string' ? body.name.trim() : '';
      if (!name) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'Field: <name> - Message: <String should have at least 1 character> - Value: <>');
      if (name.length > 128) return this.fail(reply, RetCode.ARGUMENT_ERROR, `Field: <name> - Message: <String should have at most 128 characters> - Value: <${name}>`);
      if (body.chunk_method !== undefined && !CHUNK_METHODS.includes(body.chunk_method as (typeof CHUNK_METHODS)[number])) {
        return this.fail(reply, RetCode.ARGUMENT_ERROR, `Field: <chunk_method> - Message: <Input should be ${CHUNK_METHODS.map((m) => `'${m}'`).join(', ')}> - Value: <${String(body.chunk_method)}>`);
      }
      // Silent in the doc: an existing name in the same tenant is refused (OPERATING_ERROR).
      if ([...this.datasetsById.values()].some((d) => d.tenantId === tenantId && this.sameName(d.name, name))) {
        return this.fail(reply, RetCode.OPERATING_ERROR, `Dataset name '${name}' already exists`);
      }
      const ds = this.newDataset(tenantId, { ...body, name });
      return this.ok(reply, this.datasetJson(ds, false));
    });

    app.get(`${P}/:dataset_id`, named('datasets.get'), async (req, reply) => {
      if (!this.at('0.26.0')) return this.unrouted(req, reply);
      const tenantId = this.auth(req, reply);
      if (!tenantId) return reply;
      const id = (req.params as { dataset_id: string }).dataset_id;
      const ds = this.datasetsById.get(id);
      if (!ds || ds.tenantId !== tenantId) return this.fail(reply, RetCode.DATA_ERROR, `User '${tenantId}' lacks permission for dataset '${id}'`);
      return this.ok(reply, this.datasetJson(ds, false));
    });

    // ------------------------------------------------ documents

    app.post(`${P}/:dataset_id/documents`, named('documents.upload'), async (req, reply) => {
      const tenantId = this.auth(req, reply);
      if (!tenantId) return reply;
      const ds = this.ownedDataset(req, reply, tenantId);
      if (!ds) return reply;
      const q = req.query as Q;
      const length = Number(req.headers['content-length'] ?? 0);
      if (length > this.opts.maxContentLength) {
        const page = nginxPage(413);
        return reply.code(413).header('content-type', page.contentType).header('connection', 'close').send(page.body);
      }
      if (this.at('0.26.0') && first(q.type) === 'empty') {
        const name = typeof this.body(req).name === 'string' ? String(this.body(req).name) : '';
        if (!name) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'File name can\'t be empty.');
        if (bytesOf(name) > 255) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'File name must be 255 bytes or less.');
        if (!this.fileType(extOf(name))) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'This type of file has not been supported yet!');
        const doc = this.createDoc(ds, this.uniqueName(ds.id, name), Buffer.alloc(0), tenantId);
        return this.ok(reply, [this.uploadJson(doc, false)]);
      }
      if (this.at('0.26.0') && first(q.type) === 'web') {
        // Crawling a URL into a PDF is out of the fake's scope.
        return this.fail(reply, RetCode.ARGUMENT_ERROR, 'The fake does not crawl web pages (type=web).');
      }
      if (!req.isMultipart()) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'No file part!');
      const form = await readMultipart(req);
      const files = form.files.filter((f) => f.field === 'file');
      if (files.length === 0) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'No file part!');
      for (const f of files) {
        if (f.filename === '') return this.fail(reply, RetCode.ARGUMENT_ERROR, 'No file selected!');
        if (bytesOf(f.filename) > 255) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'File name must be 255 bytes or less.');
      }
      if (this.opts.maxFilesPerTenant > 0) {
        const owned = [...this.docsById.values()].filter((d) => d.tenantId === tenantId).length;
        if (owned + files.length > this.opts.maxFilesPerTenant) return this.fail(reply, RetCode.DATA_ERROR, 'Exceed the maximum file number of a free user!');
      }
      const errors: string[] = [];
      const stored: Doc[] = [];
      for (const f of files) {
        if (!this.fileType(extOf(f.filename))) {
          errors.push(`${f.filename}: This type of file has not been supported yet!`);
          continue;
        }
        stored.push(this.createDoc(ds, this.uniqueName(ds.id, f.filename), f.data, tenantId));
      }
      const raw = this.at('0.25.0') && String(first(q.return_raw_files) ?? '').toLowerCase() === 'true';
      const data = stored.map((d) => this.uploadJson(d, raw));
      if (errors.length > 0) {
        // Partial success: the good files are stored either way. v0.25+ lists them in `data`
        // (§1.2); older versions answer the message only (their loop kept the stored files too).
        return this.at('0.25.0') ? this.fail(reply, RetCode.SERVER_ERROR, errors.join('\n'), data) : this.fail(reply, RetCode.SERVER_ERROR, errors.join('\n'));
      }
      return this.ok(reply, data);
    });

    app.get(`${P}/:dataset_id/documents`, named('documents.list'), async (req, reply) => this.listDocuments(req, reply));

    app.delete(`${P}/:dataset_id/documents`, named('documents.delete'), async (req, reply) => {
      const tenantId = this.auth(req, reply);
      if (!tenantId) return reply;
      const ds = this.ownedDataset(req, reply, tenantId);
      if (!ds) return reply;
      const body = this.body(req);
      const ids = Array.isArray(body.ids) ? body.ids.map(String) : [];
      if (!this.at('0.25.0')) {
        // ≤ v0.24: a missing or empty `ids` (or a misnamed key) deletes EVERY document (§1.3.5, #10826, #12030).
        if (ids.length === 0) {
          for (const d of this.docsOf(ds.id)) this.deleteDoc(d);
          return this.ok(reply);
        }
        const notFound: string[] = [];
        for (const id of new Set(ids)) {
          const d = this.docsById.get(id);
          if (!d || d.datasetId !== ds.id) notFound.push(id);
          else this.deleteDoc(d);
        }
        // The valid ones are already gone when this error is answered.
        if (notFound.length > 0) return this.fail(reply, RetCode.DATA_ERROR, `Documents not found: ${pyList(notFound)}`);
        return this.ok(reply);
      }
      const deleteAll = body.delete_all === true;
      if (deleteAll && ids.length > 0) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'Should not provide both ids and delete_all.');
      if (ids.length === 0 && !deleteAll) {
        return this.fail(reply, RetCode.DATA_ERROR, `should either provide doc ids or set delete_all(true), dataset: ${ds.id}.`);
      }
      if (deleteAll) {
        const all = this.docsOf(ds.id);
        for (const d of all) this.deleteDoc(d);
        return this.ok(reply, { deleted: all.length });
      }
      const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
      if (dup.length > 0) return this.fail(reply, RetCode.ARGUMENT_ERROR, `Duplicate document ids: ${[...new Set(dup)].join(', ')}`);
      const missing = ids.filter((id) => this.docsById.get(id)?.datasetId !== ds.id);
      // v0.25+: one unknown id fails the whole request before anything is deleted.
      if (missing.length > 0) return this.fail(reply, RetCode.DATA_ERROR, `Documents not found: ${pyList(missing)}`);
      for (const id of ids) this.deleteDoc(this.docsById.get(id) as Doc);
      return this.ok(reply, { deleted: ids.length });
    });

    const update = async (req: FastifyRequest, reply: FastifyReply) => {
      const put = req.method === 'PUT';
      const available = put ? !this.at('0.25.0') || this.at('0.25.2') : this.at('0.25.0');
      if (!available) return this.unrouted(req, reply);
      return this.updateDocument(req, reply);
    };
    app.put(`${P}/:dataset_id/documents/:document_id`, named('documents.update'), update);
    app.patch(`${P}/:dataset_id/documents/:document_id`, named('documents.update'), update);

    app.get(`${P}/:dataset_id/documents/:document_id`, named('documents.download'), async (req, reply) => {
      const tenantId = this.auth(req, reply);
      if (!tenantId) return reply;
      const { dataset_id: dsId, document_id: docId } = req.params as { dataset_id: string; document_id: string };
      const ds = this.datasetsById.get(dsId);
      if (!ds || ds.tenantId !== tenantId) return this.fail(reply, RetCode.DATA_ERROR, `You do not own the dataset ${dsId}.`);
      const d = this.docsById.get(docId);
      if (!d || d.datasetId !== ds.id) return this.fail(reply, RetCode.DATA_ERROR, `The dataset not own the document ${docId}.`);
      if (d.content.length === 0) return this.fail(reply, RetCode.DATA_ERROR, 'This file is empty.');
      return reply
        .code(200)
        .header('content-type', 'application/octet-stream')
        .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(d.name)}`)
        .send(Buffer.from(d.content));
    });

    // ------------------------------------------------ parse / stop

    app.post(`${P}/:dataset_id/chunks`, named('chunks.parse'), async (req, reply) => this.parse(req, reply, false));
    app.delete(`${P}/:dataset_id/chunks`, named('chunks.stop'), async (req, reply) => this.stopParsing(req, reply, false));
    app.post(`${P}/:dataset_id/documents/parse`, named('documents.parse'), async (req, reply) =>
      this.at('0.26.0') ? this.parse(req, reply, true) : this.unrouted(req, reply),
    );
    app.post(`${P}/:dataset_id/documents/stop`, named('documents.stop'), async (req, reply) =>
      this.at('0.26.0') ? this.stopParsing(req, reply, true) : this.unrouted(req, reply),
    );

    // ------------------------------------------------ metadata (v0.23+)

    app.post(`${P}/:dataset_id/metadata/update`, named('metadata.update'), async (req, reply) => {
      if (!this.at('0.23.0')) return this.unrouted(req, reply);
      const tenantId = this.auth(req, reply);
      if (!tenantId) return reply;
      const ds = this.ownedDataset(req, reply, tenantId);
      if (!ds) return reply;
      const body = this.body(req);
      const selector = (body.selector ?? {}) as { document_ids?: unknown; metadata_condition?: unknown };
      const updates = (body.updates ?? []) as Array<{ key?: string; match?: unknown; value?: unknown }>;
      const deletes = (body.deletes ?? []) as Array<{ key?: string; value?: unknown }>;
      if (typeof selector !== 'object' || Array.isArray(selector)) return this.fail(reply, RetCode.DATA_ERROR, 'selector must be an object.');
      if (!Array.isArray(updates) || !Array.isArray(deletes)) return this.fail(reply, RetCode.DATA_ERROR, 'updates and deletes must be lists.');
      if (updates.some((u) => !u || !u.key || !('value' in u))) return this.fail(reply, RetCode.DATA_ERROR, 'Each update requires key and value.');
      if (deletes.some((d) => !d || !d.key)) return this.fail(reply, RetCode.DATA_ERROR, 'Each delete requires key.');
      let targets = this.docsOf(ds.id);
      if (selector.document_ids !== undefined) {
        if (!Array.isArray(selector.document_ids)) return this.fail(reply, RetCode.DATA_ERROR, 'document_ids must be a list.');
        const want = selector.document_ids.map(String);
        const invalid = want.filter((id) => this.docsById.get(id)?.datasetId !== ds.id);
        if (invalid.length > 0) return this.fail(reply, RetCode.DATA_ERROR, `These documents do not belong to dataset ${ds.id}: ${invalid.join(', ')}`);
        if (want.length > 0) targets = targets.filter((d) => want.includes(d.id));
      }
      if (selector.metadata_condition) {
        const cond = selector.metadata_condition as MetaCondition;
        targets = targets.filter((d) => matchesCondition(d.metaFields, cond));
      }
      let updated = 0;
      for (const d of targets) {
        const before = JSON.stringify(d.metaFields);
        for (const u of updates) {
          const key = u.key as string;
          if (u.match === undefined) d.metaFields[key] = u.value;
          else if (Array.isArray(d.metaFields[key])) {
            d.metaFields[key] = (d.metaFields[key] as unknown[]).map((x) => (String(x) === String(u.match) ? u.value : x));
          } else if (String(d.metaFields[key]) === String(u.match)) d.metaFields[key] = u.value;
        }
        for (const del of deletes) {
          const key = del.key as string;
          if (del.value === undefined) delete d.metaFields[key];
          else if (Array.isArray(d.metaFields[key])) d.metaFields[key] = (d.metaFields[key] as unknown[]).filter((x) => String(x) !== String(del.value));
          else if (String(d.metaFields[key]) === String(del.value)) delete d.metaFields[key];
        }
        if (JSON.stringify(d.metaFields) !== before) {
          updated += 1;
          d.updateTime = this.stamp();
          this.recordWrite('metadata', d);
        }
      }
      return this.ok(reply, { updated, matched_docs: targets.length });
    });

    app.get(`${P}/:dataset_id/metadata/summary`, named('metadata.summary'), async (req, reply) => {
      if (!this.at('0.23.0')) return this.unrouted(req, reply);
      const tenantId = this.auth(req, reply);
      if (!tenantId) return reply;
      const ds = this.ownedDataset(req, reply, tenantId);
      if (!ds) return reply;
      const summary: Record<string, Record<string, number>> = {};
      for (const d of this.docsOf(ds.id)) {
        for (const [k, v] of Object.entries(d.metaFields)) {
          for (const item of Array.isArray(v) ? v : [v]) {
            const bucket = (summary[k] ??= {});
            bucket[String(item)] = (bucket[String(item)] ?? 0) + 1;
          }
        }
      }
      const out: Record<string, Array<[string, number]>> = {};
      for (const [k, counts] of Object.entries(summary)) out[k] = Object.entries(counts).sort((a, b) => b[1] - a[1]);
      return this.ok(reply, { summary: out });
    });
  }

  // ---------------------------------------------------------------- list documents

  private listDocuments(req: FastifyRequest, reply: FastifyReply) {
    const tenantId = this.auth(req, reply);
    if (!tenantId) return reply;
    const ds = this.ownedDataset(req, reply, tenantId);
    if (!ds) return reply;
    const q = req.query as Q;
    const page = Number(first(q.page) ?? 1);
    const pageSize = Number(first(q.page_size) ?? 30);
    if (!Number.isFinite(page) || !Number.isFinite(pageSize)) return this.exception(reply, `ValueError("invalid literal for int() with base 10")`);
    const capErr = (message: string) =>
      this.result(reply, { code: RetCode.EXCEPTION_ERROR, message }, this.opts.pageSizeErrorHttpStatus);
    // v0.26+: page_size above 100 is an error, not a silent cap (§1.3.3, #19414).
    if (this.at('0.26.0') && pageSize > 100) return capErr(`ValueError('page_size must be between 1 and 100, got ${pageSize}')`);
    const ids = this.at('0.26.0') ? many(q.ids) : [];
    if (this.at('0.27.0') && ids.length > 100) return capErr(`ValueError('ids must contain at most 100 items, got ${ids.length}')`);
    const id = first(q.id);
    const name = first(q.name);
    let docs = this.docsOf(ds.id);
    // A miss on the exact `id` / `name` filters is code 102, not an empty list (§1.3.3, #4015).
    if (id !== undefined && id !== '' && !docs.some((d) => d.id === id)) return this.fail(reply, RetCode.DATA_ERROR, `You don't own the document ${id}.`);
    if (name !== undefined && name !== '' && !docs.some((d) => this.sameName(d.name, name))) return this.fail(reply, RetCode.DATA_ERROR, `You don't own the document ${name}.`);
    if (id) docs = docs.filter((d) => d.id === id);
    if (name) docs = docs.filter((d) => this.sameName(d.name, name));
    if (ids.length > 0) docs = docs.filter((d) => ids.includes(d.id));
    const keywords = first(q.keywords);
    if (keywords) docs = docs.filter((d) => d.name.toLowerCase().includes(keywords.toLowerCase()));
    if (this.at('0.22.0')) {
      const suffix = many(q.suffix);
      if (suffix.length > 0) docs = docs.filter((d) => suffix.includes(d.suffix));
      const runs = [...many(q.run), ...(this.at('0.26.0') ? many(q.run_status) : [])].map((r) => {
        const i = RUN_TEXT.indexOf(r.toUpperCase() as RunText);
        return i >= 0 ? i : Number(r);
      });
      if (runs.length > 0) {
        for (const d of docs) this.settle(d);
        docs = docs.filter((d) => runs.includes(d.run));
      }
    }
    if (this.at('0.21.0')) {
      const raw = first(q.metadata_condition);
      if (raw) {
        let cond: unknown;
        try {
          cond = JSON.parse(raw);
        } catch {
          return this.fail(reply, RetCode.DATA_ERROR, 'metadata_condition must be valid JSON.');
        }
        if (!cond || typeof cond !== 'object' || Array.isArray(cond)) return this.fail(reply, RetCode.DATA_ERROR, 'metadata_condition must be an object.');
        const c = cond as MetaCondition;
        if (Array.isArray(c.conditions) && c.conditions.length > 0) {
          docs = docs.filter((d) => matchesCondition(d.metaFields, c));
          if (docs.length === 0) return this.ok(reply, { total: 0, docs: [] });
        }
      }
    }
    const orderby = first(q.orderby) ?? 'create_time';
    const desc = String(first(q.desc) ?? 'true').toLowerCase() !== 'false';
    const sorters: Record<string, (a: Doc, b: Doc) => number> = {
      create_time: (a, b) => a.createTime - b.createTime,
      update_time: (a, b) => a.updateTime - b.updateTime,
      ...(this.at('0.26.0') ? { name: (a: Doc, b: Doc) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) } : {}),
    };
    const sorter = sorters[orderby] ?? sorters.create_time!;
    docs.sort((a, b) => (desc ? -sorter(a, b) : sorter(a, b)));
    const total = docs.length;
    // RAGFlow paginates only when both page and page_size are non-zero.
    let paged = page > 0 && pageSize > 0 ? docs.slice((page - 1) * pageSize, page * pageSize) : docs;
    if (this.at('0.21.0')) {
      // create_time_from/to filter AFTER pagination, so `total` ignores them (§1.3.3).
      const from = Number(first(q.create_time_from) ?? 0);
      const to = Number(first(q.create_time_to) ?? 0);
      if (from || to) paged = paged.filter((d) => (from === 0 || d.createTime >= from) && (to === 0 || d.createTime <= to));
    }
    const data = { total, docs: paged.map((d) => this.docJson(d)) };
    return this.at('0.25.0') ? this.ok(reply, data, { message: 'success' }) : this.ok(reply, data);
  }

  // ---------------------------------------------------------------- update document

  private updateDocument(req: FastifyRequest, reply: FastifyReply) {
    const tenantId = this.auth(req, reply);
    if (!tenantId) return reply;
    const { dataset_id: dsId, document_id: docId } = req.params as { dataset_id: string; document_id: string };
    const ds = this.datasetsById.get(dsId);
    if (!ds || ds.tenantId !== tenantId) return this.fail(reply, RetCode.DATA_ERROR, "You don't own the dataset.");
    const d = this.docsById.get(docId);
    if (!d || d.datasetId !== ds.id) return this.fail(reply, RetCode.DATA_ERROR, "The dataset doesn't own the document.");
    this.settle(d);
    const body = this.body(req);
    // Counters may only be echoed back unchanged.
    const echo: Array<[string, number]> = [
      ['chunk_count', d.chunkCount],
      ['token_count', d.tokenCount],
      ['progress', d.progress],
    ];
    for (const [k, v] of echo) {
      if (k in body && Number(body[k]) !== v) return this.fail(reply, RetCode.ARGUMENT_ERROR, `Can't change \`${k}\`.`);
    }
    let newName: string | undefined;
    if (typeof body.name === 'string' && body.name !== d.name) {
      if (extOf(body.name) !== extOf(d.name)) return this.fail(reply, RetCode.ARGUMENT_ERROR, "The extension of file can't be changed");
      if (bytesOf(body.name) > 255) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'File name must be 255 bytes or less.');
      if (this.nameTaken(ds.id, body.name, d.id)) return this.fail(reply, RetCode.DATA_ERROR, 'Duplicated document name in the same dataset.');
      newName = body.name;
    }
    let meta: Record<string, unknown> | undefined;
    if ('meta_fields' in body && this.at('0.17.0')) {
      const m = body.meta_fields;
      if (!m || typeof m !== 'object' || Array.isArray(m)) return this.fail(reply, RetCode.ARGUMENT_ERROR, 'meta_fields must be a dictionary');
      meta = {};
      for (const [k, v] of Object.entries(m)) {
        const scalar = (x: unknown) => typeof x === 'string' || typeof x === 'number';
        if (Array.isArray(v)) {
          if (!v.every(scalar)) return this.fail(reply, RetCode.ARGUMENT_ERROR, `The type is not supported in list: ${JSON.stringify(v)}`);
          // v0.24+: string items of lists are split on , ， ; ； | 、 (§1.3.4).
          meta[k] = this.at('0.24.0')
            ? (v as unknown[]).flatMap((x): unknown[] => (typeof x === 'string' ? x.split(META_SPLIT).map((s) => s.trim()).filter(Boolean) : [x]))
            : [...v];
        } else if (scalar(v)) meta[k] = v;
        else return this.fail(reply, RetCode.ARGUMENT_ERROR, `The type is not supported: ${JSON.stringify(v)}`);
      }
    }
    let enabled: boolean | undefined;
    if ('enabled' in body && this.at('0.19.0')) {
      const e = body.enabled;
      if (e !== 0 && e !== 1 && e !== true && e !== false) return this.fail(reply, RetCode.ARGUMENT_ERROR, '`enabled` value must be 0 or 1.');
      enabled = e === 1 || e === true;
    }
    let chunkMethod: string | undefined;
    if (typeof body.chunk_method === 'string') {
      if (!CHUNK_METHODS.includes(body.chunk_method as (typeof CHUNK_METHODS)[number])) {
        return this.fail(reply, RetCode.ARGUMENT_ERROR, `\`chunk_method\` ${body.chunk_method} doesn't exist`);
      }
      if (body.chunk_method.toLowerCase() !== d.chunkMethod.toLowerCase()) chunkMethod = body.chunk_method;
    }
    // Apply (unknown fields are ignored).
    if (newName !== undefined) {
      d.name = newName;
      this.recordWrite('rename', d);
    }
    if (meta !== undefined) {
      d.metaFields = meta;
      this.recordWrite('metadata', d);
    }
    if (enabled !== undefined && enabled !== d.enabled) {
      d.enabled = enabled;
      this.recordWrite(enabled ? 'enable' : 'disable', d);
    }
    if (body.parser_config && typeof body.parser_config === 'object') d.parserConfig = { ...d.parserConfig, ...(body.parser_config as object) };
    if (this.at('0.26.0') && typeof body.pipeline_id === 'string') d.pipelineId = body.pipeline_id;
    if (chunkMethod !== undefined) {
      // A new chunk method resets the document to UNSTART and deletes its chunks.
      d.chunkMethod = chunkMethod;
      d.run = 0;
      d.progress = 0;
      d.progressMsg = '';
      d.chunkCount = 0;
      d.tokenCount = 0;
      d.job = undefined;
      this.recordWrite('chunk-method', d);
    }
    d.updateTime = this.stamp();
    return this.ok(reply, this.docJson(d));
  }

  // ---------------------------------------------------------------- parse and stop

  private parse(req: FastifyRequest, reply: FastifyReply, alias: boolean) {
    const tenantId = this.auth(req, reply);
    if (!tenantId) return reply;
    const ds = this.ownedDataset(req, reply, tenantId);
    if (!ds) return reply;
    if (this.at('0.27.0') && ds.pipelineId) {
      return this.fail(reply, RetCode.ARGUMENT_ERROR, `Dataset ${ds.id} uses an ingestion pipeline; use POST /api/v1/documents/ingest instead.`);
    }
    const body = this.body(req);
    const ids = Array.isArray(body.document_ids) ? body.document_ids.map(String) : [];
    if (ids.length === 0) return this.fail(reply, RetCode.DATA_ERROR, '`document_ids` is required');
    const notFound: string[] = [];
    const errors: string[] = [];
    let success = 0;
    for (const id of new Set(ids)) {
      const d = this.docsById.get(id);
      if (!d || d.datasetId !== ds.id) {
        notFound.push(id);
        continue;
      }
      this.settle(d);
      if (d.run === 1) {
        // Aborts the loop: earlier ids stay queued (§1.3.6). The v0.26 alias collects instead.
        if (!alias) return this.fail(reply, RetCode.DATA_ERROR, "Can't parse document that is currently being processed");
        errors.push(`Document ${id}: Can't parse document that is currently being processed`);
        continue;
      }
      this.startParse(d);
      success += 1;
    }
    if (alias) {
      // Silent in the doc: the alias answers data {success_count, errors?}; any error makes code 102.
      for (const id of notFound) errors.push(`Document ${id}: not found`);
      if (errors.length > 0) return this.fail(reply, RetCode.DATA_ERROR, errors.join('; '), { success_count: success, errors });
      return this.ok(reply, { success_count: success });
    }
    if (notFound.length > 0) return this.fail(reply, RetCode.DATA_ERROR, `Documents not found: ${pyList(notFound)}`);
    return this.ok(reply);
  }

  private stopParsing(req: FastifyRequest, reply: FastifyReply, alias: boolean) {
    const tenantId = this.auth(req, reply);
    if (!tenantId) return reply;
    const ds = this.ownedDataset(req, reply, tenantId);
    if (!ds) return reply;
    const body = this.body(req);
    const ids = Array.isArray(body.document_ids) ? body.document_ids.map(String) : [];
    if (ids.length === 0) return this.fail(reply, RetCode.DATA_ERROR, '`document_ids` is required');
    let success = 0;
    for (const id of new Set(ids)) {
      const d = this.docsById.get(id);
      if (!d || d.datasetId !== ds.id) return this.fail(reply, RetCode.DATA_ERROR, `You don't own the document ${id}.`);
      this.settle(d);
      if (this.at('0.25.0')) {
        if (d.run !== 1) {
          return this.fail(reply, RetCode.DATA_ERROR, "Can't stop parsing document that has not started or already completed", {
            error_code: 'DOC_STOP_PARSING_INVALID_STATE',
          });
        }
      } else if (d.progress === 0 || d.progress === 1) {
        // ≤ v0.24 checks progress, not run: a parse that hangs at progress 0 ("Task is queued…")
        // cannot be stopped there (hangParse({ hangAt: 0.05 }) makes one that can).
        return this.fail(reply, RetCode.DATA_ERROR, "Can't stop parsing document with progress at 0 or 1");
      }
      this.stopParse(d);
      success += 1;
    }
    return alias ? this.ok(reply, { success_count: success }) : this.ok(reply);
  }
}

// ---------------------------------------------------------------- metadata_condition

interface MetaCondition {
  logic?: string;
  conditions?: Array<{ name?: string; comparison_operator?: string; value?: unknown }>;
}

/**
 * `metadata_condition` (v0.21+). A document lacking the key matches no condition (RAGFlow filters
 * from the flattened key→value→docs index), negations included; list values match when any item does.
 */
function matchesCondition(meta: Record<string, unknown>, cond: MetaCondition): boolean {
  const conditions = Array.isArray(cond.conditions) ? cond.conditions : [];
  if (conditions.length === 0) return true;
  const results = conditions.map((c) => {
    if (!c || typeof c.name !== 'string' || !(c.name in meta)) return false;
    const raw = meta[c.name];
    const values = Array.isArray(raw) ? raw : [raw];
    const op = (c.comparison_operator ?? 'is').toLowerCase();
    const want = c.value;
    const num = (x: unknown) => (typeof x === 'number' ? x : typeof x === 'string' && x.trim() !== '' ? Number(x) : Number.NaN);
    const cmp = (v: unknown, f: (a: number, b: number) => boolean) => {
      const a = num(v);
      const b = num(want);
      return Number.isNaN(a) || Number.isNaN(b) ? f(String(v).localeCompare(String(want)), 0) : f(a, b);
    };
    const list = Array.isArray(want) ? want.map(String) : String(want ?? '').split(',').map((s) => s.trim());
    const one = (v: unknown): boolean => {
      const s = String(v);
      switch (op) {
        case 'is':
        case '=':
          return s === String(want);
        case 'not is':
        case '≠':
        case '!=':
          return s !== String(want);
        case 'contains':
          return s.includes(String(want));
        case 'not contains':
          return !s.includes(String(want));
        case 'in':
          return list.includes(s);
        case 'not in':
          return !list.includes(s);
        case 'start with':
          return s.startsWith(String(want));
        case 'end with':
          return s.endsWith(String(want));
        case '>':
          return cmp(v, (a, b) => a > b);
        case '<':
          return cmp(v, (a, b) => a < b);
        case '≥':
        case '>=':
          return cmp(v, (a, b) => a >= b);
        case '≤':
        case '<=':
          return cmp(v, (a, b) => a <= b);
        case 'empty':
          return s === '';
        case 'not empty':
          return s !== '';
        default:
          return false;
      }
    };
    return values.some(one);
  });
  return String(cond.logic ?? 'and').toLowerCase() === 'or' ? results.some(Boolean) : results.every(Boolean);
}

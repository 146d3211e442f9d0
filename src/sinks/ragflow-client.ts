import type { SinkRemoteState } from './sinks.table.js';
import type { SinkHttp, SinkCall } from './sink-http.js';
import { SinkDocumentError, SinkRefusedError, SinkUnavailableError } from './sink-errors.js';
import { carriesShortToken, shortToken, uploadPart, type Content, type ProcessingStatus, type RemoteDoc, type SinkDriver, type SinkMeta } from './sink-driver.js';

/**
 * RAGFlow's HTTP API (`{url}/api/v1`, v0.13 … v0.27; ../shared/kb/ragflow-dify.md §1). Almost every
 * error is HTTP 200 with a non-zero `code`, so every answer's code is checked here. Deletes name
 * exactly one id per call and refuse to go out without one: RAGFlow up to v0.24 deletes the whole
 * dataset when `ids` is empty or missing.
 */

interface Envelope {
  code: number;
  message: string;
  data: unknown;
}

interface RagDoc {
  id?: unknown;
  name?: unknown;
  run?: unknown;
  progress?: unknown;
  progress_msg?: unknown;
  meta_fields?: unknown;
  create_time?: unknown;
  size?: unknown;
}

const RUN_NAMES = ['UNSTART', 'RUNNING', 'CANCEL', 'DONE', 'FAIL', 'SCHEDULE'];
const PAGE_SIZE = 100;

/** The last line of a progress log, for a failure message. */
function lastLine(text: unknown): string {
  const lines = String(text ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  return (lines.at(-1) ?? '').slice(0, 300);
}

function metaOf(v: unknown): Record<string, string> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return {};
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (typeof x === 'string' || typeof x === 'number') out[k] = String(x);
  return out;
}

function remoteDoc(d: RagDoc): RemoteDoc | undefined {
  if (typeof d.id !== 'string' || typeof d.name !== 'string') return undefined;
  const size = typeof d.size === 'number' ? d.size : undefined;
  return { id: d.id, name: d.name, meta: metaOf(d.meta_fields), createdAt: Number(d.create_time ?? 0) || 0, ...(size === undefined ? {} : { size }) };
}

/** "… document …" errors are about a document; the rest of the 102s name the dataset. */
const aboutDocument = (message: string) => /document/i.test(message);
const missingDocument = (message: string) => /not found|don't own the document|doesn't own the document|do not own the document|not own the document/i.test(message);

export class RagflowClient implements SinkDriver {
  readonly replace = 'side-by-side' as const;
  private readonly ds: string;

  constructor(
    private readonly http: SinkHttp,
    datasetId: string,
    /** Shared with the delivery, which stores it: which update method this server takes. */
    private readonly state: SinkRemoteState,
  ) {
    this.ds = `/datasets/${encodeURIComponent(datasetId)}`;
  }

  private async call(c: SinkCall): Promise<Envelope> {
    const a = await this.http.send(c);
    if (a.status === 401) throw new SinkRefusedError('RAGFlow refused the API key (HTTP 401): create one under your avatar → API and PUT the sink again');
    const body = a.json as { code?: unknown; message?: unknown; data?: unknown } | undefined;
    if (!body || typeof body !== 'object' || typeof body.code !== 'number') {
      if (a.status === 413) throw new SinkDocumentError('RAGFlow (its proxy) refused the file as too large (HTTP 413): raise MAX_CONTENT_LENGTH / client_max_body_size');
      throw new SinkUnavailableError(`RAGFlow answered ${c.op} with HTTP ${a.status} and no RAGFlow JSON`);
    }
    const message = this.http.scrub(String(body.message ?? ''));
    const code = body.code;
    if (code === 0 && body.data === false && message) throw new SinkRefusedError(`RAGFlow refused the call: ${message}`);
    if (code === 108 || code === 109 || code === 401 || code === 403) throw new SinkRefusedError(`RAGFlow refused the API key or its permissions (code ${code}: ${message}); check the key and that it belongs to the dataset's owner`);
    if (code === 100) {
      if (/MethodNotAllowed|405/.test(message)) return { code, message, data: body.data };
      if (/NotFound|404/.test(message)) throw new SinkRefusedError(`RAGFlow has no route for ${c.op} (${message}): check the URL (the server's address, e.g. http://host:9380) and that RAGFlow is v0.13 or later`);
      throw new SinkUnavailableError(`RAGFlow failed on ${c.op} (code 100: ${message})`);
    }
    if (code === 102 && !aboutDocument(message) && /dataset/i.test(message)) {
      throw new SinkRefusedError(`RAGFlow cannot reach the dataset with this key (code 102: ${message}); check datasetId and that the key's account owns it`);
    }
    if (code === 105 || code === 106 || code === 103) throw new SinkUnavailableError(`RAGFlow is busy or failing (${c.op}, code ${code}: ${message})`);
    return { code, message, data: body.data };
  }

  private unexpected(op: string, e: Envelope): never {
    throw new SinkUnavailableError(`RAGFlow answered ${op} with code ${e.code}: ${e.message}`);
  }

  async create(name: string, content: Content): Promise<{ id: string; name: string }> {
    const form = new FormData();
    form.append('file', uploadPart(content), name);
    const e = await this.call({ method: 'POST', path: `${this.ds}/documents`, form, op: 'documents.upload' });
    const docs = Array.isArray(e.data) ? (e.data as RagDoc[]).map(remoteDoc).filter((d): d is RemoteDoc => d !== undefined) : [];
    // One file per call: with code 500 (v0.25+ partial success) a listed document did upload.
    if (docs.length > 0 && (e.code === 0 || e.code === 500)) return { id: docs[0]!.id, name: docs[0]!.name };
    if (e.code === 0) throw new SinkUnavailableError('RAGFlow answered the upload without a document');
    throw new SinkDocumentError(`RAGFlow refused the file (code ${e.code}: ${e.message})`);
  }

  async update(): Promise<'ok' | 'not_available' | 'missing'> {
    throw new Error('RAGFlow documents are replaced side by side, never updated in place');
  }

  async rename(): Promise<'ok' | 'not_available' | 'missing'> {
    throw new Error('RAGFlow renames through setMeta');
  }

  /** PATCH (v0.25+), falling back to PUT (≤ v0.24, and v0.25.2+ as an alias) on a 405; the method that worked is kept. */
  private async updateDoc(id: string, body: Record<string, unknown>): Promise<Envelope> {
    const path = `${this.ds}/documents/${encodeURIComponent(id)}`;
    const first = this.state.ragflowUpdate ?? 'PATCH';
    let e = await this.call({ method: first, path, json: body, op: 'documents.update' });
    if (e.code === 100) {
      const other = first === 'PATCH' ? 'PUT' : 'PATCH';
      e = await this.call({ method: other, path, json: body, op: 'documents.update' });
      if (e.code === 100) this.unexpected('documents.update', e);
      this.state.ragflowUpdate = other;
    }
    return e;
  }

  async setMeta(id: string, meta: SinkMeta, name?: string): Promise<'ok' | 'missing' | 'name_taken'> {
    const e = await this.updateDoc(id, name === undefined ? { meta_fields: meta } : { name, meta_fields: meta });
    if (e.code === 0) return 'ok';
    if (e.code === 102 && /duplicate/i.test(e.message)) {
      // Another document has the name (a stray copy): keep ours as it is named, metadata set.
      const again = await this.updateDoc(id, { meta_fields: meta });
      if (again.code === 0) return 'name_taken';
      if (again.code === 102 && missingDocument(again.message)) return 'missing';
      this.unexpected('documents.update', again);
    }
    if (e.code === 102 && missingDocument(e.message)) return 'missing';
    if (e.code === 101) throw new SinkDocumentError(`RAGFlow refused the name or metadata (code 101: ${e.message})`);
    this.unexpected('documents.update', e);
  }

  async startProcessing(id: string): Promise<'ok' | 'missing'> {
    const e = await this.call({ method: 'POST', path: `${this.ds}/chunks`, json: { document_ids: [id] }, op: 'chunks.parse' });
    if (e.code === 0) return 'ok';
    // An earlier call whose answer was lost started it already.
    if (e.code === 102 && /currently being processed/i.test(e.message)) return 'ok';
    if (e.code === 102 && missingDocument(e.message)) return 'missing';
    if (e.code === 101) throw new SinkDocumentError(`RAGFlow will not parse this dataset's documents (code 101: ${e.message})`);
    this.unexpected('chunks.parse', e);
  }

  private async get(id: string): Promise<RagDoc | undefined> {
    const e = await this.call({ method: 'GET', path: `${this.ds}/documents`, query: { id }, op: 'documents.list' });
    if (e.code === 102 && missingDocument(e.message)) return undefined;
    if (e.code !== 0) this.unexpected('documents.list', e);
    const docs = (e.data as { docs?: unknown } | undefined)?.docs;
    return Array.isArray(docs) ? (docs as RagDoc[]).find((d) => d.id === id) : undefined;
  }

  async status(id: string): Promise<ProcessingStatus> {
    const d = await this.get(id);
    if (!d) return { state: 'missing', remote: 'missing' };
    const raw = String(d.run ?? '').toUpperCase();
    const run = /^\d+$/.test(raw) ? (RUN_NAMES[Number(raw)] ?? raw) : raw;
    if (Number(d.progress) === -1 || run === 'FAIL') return { state: 'failed', remote: 'FAIL', error: lastLine(d.progress_msg) || 'parsing failed' };
    if (run === 'DONE') return { state: 'done', remote: 'DONE' };
    if (run === 'CANCEL') return { state: 'failed', remote: 'CANCEL', error: 'parsing was cancelled' };
    return { state: 'running', remote: run || 'UNKNOWN' };
  }

  async restart(id: string): Promise<'restarted' | 'recreate' | 'missing'> {
    const stop = await this.call({ method: 'DELETE', path: `${this.ds}/chunks`, json: { document_ids: [id] }, op: 'chunks.stop' });
    // "Can't stop … not started or already completed" / "progress at 0 or 1": not running, go on.
    if (stop.code === 102 && missingDocument(stop.message) && !/stop/i.test(stop.message)) return 'missing';
    if (stop.code !== 0 && stop.code !== 102) this.unexpected('chunks.stop', stop);
    const parse = await this.call({ method: 'POST', path: `${this.ds}/chunks`, json: { document_ids: [id] }, op: 'chunks.parse' });
    if (parse.code === 0) return 'restarted';
    // Still RUNNING and not stoppable (≤ v0.24 at progress 0): upload it again instead.
    if (parse.code === 102 && /currently being processed/i.test(parse.message)) return 'recreate';
    if (parse.code === 102 && missingDocument(parse.message)) return 'missing';
    this.unexpected('chunks.parse', parse);
  }

  async remove(id: string): Promise<'deleted' | 'missing' | 'busy' | 'kept'> {
    // Never an empty or missing id list: RAGFlow ≤ v0.24 would delete every document of the dataset.
    if (typeof id !== 'string' || id.trim() === '') throw new Error('refusing to send a RAGFlow delete without a document id');
    const e = await this.call({ method: 'DELETE', path: `${this.ds}/documents`, json: { ids: [id] }, op: 'documents.delete' });
    if (e.code === 0) return 'deleted';
    if (e.code === 102 && missingDocument(e.message)) return 'missing';
    this.unexpected('documents.delete', e);
  }

  private async page(query: Record<string, string | number | undefined>, page: number): Promise<{ total: number; docs: RemoteDoc[]; raw: number }> {
    const e = await this.call({
      method: 'GET',
      path: `${this.ds}/documents`,
      query: { ...query, page, page_size: PAGE_SIZE, orderby: 'create_time', desc: 'false' },
      op: 'documents.list',
    });
    if (e.code !== 0) this.unexpected('documents.list', e);
    const data = e.data as { total?: unknown; docs?: unknown } | undefined;
    const list = Array.isArray(data?.docs) ? (data.docs as RagDoc[]) : [];
    return { total: Number(data?.total ?? 0) || 0, docs: list.map(remoteDoc).filter((d): d is RemoteDoc => d !== undefined), raw: list.length };
  }

  private async *pages(query: Record<string, string | number | undefined>): AsyncIterable<RemoteDoc> {
    for (let page = 1, seen = 0; ; page += 1) {
      const p = await this.page(query, page);
      yield* p.docs;
      seen += p.raw;
      if (p.raw < PAGE_SIZE || seen >= p.total || page > 10_000) return;
    }
  }

  async findCandidates(token: string): Promise<RemoteDoc[]> {
    const out: RemoteDoc[] = [];
    // `keywords` is a case-insensitive substring of the name; a miss is an empty list, not a 102.
    for await (const d of this.pages({ keywords: shortToken(token) })) {
      if (carriesShortToken(d.name, token) && (d.meta.lark_token === undefined || d.meta.lark_token === token)) out.push(d);
    }
    return out;
  }

  listAll(): AsyncIterable<RemoteDoc> {
    return this.pages({});
  }
}

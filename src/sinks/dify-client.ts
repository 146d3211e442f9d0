import type { SinkRemoteState } from './sinks.table.js';
import type { SinkAnswer, SinkCall, SinkHttp } from './sink-http.js';
import { SinkBusyError, SinkDocumentError, SinkRefusedError, SinkUnavailableError } from './sink-errors.js';
import { carriesShortToken, shortToken, uploadPart, type Content, type ProcessingStatus, type RemoteDoc, type SinkDriver, type SinkMeta } from './sink-driver.js';

/**
 * Dify's Knowledge Service API (`{url}/datasets/…`, url ending in `/v1`; ../shared/kb/ragflow-dify.md §2).
 * Real HTTP statuses with `{ code, message, status }`. Documents are created by text (Markdown)
 * or by file, updated in place only while `display_status` is `available`, and carry larksync's
 * metadata fields (created once per knowledge base; Dify 1.1.0+). Lists use `limit` ≤ 100: above
 * it Dify caps silently and its `has_more` turns false.
 */

/** larksync's metadata fields in a Dify knowledge base. */
export const DIFY_FIELDS = ['lark_token', 'lark_hash', 'lark_path', 'lark_url'] as const;

const PAGE_LIMIT = 100;

interface DifyDoc {
  id?: unknown;
  name?: unknown;
  indexing_status?: unknown;
  display_status?: unknown;
  error?: unknown;
  created_at?: unknown;
  doc_metadata?: unknown;
  data_source_detail_dict?: { upload_file?: { size?: unknown } };
}

interface DifyError {
  status: number;
  code: string;
  message: string;
}

function metaOf(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(v)) return out;
  for (const m of v as Array<{ name?: unknown; value?: unknown }>) {
    if (typeof m?.name === 'string' && (typeof m.value === 'string' || typeof m.value === 'number')) out[m.name] = String(m.value);
  }
  return out;
}

function remoteDoc(d: DifyDoc): RemoteDoc | undefined {
  if (typeof d.id !== 'string' || typeof d.name !== 'string') return undefined;
  const size = d.data_source_detail_dict?.upload_file?.size;
  return { id: d.id, name: d.name, meta: metaOf(d.doc_metadata), createdAt: Number(d.created_at ?? 0) * 1000 || 0, ...(typeof size === 'number' ? { size } : {}) };
}

export class DifyClient implements SinkDriver {
  readonly replace = 'in-place' as const;
  private readonly ds: string;

  constructor(
    private readonly http: SinkHttp,
    datasetId: string,
    /** Shared with the delivery, which stores it: the metadata field ids, the dataset's settings. */
    private readonly state: SinkRemoteState,
  ) {
    this.ds = `/datasets/${encodeURIComponent(datasetId)}`;
  }

  /** The answer when it is a 2xx; otherwise the error, after raising those that concern the whole sink. */
  private async call(c: SinkCall): Promise<{ ok: true; a: SinkAnswer } | { ok: false; e: DifyError }> {
    const a = await this.http.send(c);
    if (a.status >= 200 && a.status < 300) return { ok: true, a };
    const body = (a.json ?? {}) as { code?: unknown; message?: unknown };
    const e: DifyError = { status: a.status, code: typeof body.code === 'string' ? body.code : '', message: this.http.scrub(String(body.message ?? '')) };
    if (a.status === 401) throw new SinkRefusedError(`Dify refused the API key (401: ${e.message}); use a knowledge-base key (dataset-…) from Knowledge → Service API`);
    if (a.status === 403) {
      // Dify Cloud's knowledge rate limit is a 403 whose message says so (§2.1).
      if (/rate limit/i.test(e.message)) throw new SinkUnavailableError(`Dify rate-limited ${c.op} (403: ${e.message})`);
      if (e.code === 'archived_document_immutable') return { ok: false, e };
      throw new SinkRefusedError(`Dify refused access (403: ${e.message}); switch on the knowledge base's Service API and check the key`);
    }
    if (a.status === 404 && /dataset/i.test(e.message)) throw new SinkRefusedError(`Dify knows no such knowledge base for this key (404: ${e.message}); check datasetId`);
    if (a.status === 405 || (a.status === 404 && e.code === 'not_found' && /requested URL/i.test(e.message))) {
      return { ok: false, e };
    }
    if (a.status === 429 || a.status >= 500 || !e.code) throw new SinkUnavailableError(`Dify answered ${c.op} with HTTP ${a.status}${e.code ? ` ${e.code}` : ''}`);
    if (a.status === 413 || a.status === 415) throw new SinkDocumentError(`Dify refused the file (${a.status} ${e.code}: ${e.message})`);
    return { ok: false, e };
  }

  private unexpected(op: string, e: DifyError): never {
    if (e.status === 400 && /indexing|another document metadata operation/i.test(e.message + e.code)) {
      throw new SinkBusyError(`Dify is busy with the document (${op}: ${e.message})`);
    }
    throw new SinkDocumentError(`Dify refused ${op} (${e.status} ${e.code}: ${e.message})`);
  }

  private static isMissing(e: DifyError): boolean {
    return e.status === 404 && !/requested URL/i.test(e.message);
  }

  /** The knowledge base's indexing technique and doc_form: a first document must carry one, doc_form must match. */
  private async dataset(): Promise<{ indexingTechnique: string | null; docForm: string | null }> {
    if (this.state.difyDataset?.indexingTechnique) return this.state.difyDataset;
    const r = await this.call({ method: 'GET', path: this.ds, op: 'datasets.get' });
    if (!r.ok) this.unexpected('datasets.get', r.e);
    const d = (r.a.json ?? {}) as { indexing_technique?: unknown; doc_form?: unknown };
    const info = {
      indexingTechnique: typeof d.indexing_technique === 'string' ? d.indexing_technique : null,
      docForm: typeof d.doc_form === 'string' ? d.doc_form : null,
    };
    this.state.difyDataset = info;
    return info;
  }

  /** Settings every create carries: an indexing technique for an empty knowledge base, its doc_form, a rule. */
  private async createArgs(): Promise<Record<string, unknown>> {
    const ds = await this.dataset();
    return {
      indexing_technique: ds.indexingTechnique ?? 'high_quality',
      ...(ds.docForm ? { doc_form: ds.docForm } : {}),
      process_rule: { mode: 'automatic' },
    };
  }

  async create(name: string, content: Content): Promise<{ id: string; name: string }> {
    const args = await this.createArgs();
    let r;
    if (content.blob !== undefined) {
      r = await this.call({ method: 'POST', path: `${this.ds}/document/create-by-text`, json: { name, text: await content.blob.text(), ...args }, op: 'documents.createByText' });
    } else {
      const form = new FormData();
      form.append('data', JSON.stringify(args));
      form.append('file', uploadPart(content), name);
      r = await this.call({ method: 'POST', path: `${this.ds}/document/create-by-file`, form, op: 'documents.createByFile' });
    }
    if (!r.ok) {
      // A same-name create onto a document that is indexing is accepted by Dify; anything else is the document's.
      this.unexpected('documents.create', r.e);
    }
    const d = remoteDoc(((r.a.json ?? {}) as { document?: DifyDoc }).document ?? {});
    if (!d) throw new SinkUnavailableError('Dify answered the create without a document');
    // The stored name is name[:200]; larksync's names are at most 200 characters.
    return { id: d.id, name: d.name };
  }

  async update(id: string, name: string, content: Content): Promise<'ok' | 'not_available' | 'missing'> {
    let r;
    if (content.blob !== undefined) {
      r = await this.call({ method: 'POST', path: `${this.ds}/documents/${encodeURIComponent(id)}/update-by-text`, json: { name, text: await content.blob.text() }, op: 'documents.updateByText' });
    } else {
      const form = new FormData();
      form.append('data', JSON.stringify({}));
      form.append('file', uploadPart(content), name);
      // POST update-by-file: every version has it (PATCH /documents/{id} only the newest).
      r = await this.call({ method: 'POST', path: `${this.ds}/documents/${encodeURIComponent(id)}/update-by-file`, form, op: 'documents.updateByFile' });
    }
    if (r.ok) return 'ok';
    if (DifyClient.isMissing(r.e)) return 'missing';
    if (r.e.status === 400 && /not available/i.test(r.e.message)) return 'not_available';
    this.unexpected('documents.update', r.e);
  }

  async rename(id: string, name: string): Promise<'ok' | 'not_available' | 'missing'> {
    const r = await this.call({ method: 'POST', path: `${this.ds}/documents/${encodeURIComponent(id)}/update-by-text`, json: { name }, op: 'documents.updateByText' });
    if (r.ok) return 'ok';
    if (DifyClient.isMissing(r.e)) return 'missing';
    if (r.e.status === 400 && /not available/i.test(r.e.message)) return 'not_available';
    this.unexpected('documents.rename', r.e);
  }

  /** The ids of larksync's metadata fields, created when missing; false when the server has no metadata API (< 1.1.0). */
  private async fields(): Promise<Record<string, string> | false> {
    const known = this.state.difyFields;
    if (known === false) return false;
    if (known && DIFY_FIELDS.every((f) => known[f])) return known;
    const list = await this.call({ method: 'GET', path: `${this.ds}/metadata`, op: 'metadata.list' });
    if (!list.ok) {
      if (list.e.status === 404 || list.e.status === 405) {
        this.state.difyFields = false;
        return false;
      }
      this.unexpected('metadata.list', list.e);
    }
    const ids: Record<string, string> = {};
    for (const f of ((list.a.json ?? {}) as { doc_metadata?: Array<{ id?: unknown; name?: unknown }> }).doc_metadata ?? []) {
      if (typeof f.id === 'string' && typeof f.name === 'string') ids[f.name] = f.id;
    }
    for (const name of DIFY_FIELDS) {
      if (ids[name]) continue;
      const made = await this.call({ method: 'POST', path: `${this.ds}/metadata`, json: { type: 'string', name }, op: 'metadata.create' });
      if (made.ok) {
        const id = (made.a.json as { id?: unknown } | undefined)?.id;
        if (typeof id === 'string') ids[name] = id;
        continue;
      }
      // Created meanwhile (an answer lost): read the list again next time.
      if (made.e.status === 400 && /exists/i.test(made.e.message)) throw new SinkBusyError('a Dify metadata field was created meanwhile; reading the fields again');
      this.unexpected('metadata.create', made.e);
    }
    this.state.difyFields = ids;
    return ids;
  }

  async setMeta(id: string, meta: SinkMeta): Promise<'ok' | 'missing' | 'name_taken'> {
    const fields = await this.fields();
    if (fields === false) return 'ok';
    const list = Object.entries(meta)
      .filter(([k]) => fields[k])
      .map(([name, value]) => ({ id: fields[name], name, value }));
    const r = await this.call({
      method: 'POST',
      path: `${this.ds}/documents/metadata`,
      json: { operation_data: [{ document_id: id, metadata_list: list, partial_update: false }] },
      op: 'metadata.set',
    });
    if (r.ok) return 'ok';
    if (DifyClient.isMissing(r.e) || (r.e.status === 400 && /document not found/i.test(r.e.message))) return 'missing';
    // A field deleted in the console: find the fields again next time.
    if (r.e.status === 400 && /metadata/i.test(r.e.message) && !/another/i.test(r.e.message)) this.state.difyFields = undefined;
    this.unexpected('metadata.set', r.e);
  }

  async startProcessing(): Promise<'ok' | 'missing'> {
    // Dify indexes on its own after a create or an update.
    return 'ok';
  }

  async status(id: string): Promise<ProcessingStatus> {
    const r = await this.call({ method: 'GET', path: `${this.ds}/documents/${encodeURIComponent(id)}`, query: { metadata: 'without' }, op: 'documents.get' });
    if (!r.ok) {
      if (DifyClient.isMissing(r.e)) return { state: 'missing', remote: 'missing' };
      this.unexpected('documents.get', r.e);
    }
    const d = (r.a.json ?? {}) as DifyDoc;
    const indexing = String(d.indexing_status ?? '');
    const display = String(d.display_status ?? '');
    if (indexing === 'error') return { state: 'failed', remote: 'error', error: String(d.error ?? 'indexing failed').slice(0, 300) };
    if (indexing === 'paused' || display === 'paused') return { state: 'failed', remote: 'paused', error: 'indexing was paused in the Dify console' };
    if (indexing === 'completed') {
      if (display === 'disabled' || display === 'archived') return { state: 'failed', remote: display, error: `the document is ${display} in Dify` };
      return { state: 'done', remote: 'completed', updatable: display === 'available' };
    }
    return { state: 'running', remote: indexing || display || 'unknown' };
  }

  async restart(): Promise<'restarted' | 'recreate' | 'missing'> {
    // The Service API has no retry or pause/resume of indexing: delete and create again.
    return 'recreate';
  }

  async remove(id: string): Promise<'deleted' | 'missing' | 'busy' | 'kept'> {
    const r = await this.call({ method: 'DELETE', path: `${this.ds}/documents/${encodeURIComponent(id)}`, op: 'documents.delete' });
    // 204 now; 200 {"result":"success"} or a body of 204 on older servers.
    if (r.ok) return 'deleted';
    if (DifyClient.isMissing(r.e)) return 'missing';
    if (r.e.status === 400 && r.e.code === 'document_indexing') return 'busy';
    if (r.e.code === 'archived_document_immutable') return 'kept';
    this.unexpected('documents.delete', r.e);
  }

  private async *pages(keyword?: string): AsyncIterable<RemoteDoc> {
    for (let page = 1, seen = 0; ; page += 1) {
      const r = await this.call({ method: 'GET', path: `${this.ds}/documents`, query: { page, limit: PAGE_LIMIT, keyword }, op: 'documents.list' });
      if (!r.ok) this.unexpected('documents.list', r.e);
      const body = (r.a.json ?? {}) as { data?: unknown; total?: unknown };
      const data = Array.isArray(body.data) ? (body.data as DifyDoc[]) : [];
      for (const d of data) {
        const doc = remoteDoc(d);
        if (doc) yield doc;
      }
      seen += data.length;
      // Paged by `total`: has_more is wrong whenever the server capped the limit.
      if (data.length === 0 || seen >= (Number(body.total) || 0) || page > 10_000) return;
    }
  }

  async findCandidates(token: string): Promise<RemoteDoc[]> {
    const out: RemoteDoc[] = [];
    // `keyword` is a SQL LIKE on the name; short tokens are letters and digits (no % or _).
    for await (const d of this.pages(shortToken(token))) {
      if (carriesShortToken(d.name, token) && (d.meta.lark_token === undefined || d.meta.lark_token === token)) out.push(d);
    }
    return out;
  }

  listAll(): AsyncIterable<RemoteDoc> {
    return this.pages();
  }
}

import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import type { Sealer } from '../crypto/sealer.js';
import type { Metrics } from '../metrics/metrics.js';
import { DifyClient } from './dify-client.js';
import { feedAhead, markdownBytes, readDocs, readFeed, readMarkdownBlob, tokensByShort, type DocState, type FeedPosition } from './docs-source.js';
import type { LarkFileDownload } from './lark-files.js';
import { msUntilSettled } from '../connectors/docs/edit-second.js';
import { RagflowClient } from './ragflow-client.js';
import { LarkFileError, SinkBusyError, SinkDocumentError, SinkRefusedError, SinkUnavailableError } from './sink-errors.js';
import { SinkHttp, defaultSinkHttpOptions, type SinkHttpOptions } from './sink-http.js';
import {
  SHORT_TOKEN_LENGTH,
  metaKey,
  sameUploadName,
  shortTokenOf,
  sinkDocumentName,
  type Content,
  type RemoteDoc,
  type SinkDriver,
  type SinkMeta,
} from './sink-driver.js';
import { apiBase, checkSinkUrlResolves } from './sink-url.js';
import { allDocs, dueDocs, getSink, intakePage, markChanged, namedByDocs, nextDue, saveDoc, sinkKeyContext } from './sinks.repository.js';
import type { SinkDocRow, SinkDocUpdate, SinkRemoteState, SinkRow } from './sinks.table.js';

/**
 * Delivers a tenant's Lark documents (docs_content) to one knowledge-base sink, each changed
 * document exactly once as one sink document.
 *
 * Progress is two things in Postgres: the sink's cursor on the docs_content feed, and a state row
 * per Lark document (sink_documents). A job first takes the feed past the cursor into the state
 * rows (a changed document gets a higher `want_version`; rows and cursor commit together), then
 * works through the rows that have something to do, each a small state machine:
 *
 *   idle ──create──► uploading ──(id known)──► processing ──(parsed/indexed)──► idle (promoted)
 *
 * Intent is stored before every remote step that creates something: `uploading` with the exact
 * name and hash before the upload, the id right after it. A crash at any point is recovered
 * without a duplicate: a row found `uploading` first lists the sink by its short token (RAGFlow
 * `keywords`, Dify `keyword`) and adopts the document that upload made, or deletes it
 * (`obsolete_ids`). Once an id is known, everything is done by id, never by name. Replaced
 * versions and orphans are deleted one id per call (RAGFlow ≤ v0.24 deletes the whole dataset
 * when a delete carries no ids; the client refuses to send one).
 *
 * RAGFlow has no content replace: the new version is uploaded next to the old one, its metadata
 * set and parsed, and only once it is DONE is the old one deleted (then it is renamed back if
 * RAGFlow named it `… (1).md`). Chosen over delete-then-upload because retrieval never has a gap
 * and a version that fails to parse leaves the old one serving. Dify updates a document in place
 * while it is `available`, and otherwise deletes and creates it again.
 *
 * A parse or indexing run is polled every `pollMs` without holding the job: other documents go
 * on meanwhile. One that runs past `parseTimeoutMs`, or fails, is stopped and started again (or
 * uploaded again) up to `maxRestarts` times, then the document is `failed` with the sink's error.
 * A sink that cannot be reached (network, 5xx, 429) makes the whole delivery back off
 * exponentially (`next_attempt_at`); the Lark side never waits for it. A failed document is
 * retried on its next change, or by POST …/sinks/{name}/reconcile.
 */

export interface DeliveryOptions {
  /** How long one job works before it makes way and queues its continuation. */
  sliceMs: number;
  /** How often a running parse / indexing is polled. */
  pollMs: number;
  /** A parse / indexing run taking longer than this is stuck: stopped and restarted. */
  parseTimeoutMs: number;
  /** Restarts of a stuck or failed parse before the document is marked failed. */
  maxRestarts: number;
  /** First wait after the sink failed; doubled per failed job up to backoffCapMs. */
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Failed steps in a row (no success between) after which the sink counts as down. */
  sinkDownAfter: number;
  /** First wait of a document after its own transient failure (doubled, up to a minute). */
  docRetryMs: number;
  /** After a create whose outcome is unknown, how long before the sink is listed for what it left (a slow server may still store it). */
  recoveryDelayMs: number;
  /** Documents taken per round. */
  batch: number;
  http: SinkHttpOptions;
}

/** Options as given to createServices / startLarksync: any subset, the HTTP ones too. */
export type DeliveryOverrides = Partial<Omit<DeliveryOptions, 'http'>> & { http?: Partial<SinkHttpOptions> };

export const defaultDeliveryOptions: DeliveryOptions = {
  sliceMs: 20_000,
  pollMs: 2_000,
  parseTimeoutMs: 15 * 60_000,
  maxRestarts: 2,
  backoffBaseMs: 5_000,
  backoffCapMs: 15 * 60_000,
  sinkDownAfter: 3,
  docRetryMs: 1_000,
  recoveryDelayMs: 5_000,
  batch: 50,
  http: defaultSinkHttpOptions,
};

export interface DeliveryDeps {
  db: Kysely<Database>;
  sealer: Sealer;
  download: LarkFileDownload;
  log: Logger;
  metrics: Metrics;
  /** http:// and private hosts allowed (no DATABASE_URL, or ALLOW_PRIVATE_SINKS=1). */
  allowPrivate: boolean;
}

export interface DeliveryOutcome {
  /** When to run again: work is left (now), documents are parsing (soon), or the sink backs off. */
  nextRunAt?: Date;
  /** Documents settled by this job (delivered, deleted, failed). */
  settled: number;
}

/** The sink row changed under the job (deleted, re-pointed): stop quietly. */
class StaleSink extends Error {}

/** continue: step again; settled: done with this version (its patch saved with it); wait: poll again later. */
type Step = 'continue' | { settled: SinkDocUpdate } | { wait: number };

interface Wanted {
  hash: string;
  name: string;
  meta: SinkMeta;
  metaKey: string;
}

interface Job {
  sink: SinkRow;
  driver: SinkDriver;
  state: SinkRemoteState;
  /** failed steps in a row */
  failures: number;
  settled: number;
  lastError?: string;
}

const FEED_PAGE = 500;
const MAX_STEPS_PER_VISIT = 24;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function extOf(doc: DocState): string {
  if (doc.format === 'markdown') return 'md';
  const fromName = /\.([A-Za-z0-9]{1,10})$/.exec(doc.file?.name ?? '')?.[1];
  if (fromName) return fromName.toLowerCase();
  const byMime: Record<string, string> = {
    'application/pdf': 'pdf',
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
    'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
    'text/plain': 'txt',
    'text/markdown': 'md',
    'text/csv': 'csv',
  };
  return byMime[doc.file?.mime ?? ''] ?? 'bin';
}

/** larksync's metadata on a sink document: scalar strings (RAGFlow splits list items on commas). */
function metaFor(doc: DocState, hash: string): SinkMeta {
  return { lark_token: doc.token, lark_hash: hash, lark_type: doc.objType ?? '', lark_path: doc.path ?? '', lark_url: doc.url ?? '' };
}

function wanted(doc: DocState): Wanted {
  const meta = metaFor(doc, doc.bodyHash);
  return { hash: doc.bodyHash, name: sinkDocumentName(doc.title, doc.token, extOf(doc)), meta, metaKey: metaKey(meta) };
}


export class SinkDelivery {
  constructor(
    private readonly deps: DeliveryDeps,
    readonly options: DeliveryOptions = defaultDeliveryOptions,
  ) {}

  /** One job for one sink: intake, then work until done, out of time, or the sink fails. */
  async run(tenantKey: string, name: string): Promise<DeliveryOutcome> {
    const { db } = this.deps;
    const sink = await getSink(db, tenantKey, name);
    if (!sink || !sink.enabled) return { settled: 0 };
    if (sink.next_attempt_at && sink.next_attempt_at.getTime() > Date.now()) return { nextRunAt: sink.next_attempt_at, settled: 0 };
    if (!(await namedByDocs(db, tenantKey, name))) return { settled: 0 };
    const state: SinkRemoteState = structuredClone(sink.remote_state ?? {});
    const stateBefore = JSON.stringify(state);
    let job: Job | undefined;
    try {
      const driver = await this.driverFor(sink, state);
      job = { sink, driver, state, failures: 0, settled: 0 };
      const outcome = await this.work(job);
      await db
        .updateTable('sinks')
        .set({ failures: 0, next_attempt_at: null, last_error: null, last_error_at: null, last_delivered_at: job.settled > 0 ? new Date() : sink.last_delivered_at, ...(JSON.stringify(state) !== stateBefore ? { remote_state: JSON.stringify(state) } : {}) })
        .where('tenant_key', '=', tenantKey)
        .where('name', '=', name)
        .where('generation', '=', sink.generation)
        .execute();
      return outcome;
    } catch (err) {
      if (err instanceof StaleSink) return { settled: job?.settled ?? 0 };
      if (!(err instanceof SinkUnavailableError) && !(err instanceof SinkRefusedError)) throw err;
      return this.backOff(sink, err, state, stateBefore, job?.settled ?? 0);
    }
  }

  private async backOff(sink: SinkRow, err: SinkUnavailableError | SinkRefusedError, state: SinkRemoteState, stateBefore: string, settled: number): Promise<DeliveryOutcome> {
    const failures = sink.failures + 1;
    const wait = Math.min(this.options.backoffCapMs, this.options.backoffBaseMs * 2 ** Math.min(20, failures - 1));
    const next = new Date(Date.now() + wait);
    await this.deps.db
      .updateTable('sinks')
      .set({
        failures,
        next_attempt_at: next,
        last_error: err.message.slice(0, 500),
        last_error_at: new Date(),
        ...(JSON.stringify(state) !== stateBefore ? { remote_state: JSON.stringify(state) } : {}),
      })
      .where('tenant_key', '=', sink.tenant_key)
      .where('name', '=', sink.name)
      .where('generation', '=', sink.generation)
      .execute();
    this.deps.metrics.sinkDeliveries.inc({ type: sink.type, outcome: err instanceof SinkRefusedError ? 'refused' : 'unavailable' });
    this.deps.log.warn({ tenantKey: sink.tenant_key, sink: sink.name, failures, retryInMs: wait, errMessage: err.message }, 'knowledge-base sink failed: delivery backs off');
    return { nextRunAt: next, settled };
  }

  private async driverFor(sink: SinkRow, state: SinkRemoteState): Promise<SinkDriver> {
    let apiKey: string;
    try {
      apiKey = this.deps.sealer.open(sink.api_key_sealed, sinkKeyContext(sink.tenant_key, sink.name));
    } catch {
      throw new SinkRefusedError('the stored API key cannot be opened with the configured ENCRYPTION_KEY; PUT the sink again with its apiKey');
    }
    const problem = await checkSinkUrlResolves(sink.url, this.deps.allowPrivate);
    if (problem) {
      if (/private/.test(problem)) throw new SinkRefusedError(`the sink URL ${problem}`);
      throw new SinkUnavailableError(`the sink URL ${problem}`);
    }
    const http = new SinkHttp(apiBase(sink.type, sink.url), apiKey, this.options.http, (op, outcome) =>
      this.deps.metrics.sinkCalls.inc({ type: sink.type, op, outcome }),
    );
    return sink.type === 'ragflow' ? new RagflowClient(http, sink.dataset_id, state) : new DifyClient(http, sink.dataset_id, state);
  }

  private async work(job: Job): Promise<DeliveryOutcome> {
    const { sink } = job;
    const deadline = Date.now() + this.options.sliceMs;
    if (sink.rebuild_requested) await this.rebuild(job);
    for (;;) {
      if (Date.now() > deadline) return { nextRunAt: new Date(), settled: job.settled };
      const more = await this.intake(job, deadline);
      const due = await dueDocs(this.deps.db, sink.tenant_key, sink.name, sink.generation, this.options.batch);
      if (due.length === 0) {
        if (more === 'more') continue;
        const waitingDoc = await nextDue(this.deps.db, sink.tenant_key, sink.name, sink.generation);
        // Changes behind the snapshot horizon are read once the transactions before them end.
        const horizon = more === 'behind_horizon' ? new Date(Date.now() + Math.max(this.options.pollMs, 200)) : undefined;
        const next = waitingDoc && horizon ? (waitingDoc < horizon ? waitingDoc : horizon) : (waitingDoc ?? horizon);
        if (!next) return { settled: job.settled };
        const wait = next.getTime() - Date.now();
        // Parses finishing soon are waited for here; later ones by a job queued for then.
        if (wait > Math.min(this.options.pollMs * 3, deadline - Date.now())) return { nextRunAt: next, settled: job.settled };
        await sleep(Math.max(10, wait));
        continue;
      }
      const docs = await readDocs(this.deps.db, sink.tenant_key, due.map((d) => d.doc_token));
      for (const row of due) {
        if (Date.now() > deadline) return { nextRunAt: new Date(), settled: job.settled };
        await this.visit(job, row, docs.get(row.doc_token));
      }
    }
  }

  /**
   * Takes the feed past the cursor into the state rows: `more` when it stopped with more to read,
   * `behind_horizon` when committed changes wait for older transactions to end, else `done`.
   */
  private async intake(job: Job, deadline: number): Promise<'more' | 'behind_horizon' | 'done'> {
    const { db } = this.deps;
    const { sink } = job;
    const key = { tenantKey: sink.tenant_key, name: sink.name, generation: sink.generation };
    for (;;) {
      const fresh = await getSink(db, sink.tenant_key, sink.name);
      if (!fresh || fresh.generation !== sink.generation || !fresh.enabled) throw new StaleSink();
      const from: FeedPosition = { xid: fresh.cursor_xid, seq: String(fresh.cursor_seq) };
      const page = await readFeed(db, sink.tenant_key, from, FEED_PAGE);
      if (page.length === 0) return (await feedAhead(db, sink.tenant_key, from)) ? 'behind_horizon' : 'done';
      const last = page.at(-1)!;
      if (!(await intakePage(db, key, from, { xid: last.xid, seq: last.seq }, page.map((e) => e.key)))) throw new StaleSink();
      if (page.length < FEED_PAGE) continue;
      if (Date.now() > deadline) return 'more';
    }
  }

  // ------------------------------------------------------------------ one document

  /** Steps one document until it is settled, waits (a parse, a busy sink) or fails for now. */
  private async visit(job: Job, row: SinkDocRow, doc: DocState | undefined): Promise<void> {
    const want = row.want_version;
    const state = { ...row, obsolete_ids: [...(row.obsolete_ids ?? [])] };
    const save = async (patch: SinkDocUpdate) => {
      const ok = await saveDoc(this.deps.db, { tenantKey: row.tenant_key, name: row.sink_name, token: row.doc_token, generation: row.generation }, patch);
      if (!ok) throw new StaleSink();
      Object.assign(state, patch);
    };
    const title = doc && doc.title !== state.title ? { title: doc.title } : {};
    for (let i = 0; i < MAX_STEPS_PER_VISIT; i += 1) {
      let step: Step;
      try {
        step = await this.step(job, state, doc, want, save);
        job.failures = 0;
      } catch (err) {
        if (err instanceof StaleSink || err instanceof SinkRefusedError) throw err;
        if (err instanceof SinkUnavailableError) {
          job.failures += 1;
          // A create that failed may still have happened: look for it a little later, and once more before done.
          const unsure = state.step === 'uploading';
          const delay = unsure ? Math.max(this.options.recoveryDelayMs, this.retryDelay(state.errors)) : this.retryDelay(state.errors);
          await save({ errors: state.errors + 1, next_check_at: new Date(Date.now() + delay), last_error: err.message.slice(0, 500), last_error_at: new Date(), ...(unsure ? { check_strays: true } : {}) });
          // Several failures in a row: the sink is down, the whole delivery backs off.
          if (job.failures >= this.options.sinkDownAfter) throw err;
          return;
        }
        if (err instanceof SinkBusyError) {
          await save({ next_check_at: new Date(Date.now() + this.options.pollMs), last_error: err.message.slice(0, 500) });
          return;
        }
        if (err instanceof LarkFileError && !err.permanent) {
          await save({ errors: state.errors + 1, next_check_at: new Date(Date.now() + this.retryDelay(state.errors)), last_error: err.message, last_error_at: new Date() });
          return;
        }
        if (err instanceof SinkDocumentError || err instanceof LarkFileError) {
          await this.fail(job, state, want, err.message, save);
          continue;
        }
        throw err;
      }
      if (step === 'continue') continue;
      if ('settled' in step) {
        await save({ ...step.settled, ...title, done_version: want, step: 'idle', errors: 0, next_check_at: null, process_started_at: null });
        job.settled += 1;
        return;
      }
      await save({ ...title, next_check_at: new Date(Date.now() + step.wait), errors: 0 });
      return;
    }
    // Far more steps than a delivery needs: look again later rather than spin.
    await save({ next_check_at: new Date(Date.now() + this.options.pollMs) });
  }

  /**
   * How long to wait before reading a running parse again: pollMs at first, then a fifth of the
   * time it has run so far (up to 30 s), so a parse of minutes costs a few dozen polls, not hundreds.
   */
  private pollDelay(elapsedMs: number): number {
    return Math.max(this.options.pollMs, Math.min(30_000, Math.round(elapsedMs / 5)));
  }

  private retryDelay(errors: number): number {
    return Math.min(60_000, this.options.docRetryMs * 2 ** Math.min(10, errors));
  }

  /** Gives the current version up: the document is `failed` until its next change (or a reconcile). */
  private async fail(job: Job, s: SinkDocRow, want: string, message: string, save: (p: SinkDocUpdate) => Promise<void>): Promise<void> {
    const patch: SinkDocUpdate = {
      status: 'failed',
      last_error: message.slice(0, 500),
      last_error_at: new Date(),
      done_version: want,
      step: 'idle',
      pending_id: null,
      pending_name: null,
      pending_hash: null,
      pending_meta: null,
      process_started_at: null,
    };
    if (s.pending_id) {
      if (job.driver.replace === 'side-by-side' && s.remote_id && s.remote_id !== s.pending_id) {
        // The old version keeps serving; the one that failed goes.
        patch.obsolete_ids = [...s.obsolete_ids, s.pending_id];
      } else {
        // The only sink document of this Lark document: kept (one per document), marked as not current.
        patch.remote_id = s.pending_id;
        patch.remote_name = s.pending_name;
        patch.pushed_hash = null;
        patch.pushed_meta = s.pending_meta;
      }
    }
    await save(patch);
    this.deps.metrics.sinkDocuments.inc({ type: job.sink.type, outcome: 'failed' });
    this.deps.log.warn({ tenantKey: s.tenant_key, sink: s.sink_name, docToken: s.doc_token, errMessage: message.slice(0, 300) }, 'document could not be delivered to the knowledge base; retried on its next change');
  }

  private async content(job: Job, doc: DocState): Promise<Content> {
    if (doc.format === 'markdown') {
      return { blob: await readMarkdownBlob(this.deps.db, job.sink.tenant_key, doc.token, 'text/markdown'), mime: 'text/markdown' };
    }
    // A file has no revision, and its version is known by its edit time alone (whole seconds): a
    // download in that second could miss a second upload of the same second, which no later
    // listing would show. So it waits for the second to be over (at most SETTLE_MS, and only for a
    // file edited just now).
    // Asked again after each sleep: a timer runs on the monotonic clock and can end a millisecond
    // before the wall clock reaches its target (CI: a download at ...935999 for a settle at ...936000).
    let wait: number;
    while ((wait = msUntilSettled(doc.editedTime, Date.now())) > 0) await sleep(wait);
    const file = await this.deps.download(job.sink.tenant_key, doc.file!.token);
    return { bytes: file.bytes, mime: doc.file?.mime ?? file.mime };
  }

  /** One step of the state machine (see the class comment); persists before it returns. */
  private async step(job: Job, s: SinkDocRow, doc: DocState | undefined, want: string, save: (p: SinkDocUpdate) => Promise<void>): Promise<Step> {
    const d = job.driver;
    const o = this.options;

    // 1. A create that may or may not have happened: find what it left in the sink.
    if (s.step === 'uploading') {
      const known = new Set([s.remote_id, s.pending_id, ...s.obsolete_ids].filter((x): x is string => !!x));
      const orphans = (await d.findCandidates(s.doc_token)).filter((c) => !known.has(c.id));
      const adopt = await this.adoptable(job, s, doc, orphans);
      const drop = orphans.filter((c) => c !== adopt).map((c) => c.id);
      const base: SinkDocUpdate = { obsolete_ids: [...s.obsolete_ids, ...drop], check_strays: true };
      if (adopt) {
        await save({
          ...base,
          step: 'processing',
          pending_id: adopt.id,
          pending_name: adopt.name,
          process_started_at: null,
          ...(d.replace === 'in-place' && !s.remote_id ? { remote_id: adopt.id, remote_name: adopt.name } : {}),
        });
      } else {
        await save({ ...base, step: 'idle', pending_name: null, pending_hash: null, pending_meta: null });
      }
      if (orphans.length > 0) this.deps.log.info({ tenantKey: s.tenant_key, sink: s.sink_name, docToken: s.doc_token, adopted: adopt ? 1 : 0, orphans: drop.length }, 'recovered an interrupted upload');
      return 'continue';
    }

    // 2. Sink documents that must go: replaced versions, orphans, a deleted page's.
    if (s.obsolete_ids.length > 0) {
      const id = s.obsolete_ids[0]!;
      const r = await d.remove(id);
      if (r === 'busy') return { wait: o.pollMs };
      await save({ obsolete_ids: s.obsolete_ids.slice(1), ...(r === 'kept' ? { last_error: `sink document ${id} could not be deleted (archived); remove it in the sink` } : {}) });
      return 'continue';
    }

    // A version given up on stays given up until the page changes again.
    if (s.status === 'failed' && BigInt(s.done_version) >= BigInt(want)) return { settled: {} };

    // 3. Gone from Lark (deleted, or moved out of the synced paths): gone from the sink.
    if (!doc || doc.deleted) {
      const ids = [...new Set([s.pending_id, s.remote_id].filter((x): x is string => !!x))];
      if (ids.length > 0) {
        await save({
          obsolete_ids: [...s.obsolete_ids, ...ids],
          remote_id: null,
          remote_name: null,
          pushed_hash: null,
          pushed_meta: null,
          pending_id: null,
          pending_name: null,
          pending_hash: null,
          pending_meta: null,
          process_started_at: null,
          remote_status: null,
          status: 'delivering',
        });
        return 'continue';
      }
      if (s.check_strays) {
        const keep = new Set(s.obsolete_ids);
        const strays = (await d.findCandidates(s.doc_token)).filter((c) => !keep.has(c.id)).map((c) => c.id);
        await save({ check_strays: false, obsolete_ids: [...s.obsolete_ids, ...strays] });
        return 'continue';
      }
      if (s.status === 'deleted') return { settled: {} };
      this.deps.metrics.sinkDocuments.inc({ type: job.sink.type, outcome: 'deleted' });
      return { settled: { status: 'deleted', last_error: null, delivered_at: new Date(), remote_status: null } };
    }

    const w = wanted(doc);

    // 4. A version on its way: start it, poll it, promote it, or restart it.
    if (s.pending_id) {
      if (d.replace === 'side-by-side' && s.pending_hash !== w.hash) {
        // Superseded before it was done: it goes, the newer version is uploaded.
        await save({ obsolete_ids: [...s.obsolete_ids, s.pending_id], pending_id: null, pending_name: null, pending_hash: null, pending_meta: null, step: 'idle', process_started_at: null });
        return 'continue';
      }
      if (!s.process_started_at) {
        const meta = metaFor(doc, s.pending_hash ?? w.hash);
        const m = await d.setMeta(s.pending_id, meta);
        if (m === 'missing' || (await d.startProcessing(s.pending_id)) === 'missing') return this.lostPending(s, save);
        await save({ process_started_at: new Date(), pending_meta: metaKey(meta), remote_status: 'queued', status: 'delivering' });
        return { wait: o.pollMs };
      }
      const st = await d.status(s.pending_id);
      if (st.state === 'missing') return this.lostPending(s, save);
      if (st.state === 'done') {
        await save({
          remote_id: s.pending_id,
          remote_name: s.pending_name,
          pushed_hash: s.pending_hash,
          pushed_meta: s.pending_meta,
          pending_id: null,
          pending_name: null,
          pending_hash: null,
          pending_meta: null,
          step: 'idle',
          process_started_at: null,
          remote_status: st.remote,
          ...(d.replace === 'side-by-side' && s.remote_id && s.remote_id !== s.pending_id ? { obsolete_ids: [...s.obsolete_ids, s.remote_id] } : {}),
        });
        return 'continue';
      }
      const elapsed = Date.now() - s.process_started_at.getTime();
      if (st.state === 'running' && elapsed < o.parseTimeoutMs) {
        if (st.remote !== s.remote_status) await save({ remote_status: st.remote });
        return { wait: this.pollDelay(elapsed) };
      }
      const reason = st.state === 'failed' ? `the sink failed to process the document: ${st.error ?? st.remote}` : `processing took longer than ${Math.round(o.parseTimeoutMs / 1000)} s (${st.remote})`;
      return this.restart(job, s, want, reason, save);
    }

    // 5. The sink holds this version: bring its name and metadata up to date.
    if (s.remote_id && s.pushed_hash === w.hash) {
      if (s.remote_name !== w.name) {
        if (d.replace === 'side-by-side') {
          const r = await d.setMeta(s.remote_id, w.meta, w.name);
          if (r === 'missing') return this.lostRemote(s, save);
          await save({ remote_name: r === 'name_taken' ? s.remote_name : w.name, pushed_meta: w.metaKey, ...(r === 'name_taken' ? { last_error: `another sink document is named ${w.name}` } : {}) });
          if (r === 'name_taken') return this.done(job, s, `another sink document is named ${w.name}`);
          return 'continue';
        }
        const r = await d.rename(s.remote_id, w.name);
        if (r === 'missing') return this.lostRemote(s, save);
        if (r === 'not_available') return this.whenAvailable(job, s, save);
        await save({ remote_name: w.name });
        return 'continue';
      }
      if (s.pushed_meta !== w.metaKey) {
        const r = await d.setMeta(s.remote_id, w.meta);
        if (r === 'missing') return this.lostRemote(s, save);
        await save({ pushed_meta: w.metaKey });
        return 'continue';
      }
      if (s.check_strays) {
        // A create of this page had an unknown outcome: a copy that reached the sink late goes now.
        const keep = new Set([s.remote_id, ...s.obsolete_ids]);
        const strays = (await d.findCandidates(s.doc_token)).filter((c) => !keep.has(c.id)).map((c) => c.id);
        await save({ check_strays: false, obsolete_ids: [...s.obsolete_ids, ...strays] });
        return 'continue';
      }
      return this.done(job, s);
    }

    // 6. A new version.
    if (d.replace === 'in-place' && s.remote_id) {
      const st = await d.status(s.remote_id);
      if (st.state === 'missing') return this.lostRemote(s, save);
      if (st.state === 'running') return this.whenAvailable(job, s, save);
      if (st.state === 'failed' || !st.updatable) {
        // error, paused, disabled, archived: Dify will not update it; delete it and create it again.
        await save({ obsolete_ids: [...s.obsolete_ids, s.remote_id], remote_id: null, remote_name: null, pushed_hash: null, pushed_meta: null, process_started_at: null });
        return 'continue';
      }
      const content = await this.content(job, doc);
      // Stored once it is known to have happened: an update that failed, or whose answer was
      // lost, is done again (when the document is available again; it only re-indexes the text).
      const r = await d.update(s.remote_id, w.name, content);
      if (r === 'missing') return this.lostRemote(s, save);
      if (r === 'not_available') return this.whenAvailable(job, s, save);
      await save({ step: 'processing', pending_id: s.remote_id, pending_name: w.name, pending_hash: w.hash, pending_meta: null, process_started_at: null, status: 'delivering', remote_status: 'updating', remote_name: w.name });
      return 'continue';
    }
    const content = await this.content(job, doc);
    await save({ step: 'uploading', pending_id: null, pending_name: w.name, pending_hash: w.hash, pending_meta: null, process_started_at: null, status: 'delivering', remote_status: 'uploading' });
    const made = await d.create(w.name, content);
    await save({
      step: 'processing',
      pending_id: made.id,
      pending_name: made.name,
      ...(d.replace === 'in-place' ? { remote_id: made.id, remote_name: made.name, pushed_hash: null, pushed_meta: null } : {}),
    });
    return 'continue';
  }

  private done(job: Job, s: SinkDocRow, note?: string): Step {
    this.deps.metrics.sinkDocuments.inc({ type: job.sink.type, outcome: 'delivered' });
    return { settled: { status: 'done', last_error: note ?? null, delivered_at: s.status === 'done' ? s.delivered_at : new Date(), restarts: 0 } };
  }

  /**
   * The one sink document an interrupted create left, if it can be taken as that version: exactly
   * one candidate with the name sent (or RAGFlow's `(n)` rename of it), for the version the page
   * still has, of its size when the sink tells it, its metadata (if any) naming that version.
   * Anything less certain is deleted and the version uploaded again.
   */
  private async adoptable(job: Job, s: SinkDocRow, doc: DocState | undefined, orphans: RemoteDoc[]): Promise<RemoteDoc | undefined> {
    if (!s.pending_name || !s.pending_hash || !doc || doc.deleted || doc.bodyHash !== s.pending_hash) return undefined;
    const named = orphans.filter((c) => sameUploadName(c.name, s.pending_name!) && (c.meta.lark_hash === undefined || c.meta.lark_hash === s.pending_hash));
    if (named.length !== 1) return undefined;
    const c = named[0]!;
    if (c.size !== undefined) {
      const size = doc.format === 'markdown' ? await markdownBytes(this.deps.db, job.sink.tenant_key, doc.token) : doc.file?.size;
      if (size === undefined || size === null || size !== c.size) return undefined;
    }
    return c;
  }

  /** The version on its way vanished from the sink (deleted there): start over. */
  private async lostPending(s: SinkDocRow, save: (p: SinkDocUpdate) => Promise<void>): Promise<Step> {
    const wasRemote = s.remote_id === s.pending_id;
    await save({
      pending_id: null,
      pending_name: null,
      pending_hash: null,
      pending_meta: null,
      step: 'idle',
      process_started_at: null,
      ...(wasRemote ? { remote_id: null, remote_name: null, pushed_hash: null, pushed_meta: null } : {}),
    });
    return 'continue';
  }

  /** The serving version vanished from the sink: the next step uploads it again. */
  private async lostRemote(s: SinkDocRow, save: (p: SinkDocUpdate) => Promise<void>): Promise<Step> {
    await save({ remote_id: null, remote_name: null, pushed_hash: null, pushed_meta: null });
    return 'continue';
  }

  /** Dify: the document is indexing; wait for it, up to the parse timeout, then create it anew. */
  private async whenAvailable(job: Job, s: SinkDocRow, save: (p: SinkDocUpdate) => Promise<void>): Promise<Step> {
    if (!s.process_started_at) {
      await save({ process_started_at: new Date() });
      return { wait: this.options.pollMs };
    }
    const elapsed = Date.now() - s.process_started_at.getTime();
    if (elapsed < this.options.parseTimeoutMs) return { wait: this.pollDelay(elapsed) };
    if (s.remote_id) {
      await save({ obsolete_ids: [...s.obsolete_ids, s.remote_id], remote_id: null, remote_name: null, pushed_hash: null, pushed_meta: null, process_started_at: null, restarts: s.restarts + 1 });
    }
    return 'continue';
  }

  private async restart(job: Job, s: SinkDocRow, want: string, reason: string, save: (p: SinkDocUpdate) => Promise<void>): Promise<Step> {
    if (s.restarts >= this.options.maxRestarts) {
      await this.fail(job, s, want, `${reason}; gave up after ${s.restarts} restart(s)`, save);
      return 'continue';
    }
    const r = await job.driver.restart(s.pending_id!);
    this.deps.log.info({ tenantKey: s.tenant_key, sink: s.sink_name, docToken: s.doc_token, restarts: s.restarts + 1, how: r, reason }, 'restarting a stuck or failed parse');
    if (r === 'missing') return this.lostPending(s, save);
    if (r === 'restarted') {
      await save({ restarts: s.restarts + 1, process_started_at: new Date(), remote_status: 'restarted', last_error: reason.slice(0, 500), last_error_at: new Date() });
      return { wait: this.options.pollMs };
    }
    // Not restartable in place: delete it and upload the version again.
    const wasRemote = s.remote_id === s.pending_id;
    await save({
      restarts: s.restarts + 1,
      obsolete_ids: [...s.obsolete_ids, s.pending_id!],
      pending_id: null,
      pending_name: null,
      pending_hash: null,
      pending_meta: null,
      step: 'idle',
      process_started_at: null,
      last_error: reason.slice(0, 500),
      last_error_at: new Date(),
      ...(wasRemote ? { remote_id: null, remote_name: null, pushed_hash: null, pushed_meta: null } : {}),
    });
    return 'continue';
  }

  // ------------------------------------------------------------------ rebuild

  /**
   * Lists the whole dataset and rebuilds the mapping from it: each sink document is matched to a
   * Lark document by its `lark_token` metadata (or, without metadata, by the short token in its
   * name), the mapped one is kept (or, when the mapping is stale, e.g. after a database restore,
   * the best match is adopted), extra copies are deleted. Then every document is checked again
   * (the cursor starts over). Runs when a sink is created and on POST …/reconcile.
   */
  private async rebuild(job: Job): Promise<void> {
    const { db } = this.deps;
    const { sink, driver } = job;
    const remote: RemoteDoc[] = [];
    for await (const d of driver.listAll()) remote.push(d);
    const needShort = [...new Set(remote.filter((d) => !d.meta.lark_token).map((d) => shortTokenOf(d.name)).filter((x): x is string => !!x))];
    const byShort = await tokensByShort(db, sink.tenant_key, needShort, SHORT_TOKEN_LENGTH);
    const groups = new Map<string, RemoteDoc[]>();
    for (const d of remote) {
      let token = d.meta.lark_token;
      if (!token) {
        const short = shortTokenOf(d.name);
        const matches = short ? (byShort.get(short) ?? []) : [];
        // Only a certain match: one document with this short token.
        if (matches.length === 1) token = matches[0];
      }
      if (token) groups.set(token, [...(groups.get(token) ?? []), d]);
    }
    const rows = new Map((await allDocs(db, sink.tenant_key, sink.name, sink.generation)).map((r) => [r.doc_token, r]));
    const current = await readDocs(db, sink.tenant_key, [...groups.keys()]);
    const key = { tenantKey: sink.tenant_key, name: sink.name, generation: sink.generation };
    let adopted = 0;
    let duplicates = 0;
    for (const token of new Set([...groups.keys(), ...rows.keys()])) {
      const docs = groups.get(token) ?? [];
      const row = rows.get(token);
      const ids = new Set(docs.map((d) => d.id));
      const pending = row?.pending_id && ids.has(row.pending_id) ? row.pending_id : null;
      let live = row?.remote_id && ids.has(row.remote_id) ? docs.find((d) => d.id === row.remote_id) : undefined;
      if (!live) {
        const body = current.get(token)?.bodyHash;
        const choices = docs.filter((d) => d.id !== pending).sort((a, b) => b.createdAt - a.createdAt);
        live = choices.find((d) => body !== undefined && d.meta.lark_hash === body) ?? choices[0];
        if (live) adopted += 1;
      }
      const keep = new Set([live?.id, pending, ...(row?.obsolete_ids ?? [])].filter((x): x is string => !!x));
      const extra = docs.filter((d) => !keep.has(d.id)).map((d) => d.id);
      duplicates += extra.length;
      const same = live !== undefined && live.id === row?.remote_id;
      // An adopted document's metadata is current when every lark_ field it holds has today's value.
      const doc = current.get(token);
      const want = doc && !doc.deleted ? wanted(doc) : undefined;
      const metaCurrent =
        live !== undefined && want !== undefined && live.meta.lark_token === token && live.meta.lark_hash !== undefined &&
        Object.entries(live.meta).every(([k, v]) => !k.startsWith('lark_') || want.meta[k] === v);
      const patch: SinkDocUpdate = {
        remote_id: live?.id ?? null,
        remote_name: live?.name ?? null,
        pushed_hash: same ? row!.pushed_hash : (live?.meta.lark_hash ?? null),
        pushed_meta: same ? row!.pushed_meta : metaCurrent ? want!.metaKey : null,
        obsolete_ids: [...(row?.obsolete_ids ?? []), ...extra],
        ...(row?.step === 'processing' && !pending ? { step: 'idle', pending_id: null, pending_name: null, pending_hash: null, pending_meta: null, process_started_at: null } : {}),
      };
      if (!row) await markChanged(db, key, [token]);
      if (!(await saveDoc(db, { ...key, token }, patch))) throw new StaleSink();
    }
    // Every document is looked at again: the feed is read from its start.
    const res = await db
      .updateTable('sinks')
      .set({ rebuild_requested: false, cursor_xid: '0', cursor_seq: '0', updated_at: new Date() })
      .where('tenant_key', '=', sink.tenant_key)
      .where('name', '=', sink.name)
      .where('generation', '=', sink.generation)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) throw new StaleSink();
    // Rows the feed will not bring again (tokens only the sink knew) are checked too.
    await markChanged(db, key, [...rows.keys(), ...groups.keys()]);
    this.deps.log.info({ tenantKey: sink.tenant_key, sink: sink.name, sinkDocuments: remote.length, larkDocuments: groups.size, adopted, duplicates }, 'rebuilt the sink mapping from a full listing');
  }
}

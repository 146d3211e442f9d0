import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';

/**
 * Shared machinery of the knowledge-base fakes (RagflowFake, DifyFake): a real Fastify server
 * with start()/stop() and `url` like the Lark simulator, a clock the parse/index model reads,
 * fault injection (one-off, seeded random, "sink down"), per-route latency, a call log and write
 * counters. The wire contracts live in ragflow.ts and dify.ts (../shared/kb/ragflow-dify.md).
 */

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The knowledge-base fakes' route name (call log, faults, latency). */
    kbRoute?: string;
  }
}

// ---------------------------------------------------------------- versions

/** `v0.24.0`, `0.24`, `1.1.0` → [major, minor, patch]. */
export function parseVersion(v: string): [number, number, number] {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(v.trim());
  if (!m) throw new Error(`kb fake: bad version ${v}`);
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

/** a >= b for version strings. */
export function versionAtLeast(a: string, b: string): boolean {
  const x = parseVersion(a);
  const y = parseVersion(b);
  for (let i = 0; i < 3; i += 1) {
    if ((x[i] as number) !== (y[i] as number)) return (x[i] as number) > (y[i] as number);
  }
  return true;
}

// ---------------------------------------------------------------- seeded random

/** mulberry32, the same generator as test/helpers/seeded-random.ts (kept local: simulator code does not import tests). */
export class KbRandom {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }
}

// ---------------------------------------------------------------- ids and small helpers

/** RAGFlow-style id: 32 hex digits shaped as a UUID1 (version nibble 1, RFC variant). */
export function uuid1Hex(): string {
  const h = randomBytes(16).toString('hex').split('');
  h[12] = '1';
  h[16] = '89ab'[Number.parseInt(h[16] as string, 16) & 3] as string;
  return h.join('');
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Extension after the last dot of the basename, lowercased, without the dot ('' when none). */
export function extOf(name: string): string {
  const base = name.split('/').pop() ?? name;
  const i = base.lastIndexOf('.');
  return i > 0 ? base.slice(i + 1).toLowerCase() : '';
}

// ---------------------------------------------------------------- faults

/**
 * What an injected fault does to a call:
 * - `unavailable` / `bad_gateway`: the reverse proxy's 503 / 502 HTML page (nginx in front of
 *   both products' docker deployments);
 * - `reset`: the TCP connection is destroyed without an answer;
 * - `stall`: no answer until the client gives up (or the fake stops);
 * - `error`: the product's own internal error (RAGFlow: HTTP 200 `code:100`; Dify: 500
 *   `internal_server_error`);
 * - `rate_limited`: Dify 429 `too_many_requests` (RAGFlow has no rate limit: treated as `unavailable`);
 * - `cloud_rate_limit`: Dify Cloud's 403 `forbidden` knowledge rate limit (RAGFlow: `unavailable`);
 * - `custom`: `status` + `body` as given.
 */
export type FaultKind = 'unavailable' | 'bad_gateway' | 'reset' | 'stall' | 'error' | 'rate_limited' | 'cloud_rate_limit' | 'custom';

export interface KbFault {
  /** Route name (`documents.upload`, see each fake's route list) or '*' (default) for any call. */
  route?: string;
  method?: string;
  kind: FaultKind;
  /**
   * 'before' (default): the call has no effect. 'after': the call is fully handled (the document
   * is stored, deleted, …) and only the answer is lost or replaced — the "did it happen?" case.
   */
  when?: 'before' | 'after';
  /** Extra wait before the fault answers. */
  delayMs?: number;
  /** How many calls it applies to (default 1; Infinity for all). */
  count?: number;
  status?: number;
  body?: unknown;
  message?: string;
}

export interface RandomFaultOptions {
  seed: number;
  /** Probability per call (default 0.05). */
  rate?: number;
  kinds?: FaultKind[];
  /** Only these routes (default all). */
  routes?: string[];
  /** 'before', 'after' or 'mixed' (each fault draws one; default 'before'). */
  when?: 'before' | 'after' | 'mixed';
}

export interface FaultAnswer {
  status: number;
  body: string;
  contentType: string;
}

/** nginx's error page, what a proxy in front of a down backend answers. */
export function nginxPage(status: 502 | 503 | 504 | 413 | 429): FaultAnswer {
  const text: Record<number, string> = {
    413: '413 Request Entity Too Large',
    429: '429 Too Many Requests',
    502: '502 Bad Gateway',
    503: '503 Service Temporarily Unavailable',
    504: '504 Gateway Time-out',
  };
  const t = text[status] as string;
  return {
    status,
    contentType: 'text/html',
    body: `<html>\r\n<head><title>${t}</title></head>\r\n<body>\r\n<center><h1>${t}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`,
  };
}

// ---------------------------------------------------------------- parse / index jobs

/** A rule deciding how the next parse (RAGFlow) / indexing run (Dify) of matching documents ends. */
export interface ParseRule {
  /** Match by document id, exact name or name pattern, dataset; all given must match (none = every document). */
  documentId?: string;
  name?: string | RegExp;
  datasetId?: string;
  /** Applies with this probability (seeded generator; default 1). */
  rate?: number;
  outcome: 'hang' | 'fail';
  /** How many runs it applies to (default Infinity). */
  times?: number;
  /** Progress fraction where a hanging run stops moving (default 0: "Task is queued…" / queuing). */
  hangAt?: number;
  /** Failure message (progress_msg / error). */
  message?: string;
}

export interface Job {
  startedAt: number;
  durationMs: number;
  outcome: 'done' | 'fail' | 'hang';
  hangAt: number;
  message?: string;
}

/** Fraction of the run done at `now` (a hanging run freezes at hangAt; a failing one fails at the end). */
export function jobFraction(job: Job, now: number): number {
  const f = job.durationMs <= 0 ? 1 : Math.min(1, Math.max(0, (now - job.startedAt) / job.durationMs));
  return job.outcome === 'hang' ? Math.min(f, job.hangAt) : f;
}

export const jobFinished = (job: Job, now: number) => job.outcome !== 'hang' && now >= job.startedAt + job.durationMs;

// ---------------------------------------------------------------- call log, writes

export interface KbCall {
  method: string;
  path: string;
  /** The fake's route name, or 'unknown'. */
  route: string;
  status: number;
  /** RAGFlow: the numeric body `code`; Dify: the string error `code` (undefined on success). */
  code: number | string | undefined;
  at: number;
  /** The injected fault, when one answered this call. */
  fault?: FaultKind | 'down';
}

export type WriteOp =
  | 'create'
  | 'upsert'
  | 'update-content'
  | 'rename'
  | 'metadata'
  | 'enable'
  | 'disable'
  | 'archive'
  | 'un_archive'
  | 'chunk-method'
  | 'delete'
  | 'parse'
  | 'stop';

export interface WriteRecord {
  op: WriteOp;
  datasetId: string;
  documentId: string;
  name: string;
  at: number;
}

export interface WriteCounts {
  /** Documents stored by upload/create calls (new documents, and Dify's same-name upserts). */
  uploads: number;
  /** Changes applied to existing documents (rename, metadata, enable/disable, content update, chunk method). */
  updates: number;
  /** Documents deleted. */
  deletes: number;
  /** RAGFlow parse triggers / stops accepted per document. */
  parses: number;
  stops: number;
}

// ---------------------------------------------------------------- multipart

export interface UploadedFile {
  field: string;
  filename: string;
  mimetype: string;
  data: Buffer;
}

export interface MultipartBody {
  files: UploadedFile[];
  fields: Record<string, string[]>;
}

/** Reads a whole multipart body (files in memory: these are test fakes). */
export async function readMultipart(req: FastifyRequest): Promise<MultipartBody> {
  const out: MultipartBody = { files: [], fields: {} };
  for await (const part of req.parts()) {
    if (part.type === 'file') {
      out.files.push({ field: part.fieldname, filename: part.filename, mimetype: part.mimetype, data: await part.toBuffer() });
    } else {
      (out.fields[part.fieldname] ??= []).push(String(part.value));
    }
  }
  return out;
}

// ---------------------------------------------------------------- base

export interface KbBaseOptions {
  port?: number;
  host?: string;
  /** The clock of the parse/index model and of timestamps (ms since the epoch; default Date.now). */
  clock?: () => number;
  /** Latency added to every call (ms). */
  latencyMs?: number;
  /** Seed of the generator behind rate-based parse rules (random faults take their own seed). */
  seed?: number;
}

type RouteConfig = { kbRoute?: string };
type KbReq = FastifyRequest & { kbFault?: ActiveFault; kbFaultKind?: FaultKind | 'down' };

interface ActiveFault extends KbFault {
  remaining: number;
}

export abstract class KbFakeBase {
  readonly app: FastifyInstance;
  url = '';
  readonly calls: KbCall[] = [];
  readonly writeLog: WriteRecord[] = [];
  readonly writes: WriteCounts = { uploads: 0, updates: 0, deletes: 0, parses: 0, stops: 0 };
  protected readonly rng: KbRandom;
  private readonly clock: () => number;
  private clockOffsetMs = 0;
  private readonly faults: ActiveFault[] = [];
  private randomFaultPlan: (RandomFaultOptions & { rng: KbRandom }) | undefined;
  private readonly latency = new Map<string, number>();
  private readonly answerDelay = new Map<string, number>();
  private parseRules: Array<ParseRule & { remaining: number }> = [];
  private downState: { mode: 'unavailable'; until: number } | { mode: 'refused' } | undefined;
  private upTimer: NodeJS.Timeout | undefined;
  private readonly stalled = new Set<() => void>();
  private readonly listenOpts: { port: number; host: string };
  private boundPort = 0;

  protected constructor(opts: KbBaseOptions) {
    this.clock = opts.clock ?? Date.now;
    this.rng = new KbRandom(opts.seed ?? 1);
    this.listenOpts = { port: opts.port ?? 0, host: opts.host ?? '127.0.0.1' };
    if (opts.latencyMs) this.latency.set('*', opts.latencyMs);
    this.app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
    void this.app.register(multipart, {
      // @fastify/busboy decodes `filename` parameters as UTF-8 (Chinese Lark titles).
      limits: { fileSize: 2 * 1024 * 1024 * 1024, files: 10_000, fields: 1_000, fieldSize: 16 * 1024 * 1024, parts: 20_000 },
    });
    // JSON that tolerates an empty body (DELETE without a body is a case the fakes must see).
    this.app.removeContentTypeParser('application/json');
    this.app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
      const text = String(body);
      if (text.trim() === '') return done(null, undefined);
      try {
        done(null, JSON.parse(text));
      } catch {
        done(Object.assign(new Error('bad json'), { kbBadJson: true, statusCode: 400 }), undefined);
      }
    });
    this.installHooks();
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<string> {
    const address = await this.app.listen(this.listenOpts);
    this.url = address.replace('[::1]', '127.0.0.1');
    this.boundPort = Number(new URL(this.url).port);
    return this.url;
  }

  async stop(): Promise<void> {
    clearTimeout(this.upTimer);
    for (const release of this.stalled) release();
    if (this.downState?.mode === 'refused') {
      // The listener is already closed; reopen it so Fastify's close() finds what it expects.
      await this.up();
    }
    // Held (stalled) calls and keep-alive sockets must not hold the close up.
    const closing = this.app.close();
    this.app.server.closeAllConnections();
    await closing;
  }

  now(): number {
    return this.clock() + this.clockOffsetMs;
  }

  /** Moves the fake's clock forward (parse/index progress, down windows) without waiting. */
  advanceTime(ms: number): void {
    this.clockOffsetMs += ms;
  }

  // ---------------------------------------------------------------- faults

  injectFault(fault: KbFault): void {
    this.faults.push({ ...fault, remaining: fault.count ?? 1 });
  }

  clearFaults(): void {
    this.faults.length = 0;
    this.randomFaultPlan = undefined;
  }

  /** Each later call fails with probability `rate` (default 5 %), drawn from a generator seeded with `seed`. */
  randomFaults(opts: RandomFaultOptions): void {
    this.randomFaultPlan = { ...opts, rng: new KbRandom(opts.seed) };
  }

  stopRandomFaults(): void {
    this.randomFaultPlan = undefined;
  }

  /** Adds latency to calls of one route, or to all ('*'); 0 removes it. */
  setLatency(ms: number, route = '*'): void {
    if (ms > 0) this.latency.set(route, ms);
    else this.latency.delete(route);
  }

  /**
   * Holds the answer of a route (or all, '*') this long after the call took effect: the window
   * in which a client that dies (or times out) has changed the sink without learning the outcome.
   */
  setAnswerDelay(ms: number, route = '*'): void {
    if (ms > 0) this.answerDelay.set(route, ms);
    else this.answerDelay.delete(route);
  }

  /**
   * Takes the sink down: 'refused' closes the listening socket (clients get ECONNREFUSED; `forMs`
   * runs on real time), 'unavailable' answers every call with the proxy's 503 page (`forMs` runs
   * on the fake's clock, so advanceTime ends it). Without `forMs` it stays down until up().
   */
  async down(opts: { mode: 'refused' | 'unavailable'; forMs?: number }): Promise<void> {
    clearTimeout(this.upTimer);
    if (opts.mode === 'unavailable') {
      if (this.downState?.mode === 'refused') await this.up();
      this.downState = { mode: 'unavailable', until: opts.forMs === undefined ? Infinity : this.now() + opts.forMs };
      return;
    }
    if (this.downState?.mode !== 'refused') {
      const server = this.app.server;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      this.downState = { mode: 'refused' };
    }
    if (opts.forMs !== undefined) {
      this.upTimer = setTimeout(() => void this.up(), opts.forMs);
      this.upTimer.unref();
    }
  }

  async up(): Promise<void> {
    clearTimeout(this.upTimer);
    if (this.downState?.mode === 'refused') {
      const server = this.app.server;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: this.boundPort, host: this.listenOpts.host }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    }
    this.downState = undefined;
  }

  isDown(): boolean {
    const s = this.downState;
    return s !== undefined && (s.mode === 'refused' || this.now() < s.until);
  }

  /** The product's answer to a fault kind. */
  protected abstract faultAnswer(kind: FaultKind, fault: KbFault | undefined): FaultAnswer;

  // ---------------------------------------------------------------- parse rules

  addParseRule(rule: ParseRule): void {
    this.parseRules.push({ ...rule, remaining: rule.times ?? Infinity });
  }

  /** Parses/indexing runs of matching documents never finish (until the rule is used up or cleared). */
  hangParse(match: Omit<ParseRule, 'outcome'> = {}): void {
    this.addParseRule({ ...match, outcome: 'hang' });
  }

  failParse(match: Omit<ParseRule, 'outcome'> = {}): void {
    this.addParseRule({ ...match, outcome: 'fail' });
  }

  clearParseRules(): void {
    this.parseRules = [];
  }

  /** The outcome of a run that starts now for this document (consumes matching rules). */
  protected drawOutcome(doc: { id: string; name: string; datasetId: string }): { outcome: Job['outcome']; hangAt: number; message?: string } {
    for (const rule of this.parseRules) {
      if (rule.remaining <= 0) continue;
      if (rule.documentId !== undefined && rule.documentId !== doc.id) continue;
      if (rule.datasetId !== undefined && rule.datasetId !== doc.datasetId) continue;
      if (rule.name !== undefined && (typeof rule.name === 'string' ? rule.name !== doc.name : !rule.name.test(doc.name))) continue;
      if (rule.rate !== undefined && !this.rng.chance(rule.rate)) continue;
      rule.remaining -= 1;
      return { outcome: rule.outcome, hangAt: rule.hangAt ?? 0, message: rule.message };
    }
    return { outcome: 'done', hangAt: 0 };
  }

  // ---------------------------------------------------------------- counting

  /** Calls to a route (all routes when omitted), optionally only those with this HTTP status or body code. */
  count(route?: string, filter: { status?: number; code?: number | string; method?: string } = {}): number {
    return this.calls.filter(
      (c) =>
        (route === undefined || c.route === route) &&
        (filter.status === undefined || c.status === filter.status) &&
        (filter.code === undefined || c.code === filter.code) &&
        (filter.method === undefined || c.method === filter.method),
    ).length;
  }

  /** Calls by route name. */
  countsByRoute(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.calls) out[c.route] = (out[c.route] ?? 0) + 1;
    return out;
  }

  resetCounts(): void {
    this.calls.length = 0;
    this.writeLog.length = 0;
    Object.assign(this.writes, { uploads: 0, updates: 0, deletes: 0, parses: 0, stops: 0 });
  }

  protected recordWrite(op: WriteOp, doc: { id: string; datasetId: string; name: string }): void {
    this.writeLog.push({ op, datasetId: doc.datasetId, documentId: doc.id, name: doc.name, at: this.now() });
    if (op === 'create' || op === 'upsert') this.writes.uploads += 1;
    else if (op === 'delete') this.writes.deletes += 1;
    else if (op === 'parse') this.writes.parses += 1;
    else if (op === 'stop') this.writes.stops += 1;
    else this.writes.updates += 1;
  }

  // ---------------------------------------------------------------- hooks

  protected routeName(req: FastifyRequest): string {
    return (req.routeOptions.config as RouteConfig | undefined)?.kbRoute ?? 'unknown';
  }

  private pickFault(req: FastifyRequest): ActiveFault | undefined {
    const route = this.routeName(req);
    const fixed = this.faults.find(
      (f) => f.remaining > 0 && (f.route === undefined || f.route === '*' || f.route === route) && (f.method === undefined || f.method.toUpperCase() === req.method),
    );
    if (fixed) {
      fixed.remaining -= 1;
      return fixed;
    }
    const plan = this.randomFaultPlan;
    if (!plan || (plan.routes && !plan.routes.includes(route))) return undefined;
    if (!plan.rng.chance(plan.rate ?? 0.05)) return undefined;
    const kind = plan.rng.pick<FaultKind>(plan.kinds ?? ['unavailable', 'error', 'reset']);
    const when = plan.when === 'mixed' ? (plan.rng.chance(0.5) ? 'after' : 'before') : (plan.when ?? 'before');
    return { kind, when, remaining: 0 };
  }

  /** Holds a call until its client goes away or the fake stops. */
  private async stall(req: FastifyRequest): Promise<void> {
    await new Promise<void>((resolve) => {
      const release = () => {
        this.stalled.delete(release);
        resolve();
      };
      this.stalled.add(release);
      req.raw.socket.once('close', release);
    });
  }

  private sendFault(reply: FastifyReply, kind: FaultKind, fault: KbFault | undefined) {
    const a = this.faultAnswer(kind, fault);
    return reply.code(a.status).header('content-type', a.contentType).send(a.body);
  }

  private installHooks(): void {
    const app = this.app;

    app.addHook('onRequest', async (req, reply) => {
      const r = req as KbReq;
      const route = this.routeName(req);
      const wait = (this.latency.get(route) ?? 0) + (this.latency.get('*') ?? 0);
      if (wait > 0) await sleep(wait);
      if (this.isDown()) {
        r.kbFaultKind = 'down';
        return this.sendFault(reply, 'unavailable', undefined);
      }
      const fault = this.pickFault(req);
      if (!fault) return;
      r.kbFaultKind = fault.kind;
      if (fault.delayMs) await sleep(fault.delayMs);
      if (fault.when === 'after') {
        r.kbFault = fault;
        return;
      }
      if (fault.kind === 'stall') {
        await this.stall(req);
        this.logCall(req, 0, undefined);
        req.raw.socket.destroy();
        return reply.hijack();
      }
      if (fault.kind === 'reset') {
        this.logCall(req, 0, undefined);
        req.raw.socket.destroy();
        return reply.hijack();
      }
      return this.sendFault(reply, fault.kind, fault);
    });

    app.addHook('onSend', async (req, reply, payload) => {
      const r = req as KbReq;
      const hold = (this.answerDelay.get(this.routeName(req)) ?? 0) + (this.answerDelay.get('*') ?? 0);
      if (hold > 0) await sleep(hold);
      const after = r.kbFault;
      if (after) {
        r.kbFault = undefined;
        if (after.kind === 'reset' || after.kind === 'stall') {
          if (after.kind === 'stall') await this.stall(req);
          this.logCall(req, 0, undefined);
          req.raw.socket.destroy();
          return payload;
        }
        const a = this.faultAnswer(after.kind, after);
        reply.code(a.status).header('content-type', a.contentType);
        this.logCall(req, a.status, codeOf(a.body));
        return a.body;
      }
      this.logCall(req, reply.statusCode, codeOf(payload));
      return payload;
    });
  }

  private logCall(req: FastifyRequest, status: number, code: number | string | undefined): void {
    const kind = (req as KbReq).kbFaultKind;
    this.calls.push({
      method: req.method,
      path: req.url.split('?')[0] ?? '',
      route: this.routeName(req),
      status,
      code,
      at: this.now(),
      ...(kind ? { fault: kind } : {}),
    });
  }
}

/** The `code` of a JSON answer, if any. */
function codeOf(payload: unknown): number | string | undefined {
  if (typeof payload !== 'string' || payload.length > 1_000_000 || !payload.startsWith('{')) return undefined;
  try {
    const code = (JSON.parse(payload) as { code?: unknown }).code;
    return typeof code === 'number' || typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** Route config for a named route. */
export const named = (kbRoute: string) => ({ config: { kbRoute } });

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TenantIdentity } from '../../lark-simulator.js';
import { admitCall, larkReply, type DataApiContext } from '../support.js';
import { larkReplyText } from '../../lark-reply.js';
import { locateTable } from './routes.js';
import type { BitableTenant } from './seed.js';
import type { SimBitablePerson, SimTable } from './table.js';
import { PendingOptions, WriteError, convertFields, type ValueContext } from './values.js';
import type { BitableWriteOptions, InFlightCall, WriteApi, WriteFault } from './writes.js';

/**
 * Base record writes (../shared/lark/bitable-writes.md §6, bitable.md §1, §2.7, §3, §5,
 * corrections.md), under `/open-apis/bitable/v1/apps/:app_token/tables/:table_id`:
 *
 * | call | body | answer `data` |
 * |---|---|---|
 * | `POST /records` | `{fields}` | `{record: {record_id, fields}}` |
 * | `PUT /records/:record_id` | `{fields}` | `{record: {record_id, fields}}` |
 * | `DELETE /records/:record_id` | — | `{deleted: true, record_id}` |
 * | `POST /records/batch_create` | `{records: [{fields}]}` (1–1,000) | `{records: [{record_id, fields}]}` |
 * | `POST /records/batch_update` | `{records: [{record_id, fields}]}` (1–1,000) | `{records: [{record_id, fields}]}` |
 * | `POST /records/batch_delete` | `{records: ["rec…"]}` (1–500) | `{records: [{deleted: true, record_id}]}` |
 *
 * `fields` in an answer are the values as written (Lark's batch_create example echoes the request);
 * reads (search, batch_get) show them in read shape at once: the same SimTable. The single-record
 * answer shapes (`record`, `deleted`) are not in the notes; they follow the batch ones.
 *
 * Rules, in the order a call meets them:
 * 1. token, then the documented 50 requests/s per API, app and tenant (corrections.md): HTTP 429
 *    99991400 over it; an injected Base throttle (BitableTenant.injectThrottle) answers 1254290.
 * 2. `user_id_type` (open_id | union_id | user_id, default open_id) else 1254001; `client_token`
 *    not a UUIDv4 → 1254037 (HTTP 400) (empty = none); `ignore_consistency_check` is "true" or not.
 * 3. unknown Base 1254040, table 1254041, unreadable table 91403 (HTTP 403), as reads; a table
 *    the caller may not edit (`writeDenied`) also 91403 (HTTP 403).
 * 4. one write call at a time per Base (corrections.md): a call arriving while another write call
 *    on the same Base is in progress counts as an overlap and answers 1254291 "Write conflict"
 *    (HTTP 200) — or 1254608 (HTTP 403) when the call in progress has the same client_token (the
 *    same request submitted twice at once). With `ignore_consistency_check=true` the documented
 *    mitigation applies: the call goes ahead alongside (still counted as an overlap).
 * 5. the body: 1254001 when malformed or empty, 1254104 over 1,000 records (500 ids for delete).
 * 6. the call holds the Base until its latency (options.latencyMs + perRecordLatencyMs × records)
 *    has passed since the request arrived, and is answered then. Its records are applied (7-9)
 *    when it enters the Base: the simulator's own work (reading, validating and applying a
 *    1,000-record body takes it 20-50 ms of CPU on a busy machine) is part of that time, as
 *    Lark's own work is part of Lark's, instead of being added to it; readers may see the records
 *    before the answer.
 * 7. client_token (create, batch_create, batch_update and PUT; deletes only with
 *    clientTokenOnDeletes): a token that already succeeded answers that first `data` again without
 *    writing (the notes leave the repeat's answer open: the tolerant choice), the same token with
 *    another request (API, table, record, body, user_id_type or caller) 1255006 (HTTP 400). A call
 *    that failed does not use up its token, so a retry after 1254291, 1254607 or 1254290 works.
 * 8. weight over options.maxBatchCells / maxBatchBytes → 1254607 "Data not ready" (HTTP 400).
 * 9. every value (values.ts): unknown field name 1254045, wrong shape 1254060–1254069/1254072/
 *    1254074, read-only field 1254015 (HTTP 400), foreign attachment 1254303, record ids that do
 *    not exist (update, delete) 1254043, a table past options.maxTableRecords 1254103. All or
 *    nothing: one bad value fails the whole call and nothing is written, options included.
 * Injected faults (BitableTenant.injectWriteFault) are answered after the latency as well;
 * 1255040 after the write.
 *
 * Records are created and modified by the caller: a user token's user, or for a tenant token the
 * app, shown as `{id: <app_id>, name: <app_id>, en_name: <app_id>, email: ""}` (how Lark shows an
 * app as creator is not in the notes: unconfirmed).
 */

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const USER_ID_TYPES = ['open_id', 'union_id', 'user_id'] as const;
type UserIdType = (typeof USER_ID_TYPES)[number];

const MAX_RECORDS: Record<WriteApi, number> = { create: 1, update: 1, delete: 1, batch_create: 1_000, batch_update: 1_000, batch_delete: 500 };

/** Documented HTTP status of codes an injected fault may carry (bitable.md §5, corrections.md). */
const STATUS_OF: Record<number, number> = { 1254015: 400, 1254036: 400, 1254037: 400, 1254306: 403, 1254607: 400, 1254608: 403, 1255006: 400, 1255040: 504 };
const MSG_OF: Record<number, string> = {
  1254002: 'Fail',
  1254290: 'TooManyRequest',
  1254291: 'Write conflict',
  1254607: 'Data not ready, please try again later',
  1254608: 'Same API requests are submitted repeatedly.',
  1255001: 'InternalError',
  1255040: 'request timeout',
};

const fail = (reply: FastifyReply, code: number, msg: string, status = 200) => larkReply(reply, status, { code, msg });
const sleep = (ms: number) => (ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve());
const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** JSON with object keys sorted, so equal requests have equal fingerprints. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isPlainObject(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

interface WriteItem {
  record_id?: string;
  fields: Record<string, unknown>;
}

/** The records of a call's body, or a WriteError (1254001 / 1254104). */
function parseBody(api: WriteApi, body: unknown, recordId: string | undefined): WriteItem[] {
  const bad = (why: string) => new WriteError(1254001, `WrongRequestBody: ${why}`);
  if (api === 'delete') return [{ record_id: recordId ?? '', fields: {} }];
  if (!isPlainObject(body)) throw bad('the body must be a JSON object');
  if (api === 'create' || api === 'update') {
    if (!isPlainObject(body.fields)) throw bad('fields must be an object of field name -> value');
    return [{ ...(api === 'update' ? { record_id: recordId ?? '' } : {}), fields: body.fields }];
  }
  const records = body.records;
  if (!Array.isArray(records) || records.length === 0) throw bad('records must be a non-empty array');
  if (records.length > MAX_RECORDS[api]) {
    throw new WriteError(1254104, `RecordAddOnceExceedLimit: at most ${MAX_RECORDS[api]} records in one call (${records.length} given)`);
  }
  if (api === 'batch_delete') {
    if (!records.every((r) => typeof r === 'string' && r !== '')) throw bad('records must be record_id strings');
    return (records as string[]).map((id) => ({ record_id: id, fields: {} }));
  }
  return records.map((r, i) => {
    if (!isPlainObject(r) || !isPlainObject(r.fields)) throw bad(`records[${i}].fields must be an object`);
    if (api === 'batch_update' && (typeof r.record_id !== 'string' || r.record_id === '')) throw bad(`records[${i}].record_id is required`);
    return api === 'batch_update' ? { record_id: r.record_id as string, fields: r.fields } : { fields: r.fields };
  });
}

/** The person a write is made by: the user of a user token, else the app. */
function writerOf(who: TenantIdentity): SimBitablePerson {
  if (who.user) return { id: who.user.openId, name: who.user.name, en_name: who.user.enName, email: who.user.email };
  return { id: who.appId, name: who.appId, en_name: who.appId, email: '' };
}

export function registerBitableWriteRoutes(
  app: FastifyInstance,
  ctx: DataApiContext,
  tenant: (tenantKey: string) => BitableTenant,
  options: () => BitableWriteOptions,
): void {
  type Route = {
    Params: { app_token: string; table_id: string; record_id?: string };
    Querystring: Record<string, string | undefined>;
    Body: unknown;
  };
  const base = '/open-apis/bitable/v1/apps/:app_token/tables/:table_id/records';

  /** People of the tenant by an id of one user_id_type (read shape: open_id, name, en_name, email). */
  const peopleOf = (tenantKey: string, type: UserIdType) => {
    let index: Map<string, SimBitablePerson> | undefined;
    return (id: string) => {
      if (!index) {
        index = new Map();
        for (const u of ctx.sim.oauth.users.list(tenantKey)) {
          const key = type === 'open_id' ? u.openId : type === 'union_id' ? u.unionId : u.userId;
          index.set(key, { id: u.openId, name: u.name, en_name: u.enName, email: u.email });
        }
      }
      return index.get(id);
    };
  };

  /** Validates and applies a call's records (all or nothing); the answer's `data`. */
  const apply = (api: WriteApi, data: BitableTenant, appToken: string, table: SimTable, items: WriteItem[], userIdType: UserIdType, who: TenantIdentity) => {
    const opts = options();
    const writer = writerOf(who);
    const stats = data.writes.statsOf(appToken);
    const baseTables = data.bases.get(appToken)?.tables;
    const vctx: ValueContext = {
      table,
      tableById: (id) => baseTables?.get(id),
      person: peopleOf(who.tenantKey, userIdType),
      media: (token) => {
        const m = data.media.get(token);
        return m && m.appToken === appToken ? m : undefined;
      },
    };
    const where = (i: number) => (api.startsWith('batch_') ? `records[${i}]` : 'record');

    if (api === 'delete' || api === 'batch_delete') {
      for (const it of items) {
        if (!table.get(it.record_id ?? '')) throw new WriteError(1254043, `RecordIdNotFound: ${it.record_id}`);
      }
      // An id listed twice is deleted once and answered twice (Lark's handling is not documented).
      const unique = new Set(items.map((it) => it.record_id ?? ''));
      // One call, one change set (one Base change event, split only when large).
      table.batch(() => {
        for (const id of unique) table.delete(id, writer);
      }, writer);
      stats.recordsDeleted += unique.size;
      stats.recordsWritten += unique.size;
      const answers = items.map((it) => ({ deleted: true, record_id: it.record_id }));
      return api === 'delete' ? answers[0] : { records: answers };
    }

    if (api === 'update' || api === 'batch_update') {
      items.forEach((it) => {
        if (!table.get(it.record_id ?? '')) throw new WriteError(1254043, `RecordIdNotFound: ${it.record_id}`);
      });
    } else if (table.count + items.length > opts.maxTableRecords) {
      throw new WriteError(1254103, `RecordExceedLimit: a table holds at most ${opts.maxTableRecords} records`);
    }
    const pending = new PendingOptions();
    const converted = items.map((it, i) => convertFields(vctx, it.fields, where(i), pending));
    // Nothing has changed yet; from here on the call cannot fail.
    pending.apply();
    let ids: string[];
    if (api === 'create' || api === 'batch_create') {
      const cells = converted.map((c) => Object.fromEntries(Object.entries(c).filter(([, v]) => v !== null)));
      ids = table.add(cells, writer).map((r) => r.record_id);
      stats.recordsCreated += ids.length;
    } else {
      ids = table.batch(() => items.map((it, i) => table.edit(it.record_id ?? '', converted[i], writer).record_id), writer);
      stats.recordsUpdated += ids.length;
    }
    stats.recordsWritten += ids.length;
    const answers = items.map((it, i) => ({ record_id: ids[i], fields: structuredClone(it.fields) }));
    return api === 'create' || api === 'update' ? { record: answers[0] } : { records: answers };
  };

  const handle = async (api: WriteApi, req: FastifyRequest<Route>, reply: FastifyReply) => {
    const who = admitCall(ctx, req, reply, `bitable.records.${api}`, { perSecond: 50 });
    if (!who) return reply;
    const data = tenant(who.tenantKey);
    const { app_token: appToken, table_id: tableId, record_id: recordId } = req.params;
    data.requests.push({ api, appToken, tableId, query: { ...req.query }, body: req.body === undefined ? undefined : structuredClone(req.body), at: Date.now() });
    if (data.takeThrottle()) return fail(reply, 1254290, 'TooManyRequest');
    const opts = options();

    const userIdType = (req.query.user_id_type ?? 'open_id') as UserIdType;
    if (!USER_ID_TYPES.includes(userIdType)) return fail(reply, 1254001, 'WrongRequestBody: user_id_type must be open_id, union_id or user_id');
    const rawToken = req.query.client_token ?? '';
    if (rawToken !== '' && !UUID_V4.test(rawToken)) {
      return fail(reply, 1254037, 'Invalid client token, make sure that it complies with the specification.', 400);
    }
    const honoursToken = opts.clientTokenOnDeletes || (api !== 'delete' && api !== 'batch_delete');
    const clientToken = rawToken !== '' && honoursToken ? rawToken.toLowerCase() : undefined;
    const ignoreConsistency = req.query.ignore_consistency_check === 'true';

    const table = locateTable(reply, who, data, appToken, tableId);
    if (!table) return reply;
    if (table.writeDenied) return fail(reply, 91403, 'Forbidden', 403);

    // ---- the Base gate: one write call at a time
    const stats = data.writes.statsOf(appToken);
    stats.calls += 1;
    const running = data.writes.running(appToken);
    if (running.size > 0) {
      stats.overlaps += 1;
      if (clientToken && [...running].some((c) => c.clientToken === clientToken)) {
        stats.duplicateSubmits += 1;
        return fail(reply, 1254608, 'Same API requests are submitted repeatedly.', 403);
      }
      if (!ignoreConsistency) {
        stats.conflicts += 1;
        return fail(reply, 1254291, 'Write conflict');
      }
    }
    /** The call's answer, the records applied when it is a success: a fault, a replay, 1254607, a value error, or the result. */
    const decide = (fault: WriteFault | undefined, items: WriteItem[]): { status: number; body: Record<string, unknown> } => {
      if (fault && fault.code !== 1255040) {
        return { status: fault.status ?? STATUS_OF[fault.code] ?? 200, body: { code: fault.code, msg: fault.msg ?? MSG_OF[fault.code] ?? 'simulated failure' } };
      }
      const tokenKey = clientToken ? `${who.appId}\u0000${appToken}\u0000${clientToken}` : undefined;
      const fingerprint = canonical({ api, tableId, recordId: recordId ?? null, body: req.body ?? null, userIdType, by: who.user?.openId ?? who.appId });
      const first = tokenKey ? data.writes.token(tokenKey) : undefined;
      if (first) {
        if (first.fingerprint !== fingerprint) {
          return { status: 400, body: { code: 1255006, msg: 'Client token conflict, please generate a new client token and try again.' } };
        }
        stats.replays += 1;
        return { status: 200, body: { code: 0, msg: 'success', data: structuredClone(first.data) } };
      }
      const cells = items.reduce((n, it) => n + Math.max(1, Object.keys(it.fields).length), 0);
      const bytes = Buffer.byteLength(JSON.stringify(items));
      if (cells > opts.maxBatchCells || bytes > opts.maxBatchBytes) {
        stats.notReady += 1;
        return { status: 400, body: { code: 1254607, msg: 'Data not ready, please try again later' } };
      }
      try {
        const result = apply(api, data, appToken, table, items, userIdType, who);
        stats.applied += 1;
        if (tokenKey) data.writes.remember(tokenKey, fingerprint, result);
        return { status: 200, body: { code: 0, msg: 'success', data: result } };
      } catch (err) {
        if (err instanceof WriteError) return { status: err.status, body: { code: err.code, msg: err.message } };
        throw err;
      }
    };
    const call: InFlightCall = { api, clientToken };
    data.writes.enter(appToken, call, arrivals.get(req.raw));

    let answer: { status: number; body: Record<string, unknown> };
    let text: string;
    let fault: WriteFault | undefined;
    try {
      let items: WriteItem[];
      try {
        items = parseBody(api, req.body, recordId);
      } catch (err) {
        if (err instanceof WriteError) return fail(reply, err.code, err.message, err.status);
        throw err;
      }
      stats.batchSizes.push(items.length);
      fault = data.writes.takeFault(appToken, api);
      answer = decide(fault, items);
      // Answered once the latency has passed since the request arrived: the simulator's own work
      // (parsing, validating and applying a 1,000-record body costs it 20-50 ms of CPU on a busy
      // machine) is part of the time Lark takes, as Lark's own is, not added to it. The records
      // are applied when the call enters the Base, so readers may see them before the answer.
      // The answer is serialized before the wait, so it leaves when the latency is up: serializing
      // 1,000 records after it (a few ms, more on a busy machine) made every call slower than the
      // latency set, and the Base looked idle meanwhile.
      text = JSON.stringify(answer.body.code === 0 ? { code: 0, msg: 'success', data: answer.body.data } : answer.body);
      const arrived = arrivals.get(req.raw) ?? performance.now();
      await sleep(opts.latencyMs + opts.perRecordLatencyMs * items.length - (performance.now() - arrived));
    } finally {
      data.writes.leave(appToken, call);
    }

    if (fault?.code === 1255040) {
      // The work is done (or failed) and the Base is free again; the answer comes too late.
      stats.timeouts += 1;
      await sleep(fault.holdMs ?? 0);
      return fail(reply, 1255040, fault.msg ?? MSG_OF[1255040]!, fault.status ?? 504);
    }
    return larkReplyText(reply, answer.status, answer.body.code as number, text);
  };

  // In their own scope, with a JSON parser that takes an empty body (a DELETE sent with a JSON
  // content type) as no body and answers malformed JSON in Lark's envelope (1254000) instead of
  // Fastify's.
  void app.register(async (scope) => {
    // When each write request arrived (before its body was read and parsed): its latency runs from then.
    scope.addHook('onRequest', async (req) => {
      arrivals.set(req.raw, performance.now());
    });
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, text, done) => {
      if (text === '') return done(null, undefined);
      try {
        done(null, JSON.parse(text as string));
      } catch {
        done(null, INVALID_JSON);
      }
    });
    const route = (api: WriteApi) => async (req: FastifyRequest<Route>, reply: FastifyReply) => {
      if (req.body === INVALID_JSON) {
        const who = admitCall(ctx, req, reply, `bitable.records.${api}`, { perSecond: 50 });
        return who ? fail(reply, 1254000, 'WrongRequestJson') : reply;
      }
      return handle(api, req, reply);
    };
    scope.post<Route>(base, route('create'));
    scope.put<Route>(`${base}/:record_id`, route('update'));
    scope.delete<Route>(`${base}/:record_id`, route('delete'));
    scope.post<Route>(`${base}/batch_create`, route('batch_create'));
    scope.post<Route>(`${base}/batch_update`, route('batch_update'));
    scope.post<Route>(`${base}/batch_delete`, route('batch_delete'));
  });
}

/** When each write request arrived (see the onRequest hook). */
const arrivals = new WeakMap<object, number>();

/** The body of a request whose JSON did not parse. */
const INVALID_JSON = Symbol('invalid JSON');

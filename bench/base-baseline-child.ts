/**
 * The baseline of the Base sync benchmark, in its own process: what a user writes by hand with the
 * official SDK and `pg`. The SDK's `searchWithIterator` pages through records/search (500 per
 * page, one page at a time) and every record is written with its own INSERT ... ON CONFLICT DO
 * UPDATE in autocommit. Started by bench/base-sync.ts, which compares its rate with larksync's.
 */
import * as lark from '@larksuiteoapi/node-sdk';
import pg from 'pg';
import { serveParent } from './child-ipc.js';

type CacheKey = Parameters<lark.Cache['get']>[0];

/** The SDK's cache contract, preloaded with the app_ticket (as after Lark's ticket push). */
class MapCache implements lark.Cache {
  private readonly entries = new Map<string, { value: unknown; expire: number | undefined }>();
  private id(key: CacheKey, namespace = '') {
    return `${namespace}/${key.toString()}`;
  }
  set = async (key: CacheKey, value: unknown, expire?: number, options?: { namespace?: string }) => {
    this.entries.set(this.id(key, options?.namespace), { value, expire });
    return true;
  };
  get = async (key: CacheKey, options?: { namespace?: string }) => {
    const e = this.entries.get(this.id(key, options?.namespace));
    if (!e || (e.expire !== undefined && e.expire < Date.now())) return undefined;
    return e.value;
  };
}

export interface BaselineArgs {
  simUrl: string;
  appId: string;
  appSecret: string;
  ticket: string;
  tenant: string;
  appToken: string;
  tableId: string;
  /** stop after this many records (the rate is what is compared) */
  limit: number;
}

export interface BaselineResult {
  records: number;
  pages: number;
  seconds: number;
}

const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
await db.connect();
await db.query(`
  create table if not exists base_records_by_hand (
    record_id text primary key,
    fields jsonb not null,
    created_by jsonb,
    created_time timestamptz,
    last_modified_by jsonb,
    last_modified_time timestamptz,
    raw jsonb not null,
    synced_at timestamptz not null default now()
  )`);

const UPSERT = `
  insert into base_records_by_hand (record_id, fields, created_by, created_time, last_modified_by, last_modified_time, raw)
  values ($1, $2, $3, to_timestamp($4::float8 / 1000), $5, to_timestamp($6::float8 / 1000), $7)
  on conflict (record_id) do update set
    fields = excluded.fields, created_by = excluded.created_by, created_time = excluded.created_time,
    last_modified_by = excluded.last_modified_by, last_modified_time = excluded.last_modified_time,
    raw = excluded.raw, synced_at = now()`;

serveParent(
  {
    run: async (a: BaselineArgs): Promise<BaselineResult> => {
      const cache = new MapCache();
      await cache.set(lark.CAppTicket, a.ticket, undefined, { namespace: a.appId });
      const silent: lark.Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined, trace: () => undefined };
      const client = new lark.Client({ appId: a.appId, appSecret: a.appSecret, appType: lark.AppType.ISV, domain: a.simUrl, cache, logger: silent });
      const started = performance.now();
      let records = 0;
      let pages = 0;
      const iterator = await client.bitable.v1.appTableRecord.searchWithIterator(
        { path: { app_token: a.appToken, table_id: a.tableId }, params: { page_size: 500 }, data: { automatic_fields: true } },
        lark.withTenantKey(a.tenant),
      );
      outer: for await (const page of iterator) {
        // The SDK's iterator yields null and stops when a call fails.
        if (!page) throw new Error(`a records/search call failed after ${pages} pages`);
        pages += 1;
        for (const r of page.items ?? []) {
          await db.query(UPSERT, [
            r.record_id,
            JSON.stringify(r.fields),
            r.created_by ? JSON.stringify(r.created_by) : null,
            r.created_time ?? null,
            r.last_modified_by ? JSON.stringify(r.last_modified_by) : null,
            r.last_modified_time ?? null,
            JSON.stringify(r),
          ]);
          records += 1;
          if (records >= a.limit) break outer;
        }
      }
      const seconds = (performance.now() - started) / 1000;
      const stored = await db.query<{ n: number }>('select count(*)::int as n from base_records_by_hand');
      if (stored.rows[0]?.n !== records) throw new Error(`baseline stored ${stored.rows[0]?.n} rows for ${records} records`);
      return { records, pages, seconds };
    },
  },
  () => db.end(),
);

import { randomUUID } from 'node:crypto';
import type { SyncRunView } from '../src/sync/sync.service.js';
import type { WriteView } from '../src/writes/writes.service.js';
import { LarksyncApi, waitUntil } from './api-client.js';
import type { ProgressView } from './progress.js';
import type { SeededTenant } from './tenants.js';

/** Rows the demo writes into a Base table through the write API. */
export const DEMO_WRITE_ROWS = 300;

export interface WriteDemo {
  tenantKey: string;
  tenantName: string;
  table: string;
  records: number;
  status: WriteView['status'];
  ok: number;
  /** POST to the write's end (?wait holds the answer until then) */
  seconds: number;
  upstreamCalls: number;
  /** rows of the written records in base_records right after the write (the records feed) */
  inBaseRecords: number;
  /** the incremental Base sync run afterwards */
  sync: { status: SyncRunView['status']; baseRecords: number; seconds: number | null };
  /** the same rows after that sync: still one per record */
  afterSync: number;
}

const STAGES = ['New', 'Paid', 'Shipped'];

interface FeedPage {
  records: Array<{ deletedAt: string | null; data: { fields?: { Order?: Array<{ text?: string }> } } }>;
  nextCursor: string | null;
}

/** Rows of the records feed changed since `since` whose Order starts with `prefix` (every page). */
async function countFed(api: LarksyncApi, tenantKey: string, since: string, prefix: string): Promise<number> {
  let n = 0;
  let cursor: string | null = null;
  do {
    const q: URLSearchParams = new URLSearchParams({ limit: '1000', updatedSince: since, ...(cursor ? { cursor } : {}) });
    const page: FeedPage = await api.get<FeedPage>(
      `/api/v1/tenants/${tenantKey}/streams/base_records/records?${q}`,
    );
    n += page.records.filter((r) => !r.deletedAt && (r.data.fields?.Order?.[0]?.text ?? '').startsWith(prefix)).length;
    cursor = page.nextCursor;
  } while (cursor);
  return n;
}

/**
 * Writes orders into a tenant's "Orders" Base table through POST /api/v1/tenants/{key}/writes
 * (with an Idempotency-Key, answered once the write is done thanks to ?wait), shows them in
 * base_records through the records feed, then runs an incremental Base sync that reads the table
 * back from Lark and finds them again.
 */
export async function writeOrders(api: LarksyncApi, tenant: SeededTenant, view: ProgressView, rows = DEMO_WRITE_ROWS): Promise<WriteDemo> {
  const target = tenant.writeTarget;
  if (!target) throw new Error(`${tenant.key} has no Base table to write into`);
  const prefix = `DEMO-${Date.now().toString(36)}-`;
  const started = Date.now();
  const records = Array.from({ length: rows }, (_, i) => ({
    fields: { Order: `${prefix}${i + 1}`, Qty: (i % 5) + 1, Price: 9.5 + (i % 40), Stage: STAGES[i % 3], Paid: i % 2 === 0, Ordered: '2026-12-01' },
  }));
  const accepted = await api.call<WriteView>('POST', `/api/v1/tenants/${tenant.key}/writes?wait=30`, {
    table: { appToken: target.appToken, tableId: target.tableId },
    op: 'create',
    records,
  }, { 'idempotency-key': `demo-${randomUUID()}` });
  let write = accepted.body;
  // Ended (Lark holds every order), and the rows read back into base_records, which follows within seconds.
  if (['queued', 'running'].includes(write.status) || write.readBackPending > 0) {
    write = await waitUntil(async () => {
      const w = await api.get<WriteView>(`/api/v1/writes/${write.id}`);
      return ['queued', 'running'].includes(w.status) || w.readBackPending > 0 ? undefined : w;
    }, 60_000, `write ${write.id}`);
  }
  const seconds = (Date.now() - started) / 1000;
  // A second before the write was stored, in the database's clock.
  const since = new Date(Date.parse(write.createdAt) - 1_000).toISOString();
  const inBaseRecords = await countFed(api, tenant.key, since, prefix);
  view.say(
    `POST /api/v1/tenants/${tenant.key}/writes?wait=30: ${write.counts.ok} of ${rows} orders written into ${tenant.name}'s Orders table ` +
      `(${write.status}, ${write.upstreamCalls} call${write.upstreamCalls === 1 ? '' : 's'} to Lark, ${seconds.toFixed(1)} s); ${inBaseRecords} already in base_records`,
  );

  const { body: run } = await api.call<SyncRunView>('POST', `/api/v1/tenants/${tenant.key}/syncs`, { module: 'base', mode: 'incremental' });
  const done = await waitUntil(async () => {
    const r = await api.get<SyncRunView>(`/api/v1/syncs/${run.id}`);
    return ['queued', 'running'].includes(r.status) ? undefined : r;
  }, 120_000, `base sync ${run.id}`);
  const afterSync = await countFed(api, tenant.key, since, prefix);
  const runSeconds = done.startedAt && done.finishedAt ? (Date.parse(done.finishedAt) - Date.parse(done.startedAt)) / 1000 : null;
  view.say(`POST /api/v1/tenants/${tenant.key}/syncs (base, incremental): ${done.status}, ${done.counts.base_records ?? 0} records read back from Lark; the orders: ${afterSync} rows, one each`);
  return {
    tenantKey: tenant.key,
    tenantName: tenant.name,
    table: 'Orders',
    records: rows,
    status: write.status,
    ok: write.counts.ok,
    seconds,
    upstreamCalls: write.upstreamCalls,
    inBaseRecords,
    sync: { status: done.status, baseRecords: done.counts.base_records ?? 0, seconds: runSeconds },
    afterSync,
  };
}

import { createHash, randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { Sealer } from '../../src/crypto/sealer.js';
import { appSecretContext } from '../../src/apps/app-credentials.js';
import type { Database } from '../../src/db/database.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import type { DeliveryOverrides } from '../../src/sinks/delivery.js';
import type { LarkFileDownload } from '../../src/sinks/lark-files.js';
import { SinksService } from '../../src/sinks/sinks.service.js';
import { DifyFake, RagflowFake, type DifyOptions, type RagflowOptions } from '../../simulator/kb/index.js';
import { memoryLogger } from '../helpers/stack.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * Delivery tests without HTTP or a worker: a migrated database, a SinksService with quick timings,
 * docs_content rows written the way the sync engine's write path writes them (change_seq and
 * change_xid per change, unchanged rows untouched), and a drain loop standing in for the worker
 * (it runs the delivery job again at each nextRunAt, as the task would queue it).
 */

/** Timings for tests: polls every 20 ms, a parse stuck after 1.5 s, backoff from 100 ms to 1 s. */
export const FAST: DeliveryOverrides = {
  sliceMs: 5_000,
  pollMs: 20,
  parseTimeoutMs: 1_500,
  maxRestarts: 2,
  backoffBaseMs: 100,
  backoffCapMs: 1_000,
  docRetryMs: 20,
  recoveryDelayMs: 100,
  http: { timeoutMs: 2_000, uploadTimeoutMs: 4_000 },
};

export interface DocInput {
  token: string;
  title: string;
  markdown?: string;
  path?: string;
  url?: string;
  objType?: string;
  /** A Drive file instead of Markdown (downloaded from Lark at delivery time). */
  file?: { name: string; mime: string; size: number; token: string };
  /** The file's version fingerprint (body_hash of a file row). */
  fileVersion?: string;
  /** Lark's edit time of this version (default: the database's now()). */
  editedTime?: Date;
}

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A Lark-looking obj_token: a type prefix and 22 random letters and digits. */
export function larkToken(prefix = 'doxcn'): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return prefix + [...randomBytes(22)].map((b) => alphabet[b % alphabet.length]).join('');
}

/** Upserts a docs_content row as write-page does: a new feed position only when the content changed or the row comes back. */
export async function writeDoc(db: Kysely<Database>, tenantKey: string, d: DocInput): Promise<void> {
  const isFile = d.file !== undefined;
  const body = isFile ? (d.fileVersion ?? 'v1') : sha(d.markdown ?? '');
  const raw = { token: d.token, title: d.title, path: d.path ?? `/${d.title}`, body };
  const hash = sha(JSON.stringify(raw));
  await sql`
    insert into docs_content (tenant_key, record_key, partition, raw, content_hash, token, obj_type, format, title, path, url, markdown, file, size, body_hash, edited_time, revision)
    values (${tenantKey}, ${d.token}, '', ${JSON.stringify(raw)}::jsonb, ${hash}, ${d.token}, ${d.objType ?? (isFile ? 'file' : 'docx')},
            ${isFile ? 'file' : 'markdown'}, ${d.title}, ${d.path ?? `/${d.title}`}, ${d.url ?? `https://sim.feishu.cn/docx/${d.token}`},
            ${isFile ? null : (d.markdown ?? '')}, ${isFile ? JSON.stringify(d.file) : null}::jsonb,
            ${isFile ? d.file!.size : Buffer.byteLength(d.markdown ?? '')}, ${body}, coalesce(${d.editedTime ?? null}::timestamptz, now()), 1)
    on conflict (tenant_key, record_key) do update set
      raw = excluded.raw, content_hash = excluded.content_hash, title = excluded.title, path = excluded.path, url = excluded.url,
      markdown = excluded.markdown, file = excluded.file, size = excluded.size, body_hash = excluded.body_hash, format = excluded.format, edited_time = excluded.edited_time,
      updated_at = now(), deleted_at = null, change_seq = nextval('sync_change_seq'), change_xid = pg_current_xact_id()
    where docs_content.content_hash is distinct from excluded.content_hash or docs_content.deleted_at is not null`.execute(db);
}

/** Marks a document deleted as the sync's deletion sweep does (removed, or moved out of the synced paths). */
export async function deleteDoc(db: Kysely<Database>, tenantKey: string, token: string): Promise<void> {
  await sql`
    update docs_content set deleted_at = now(), updated_at = now(), change_seq = nextval('sync_change_seq'), change_xid = pg_current_xact_id()
     where tenant_key = ${tenantKey} and record_key = ${token} and deleted_at is null`.execute(db);
}

/** A tenant of a store app, its docs connector naming `sinks`. `sealer`: the key larksync processes will run with. */
export async function seedTenant(db: Kysely<Database>, tenantKey: string, sinks: string[], sealer = new Sealer(randomBytes(32))): Promise<void> {
  await sql`insert into apps (app_id, kind, domain, secret_sealed) values ('cli_sinks_test', 'store', 'feishu', ${sealer.seal('not-a-real-secret', appSecretContext('cli_sinks_test'))}) on conflict do nothing`.execute(db);
  await sql`insert into tenants (tenant_key, app_id, status) values (${tenantKey}, 'cli_sinks_test', 'active') on conflict do nothing`.execute(db);
  await feedSinks(db, tenantKey, sinks);
}

/** The tenant's docs connector names these sinks (`config.sinks`). */
export async function feedSinks(db: Kysely<Database>, tenantKey: string, sinks: string[]): Promise<void> {
  await sql`
    insert into connectors (tenant_key, module, enabled, interval_minutes, config)
    values (${tenantKey}, 'docs', true, 60, ${JSON.stringify({ spaces: [], sinks })}::jsonb)
    on conflict (tenant_key, module) do update set config = excluded.config`.execute(db);
}

export interface Fixture {
  db: TestDatabase;
  sinks: SinksService;
  sealer: Sealer;
  logs: string[];
  /** Files the fake Lark download serves, by file token. */
  files: Map<string, Buffer>;
  downloads: number;
  stop(): Promise<void>;
}

export async function sinkFixture(opts: { options?: DeliveryOverrides; download?: LarkFileDownload } = {}): Promise<Fixture> {
  const db = await createTestDatabase();
  const sealer = new Sealer(randomBytes(32));
  const logs: string[] = [];
  const files = new Map<string, Buffer>();
  const fx: Fixture = {
    db,
    sealer,
    logs,
    files,
    downloads: 0,
    sinks: undefined as unknown as SinksService,
    async stop() {
      await db.drop();
    },
  };
  const download: LarkFileDownload =
    opts.download ??
    (async (_tenant, token) => {
      fx.downloads += 1;
      const bytes = files.get(token);
      if (!bytes) throw new Error(`no file ${token}`);
      return { bytes, mime: 'application/pdf' };
    });
  fx.sinks = new SinksService(
    { db: db.db, sealer, log: memoryLogger(logs), metrics: createMetrics(), download, allowPrivate: true },
    { ...FAST, ...opts.options, http: { ...FAST.http, ...opts.options?.http } },
  );
  return fx;
}

/**
 * Runs the sink's delivery job until it has nothing left (no nextRunAt), waiting for each
 * nextRunAt as the worker would. Returns how many jobs ran.
 */
export async function drain(fx: Fixture, tenantKey: string, name: string, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (let jobs = 1; ; jobs += 1) {
    const out = await fx.sinks.delivery.run(tenantKey, name);
    if (!out.nextRunAt) return jobs;
    if (Date.now() > deadline) throw new Error(`delivery of ${name} did not settle within ${timeoutMs} ms`);
    const wait = out.nextRunAt.getTime() - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, 2_000)));
  }
}

export async function startRagflow(opts: RagflowOptions = {}) {
  const fake = new RagflowFake({ parseMs: 30, ...opts });
  const url = await fake.start();
  const { apiKey } = fake.addOwner();
  const ds = fake.addDataset(apiKey, { name: 'lark wiki' });
  return { fake, url, apiKey, datasetId: ds.id };
}

export async function startDify(opts: DifyOptions = {}) {
  const fake = new DifyFake({ indexMs: 30, ...opts });
  const url = await fake.start();
  const { apiKey } = fake.addOwner();
  const ds = fake.addDataset(apiKey, { name: 'lark wiki' });
  return { fake, url: `${url}/v1`, apiKey, datasetId: ds.id };
}

/** Expected sink content of a Lark document as the fixture wrote it. */
export interface Expected {
  token: string;
  title: string;
  body: Buffer;
}

/**
 * Exactly one sink document per live Lark document, with its content and lark_token metadata,
 * and nothing else larksync made. Returns a description of each difference (empty when exact).
 */
export function differences(
  docs: Array<{ id: string; name: string; content: Buffer; metadata: Record<string, unknown> }>,
  expected: Expected[],
  opts: { metadata: boolean; others?: string[] } = { metadata: true },
): string[] {
  const out: string[] = [];
  const others = new Set(opts.others ?? []);
  const mine = docs.filter((d) => !others.has(d.id));
  for (const e of expected) {
    const short = e.token.slice(-10);
    const copies = mine.filter((d) => d.name.includes(`(${short})`));
    if (copies.length !== 1) {
      out.push(`${e.token}: ${copies.length} sink documents (${copies.map((c) => c.name).join(', ')})`);
      continue;
    }
    const c = copies[0]!;
    if (!c.content.equals(e.body)) out.push(`${e.token}: content differs`);
    if (!c.name.startsWith(e.title.slice(0, 20))) out.push(`${e.token}: named ${c.name}, title ${e.title}`);
    if (opts.metadata && c.metadata.lark_token !== e.token) out.push(`${e.token}: lark_token metadata ${String(c.metadata.lark_token)}`);
  }
  const shorts = new Set(expected.map((e) => e.token.slice(-10)));
  for (const d of mine) {
    const m = /\(([A-Za-z0-9]{10})\)(\(\d+\))?\.\w+$/.exec(d.name);
    if (!m || !shorts.has(m[1]!)) out.push(`unexpected sink document ${d.name}`);
  }
  return out;
}

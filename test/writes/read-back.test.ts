import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import pg from 'pg';
import type { Stack } from '../helpers/stack.js';
import { postWrite, stackWithOrders, writeEnded } from './orders-table.js';

/**
 * A write's rows reach base_records after it succeeds (readBackPending counts down to 0). When the read-back fails on
 * larksync's side (the database refusing a statement: "too many clients" under load, seen in the
 * SIGKILL trials), the job fails and the next one reads the rows back; only Lark refusing the read
 * leaves them to the next sync.
 */
const TENANT = 'tenant-write-read-back';

describe('reading written rows back into base_records', () => {
  let stack: Stack;
  let appToken: string;
  let tableId: string;
  let admin: pg.Client;

  beforeAll(async () => {
    ({ stack, appToken, tableId } = await stackWithOrders(TENANT, { rateLimitScale: 20, latencyMs: 20 }));
    admin = new pg.Client({ connectionString: stack.db.url });
    await admin.connect();
  }, 60_000);
  afterAll(async () => {
    await admin?.end();
    await stack?.stop();
  });

  it('a database error while reading back fails the job, and the next job reads the rows back', async () => {
    // The read-back's first two batch_get tokens are refused by the database (a sequence, so the
    // count survives the failed statements).
    await admin.query(`
      create sequence test_read_back_failures;
      create function test_refuse_batch_get() returns trigger language plpgsql as $$
      begin
        if new.bucket like '%batch_get' and nextval('test_read_back_failures') <= 2 then
          raise exception 'test: sorry, too many clients already';
        end if;
        return new;
      end $$;
      create trigger test_refuse_batch_get before insert or update on rate_buckets for each row execute function test_refuse_batch_get();`);
    try {
      const id = await postWrite(stack, TENANT, {
        table: { appToken, tableId },
        op: 'create',
        records: Array.from({ length: 1_500 }, (_, i) => ({ fields: { Order: `RB-${i}` } })),
      });
      const w = await writeEnded(stack, id, { readBack: true });
      expect(w.status).toBe('succeeded');
      const failures = await admin.query<{ n: string }>(`select last_value as n from test_read_back_failures`);
      expect(Number(failures.rows[0]?.n)).toBeGreaterThanOrEqual(2);
      // Every row is there once the write says nothing is left to read back.
      const rows = await sql<{ n: number }>`select count(*)::int as n from base_records where tenant_key = ${TENANT} and fields->'Order'->0->>'text' like 'RB-%'`.execute(stack.db.db);
      expect(rows.rows[0]?.n).toBe(1_500);
    } finally {
      await admin.query(`drop trigger if exists test_refuse_batch_get on rate_buckets; drop function if exists test_refuse_batch_get(); drop sequence if exists test_read_back_failures;`);
    }
  });
});

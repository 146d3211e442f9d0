import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import { MODULES } from '../../src/connectors/index.js';
import type { Database } from '../../src/db/database.js';
import { EventGroup } from '../../src/events/event-group.js';
import { prepareEventChange } from '../../src/sync/event-apply.js';
import { nextReadSeq } from '../../src/sync/read-seq.js';
import { countingKysely, createTestDatabase, type TestDatabase } from '../helpers/db.js';

// A drain commits a tenant's events together. Their event marks and their outcomes ride in the
// statement that announces the changes (records.changed), and a group whose events all changed
// nothing (stale, out of scope) is one statement with no transaction: each was a round trip per
// event, or per outcome, and then one each per group.
describe("a drain's group commit", () => {
  let db: TestDatabase;
  let counted: Kysely<Database>;
  let seen: string[];

  const storedEvents = async (n: number): Promise<string[]> => {
    const res = await sql<{ id: string }>`
      insert into lark_events (event_id, schema_version, event_type, tenant_key, payload_sealed)
      select 'ev-' || gen_random_uuid(), 'v2', 'contact.user.updated_v3', 't-g', '\\x00'::bytea from generate_series(1, ${n}::int)
      returning id::text`.execute(db.db);
    return res.rows.map((r) => r.id);
  };
  const user = (openId: string, name: string) => ({ recordKey: openId, raw: { open_id: openId, name }, columns: { open_id: openId, union_id: null, user_id: null, name, department_ids: [] } });

  beforeAll(async () => {
    db = await createTestDatabase();
    ({ db: counted, seen } = countingKysely(db, /./));
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('writes the rows of two events, then their marks, outcomes and records.changed in one statement', async () => {
    const [a, b, c] = await storedEvents(3);
    const group = new EventGroup('t-g');
    const streams = MODULES.contact!.streams;
    const readAt = new Date(Date.now() - 1_000);
    group.add(await prepareEventChange('t-g', streams, { readSeq: await nextReadSeq(db.db), rows: { contact_users: [user('ou_1', 'One')] }, marks: { keys: ['contact_users:ou_1'], mark: 1_000 } }, readAt));
    group.add(await prepareEventChange('t-g', streams, { readSeq: await nextReadSeq(db.db), rows: { contact_users: [user('ou_2', 'Two')] }, marks: { keys: ['contact_users:ou_2', 'contact_users:ou_1'], mark: 2_000 } }, readAt));
    group.settle([a!], 'processed');
    group.settle([b!], 'processed');
    group.settle([c!], 'ignored');
    // A webhook that wants records.changed, so that the announcement writes an event.
    await sql`insert into webhooks (url, event_types, secret_sealed) values ('https://example.com/hook', array['records.changed'], '\\x00'::bytea)`.execute(db.db);
    seen.length = 0;
    await group.commit(counted);
    // begin, one upsert per change, then marks, outcomes and the announcement in one statement, commit
    // (marks, outcomes and the announcement were three).
    expect(seen).toHaveLength(5);
    const last = seen[3]!;
    expect([/event_marks/.test(last), /update lark_events/.test(last), /insert into webhook_events/.test(last)]).toEqual([true, true, true]);
    const announced = await sql<{ data: { stream: string; count: number } }>`select data from webhook_events where tenant_key = 't-g' and type = 'records.changed'`.execute(db.db);
    expect(announced.rows.map((r) => [r.data.stream, r.data.count])).toEqual([['contact_users', 2]]);
    const rows = await sql<{ object_key: string; mark: string; read_at: Date }>`select object_key, mark::text, read_at from event_marks where tenant_key = 't-g' order by object_key`.execute(db.db);
    expect(rows.rows.map((r) => [r.object_key, r.mark, r.read_at.getTime()])).toEqual([
      ['contact_users:ou_1', '2000', readAt.getTime()],
      ['contact_users:ou_2', '2000', readAt.getTime()],
    ]);
    const events = await sql<{ id: string; status: string; attempts: number }>`select id::text, status, attempts from lark_events where id = any(${[a, b, c]}::bigint[]) order by id`.execute(db.db);
    expect(events.rows.map((e) => [e.status, e.attempts])).toEqual([
      ['processed', 1],
      ['processed', 1],
      ['ignored', 1],
    ]);
    const users = await sql<{ record_key: string }>`select record_key from contact_users where tenant_key = 't-g' order by record_key`.execute(db.db);
    expect(users.rows.map((u) => u.record_key)).toEqual(['ou_1', 'ou_2']);
  });

  it('settles a group whose events changed nothing in one statement, without a transaction', async () => {
    const ids = await storedEvents(4);
    const group = new EventGroup('t-g');
    group.settle(ids.slice(0, 3), 'ignored');
    group.settle(ids.slice(3), 'processed');
    seen.length = 0;
    await group.commit(counted);
    expect(seen).toHaveLength(1);
    const events = await sql<{ status: string }>`select status from lark_events where id = any(${ids}::bigint[]) order by id`.execute(db.db);
    expect(events.rows.map((e) => e.status)).toEqual(['ignored', 'ignored', 'ignored', 'processed']);
  });
});

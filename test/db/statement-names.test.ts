import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/connect.js';
import { loadConfig } from '../../src/config/env.js';
import { StatementNames } from '../../src/db/statement-names.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { findTenantAppConnector } from '../../src/apps/apps.repository.js';
import { Pacer, perSecond } from '../../src/sync/pacer.js';
import { headQuery } from '../../src/webhooks/lane-drain.js';

// Repeated queries go to Postgres as named statements (src/db/statement-names.ts): the server's
// own view of this connection's prepared statements is what shows it.

describe('named statements', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ migrate: false });
    await sql`create table things (id int primary key, label text)`.execute(t.db);
    await sql`insert into things select g, 'thing ' || g from generate_series(1, 10) g`.execute(t.db);
  });
  afterAll(async () => {
    await t?.drop();
  });

  /** The texts this connection has prepared, as Postgres lists them. */
  const prepared = async (conn: Kysely<Database>) =>
    (await sql<{ statement: string }>`select statement from pg_prepared_statements where not from_sql`.execute(conn)).rows.map((r) => r.statement);

  it('a text repeated three times is prepared once and then reused; its answers stay right', async () => {
    await t.db.connection().execute(async (conn) => {
      const labels: string[] = [];
      for (let i = 1; i <= 6; i += 1) {
        const r = await sql<{ label: string }>`select label from things where id = ${i}`.execute(conn);
        labels.push(r.rows[0]!.label);
      }
      expect(labels).toEqual(['thing 1', 'thing 2', 'thing 3', 'thing 4', 'thing 5', 'thing 6']);
      const mine = (await prepared(conn)).filter((s) => s.includes('from things where id'));
      expect(mine).toEqual(['select label from things where id = $1']);
    });
  });

  it('star expansions, statements without parameters and rare texts stay unnamed; products are named', async () => {
    await t.db.connection().execute(async (conn) => {
      for (let i = 0; i < 5; i += 1) {
        await sql`select * from things where id = ${i}`.execute(conn);
        await sql`select t.* from things t where t.id = ${i}`.execute(conn);
        await sql`update things set label = label where id = ${i} returning *`.execute(conn);
        await sql`select "t".* from things as "t" where "t".id = ${i}`.execute(conn);
        await sql`with u as (update things set label = label where id = ${i} returning *) select id from u`.execute(conn);
        await sql`select id, * from things where id = ${i}`.execute(conn);
        await sql`select count(*) from things`.execute(conn);
        // A product is no star expansion: named like any repeated text.
        await sql`select id * 2 as twice, (id + 1) *${3} as more from things where id = ${i}`.execute(conn);
      }
      await sql`select label from things where id = ${1} and label <> ${'x'}`.execute(conn);
      const texts = await prepared(conn);
      expect(texts.filter((s) => s.includes('*'))).toEqual(['select id * 2 as twice, (id + 1) *$1 as more from things where id = $2']);
      expect(texts.filter((s) => s.includes("label <> $2"))).toEqual([]);
    });
  });

  it('a statement whose result type changed under it is sent unnamed from then on', async () => {
    const names = new StatementNames();
    const text = 'select label from things where id = $1';
    for (let i = 0; i < 3; i += 1) names.nameFor(text);
    expect(names.nameFor(text)).toMatch(/^larksync_[0-9a-f]{24}$/);
    names.failed(text, Object.assign(new Error('cached plan must not change result type'), { code: '0A000' }));
    expect(names.nameFor(text)).toBeUndefined();
    // And on a live connection: the column's type changes, the next call fails once, then works.
    await t.db.connection().execute(async (conn) => {
      for (let i = 0; i < 4; i += 1) await sql`select label from things where id = ${1}`.execute(conn);
      await sql`alter table things alter column label type varchar(40)`.execute(conn);
      const first = await sql`select label from things where id = ${1}`.execute(conn).catch((e: Error) => e);
      expect(first).toBeInstanceOf(Error);
      expect((first as Error).message).toMatch(/cached plan must not change result type/);
      const again = await sql<{ label: string }>`select label from things where id = ${1}`.execute(conn);
      expect(again.rows[0]?.label).toBe('thing 1');
    });
  });

  it('a server that forgets named statements turns naming off', () => {
    const names = new StatementNames();
    const text = 'select label from things where id = $1';
    for (let i = 0; i < 3; i += 1) names.nameFor(text);
    names.failed(text, Object.assign(new Error('prepared statement "larksync_x" does not exist'), { code: '26000' }));
    expect(names.nameFor(text)).toBeUndefined();
    expect(names.nameFor('select 1 where $1::int = 1')).toBeUndefined();
  });

  it('DATABASE_NAMED_STATEMENTS=0 sends every query unnamed', async () => {
    expect(loadConfig({ DATABASE_NAMED_STATEMENTS: '0' }).namedStatements).toBe(false);
    expect(loadConfig({}).namedStatements).toBe(true);
    const plain = connectDatabase(t.url, { max: 1, namedStatements: false });
    try {
      await plain.db.connection().execute(async (conn) => {
        for (let i = 1; i <= 5; i += 1) await sql`select label from things where id = ${i}`.execute(conn);
        expect(await prepared(conn)).toEqual([]);
      });
    } finally {
      await plain.close();
    }
  });
});

describe('named statements on the change-event path', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t?.drop();
  });

  // Each of these ran at every change event or webhook attempt and was left unnamed, for a star
  // expansion (`"a".*`, `select *`) or for a product the star test took for one (`* 1000`), so
  // Postgres planned it again at every call.
  it("the tenant's app lookup, the pacer's take and a webhook lane's head are prepared", async () => {
    const one = connectDatabase(t.url, { max: 1 });
    try {
      const pacer = new Pacer(one.db);
      for (let i = 0; i < 4; i += 1) {
        expect(await findTenantAppConnector(one.db, 'tenant-none', 'contact')).toBeUndefined();
        expect(await pacer.take(`bucket-${i}`, perSecond(1000))).toBeLessThan(1000);
        expect((await headQuery('1', 'tenant-none').execute(one.db)).rows).toEqual([]);
      }
      const texts = (await sql<{ statement: string }>`select statement from pg_prepared_statements where not from_sql`.execute(one.db)).rows.map((r) => r.statement);
      expect(texts.filter((s) => s.includes('left join "apps" as "a"'))).toHaveLength(1);
      expect(texts.filter((s) => s.includes('insert into rate_buckets'))).toHaveLength(1);
      expect(texts.filter((s) => s.includes('head as ('))).toHaveLength(1);
    } finally {
      await one.close();
    }
  });
});

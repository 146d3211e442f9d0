import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../helpers/stack.js';
import {
  call,
  expectError,
  getRun,
  installStoreTenant,
  ISO,
  startFastStack,
  syncToEnd,
  USERS_PATH,
  type RunJson,
  feedCaughtUp,
} from '../helpers/sync-api.js';

interface RecordJson {
  key: string;
  deletedAt: string | null;
  updatedAt: string;
  data: Record<string, unknown>;
}
interface PageJson {
  records: RecordJson[];
  nextCursor: string | null;
  resumeCursor: string;
}

const TENANT = 'tenant-records-1';
const recordsOf = (stream: string, tenantKey = TENANT) => `/api/v1/tenants/${tenantKey}/streams/${stream}/records`;

describe('/api/v1/tenants/{tenantKey}/streams/{stream}/records', () => {
  let stack: Stack;

  async function page(stream: string, query: Record<string, string | undefined> = {}, tenantKey = TENANT): Promise<PageJson> {
    const qs = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined)).toString();
    const res = await call<PageJson>(stack, 'GET', `${recordsOf(stream, tenantKey)}${qs ? `?${qs}` : ''}`);
    expect(res.status).toBe(200);
    return res.body;
  }
  /** Follows nextCursor to the end; returns every record in the order served. */
  async function walk(stream: string, limit: number, query: Record<string, string> = {}): Promise<{ records: RecordJson[]; pages: number }> {
    const records: RecordJson[] = [];
    let cursor: string | undefined;
    let pages = 0;
    for (;;) {
      const p = await page(stream, { ...query, limit: String(limit), cursor });
      pages += 1;
      expect(p.records.length).toBeLessThanOrEqual(limit);
      records.push(...p.records);
      if (!p.nextCursor) return { records, pages };
      expect(p.records).toHaveLength(limit);
      cursor = p.nextCursor;
    }
  }
  const storedUsers = async () =>
    (
      await sql<{ record_key: string; name: string; deleted_at: Date | null }>`
        select record_key, name, deleted_at from contact_users where tenant_key = ${TENANT}`.execute(stack.db.db)
    ).rows;

  beforeAll(async () => {
    stack = await startFastStack();
    await installStoreTenant(stack, TENANT);
    expect((await call(stack, 'PUT', `/api/v1/tenants/${TENANT}/connectors/contact`, { enabled: true })).status).toBe(200);
    expect((await syncToEnd(stack, TENANT, 'contact')).status).toBe('succeeded');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('walks every user exactly once with limit=2, and ends with nextCursor null', async () => {
    const dir = stack.data.contact(TENANT);
    const { records, pages } = await walk('contact_users', 2);
    const keys = records.map((r) => r.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.sort()).toEqual([...dir.users.keys()].sort());
    expect(pages).toBe(Math.ceil(dir.users.size / 2));

    const sample = [...dir.users.values()].find((u) => u.department_ids.length > 1);
    const rec = records.find((r) => r.key === sample?.open_id);
    expect(rec).toEqual({
      key: sample?.open_id,
      deletedAt: null,
      updatedAt: expect.stringMatching(ISO),
      data: expect.objectContaining({
        open_id: sample?.open_id,
        union_id: sample?.union_id,
        name: sample?.name,
        department_ids: sample?.department_ids,
        is_resigned: sample?.status.is_resigned,
        first_seen_at: expect.stringMatching(ISO),
        raw: expect.objectContaining({ open_id: sample?.open_id, name: sample?.name, job_title: sample?.job_title }),
      }),
    });
    // Internals of the table are not part of the contract.
    expect(rec?.data).not.toHaveProperty('tenant_key');
    expect(rec?.data).not.toHaveProperty('change_seq');
    expect(rec?.data).not.toHaveProperty('content_hash');

    const departments = await page('contact_departments', { limit: '1000' });
    expect(departments.nextCursor).toBeNull();
    expect(departments.records.map((r) => r.key).sort()).toEqual([...dir.departments.keys()].sort());
    // The default limit (100) holds every user of this tenant in one page.
    expect((await page('contact_users')).records).toHaveLength(dir.users.size);
  });

  it('never skips a row while a sync writes: changed rows come again later with their new content, deleted ones with deletedAt', async () => {
    const dir = stack.data.contact(TENANT);
    const seen: RecordJson[] = [];
    const first = await page('contact_users', { limit: '2' });
    const second = await page('contact_users', { limit: '2', cursor: first.nextCursor ?? undefined });
    seen.push(...first.records, ...second.records);
    let cursor = second.nextCursor as string;
    expect(cursor).toBeTruthy();

    // Behind the cursor: one renamed, one deleted. Ahead of it: one renamed.
    const [renamedBehind, deletedBehind] = seen.map((r) => r.key);
    const allKeys = [...dir.users.keys()];
    const renamedAhead = allKeys.find((k) => !seen.some((r) => r.key === k) && !dir.users.get(k)?.department_ids.includes('0'));
    const behindUser = dir.users.get(renamedBehind ?? '');
    const aheadUser = dir.users.get(renamedAhead ?? '');
    if (!behindUser || !aheadUser || !deletedBehind) throw new Error('test data has too few users');
    behindUser.name = 'Renamed Behind';
    aheadUser.name = 'Renamed Ahead';
    dir.users.delete(deletedBehind);

    // Slow pages keep the run writing while the walk goes on.
    stack.sim.injectFault({ path: USERS_PATH, delayMs: 60, count: 1_000_000 });
    const sinceMs = Date.now();
    let pagesWhileRunning = 0;
    /** Runs a full contact sync while walking the feed from the cursor held, until the run has finished and the walk caught up. */
    const followRun = async () => {
      const started = await call<RunJson>(stack, 'POST', `/api/v1/tenants/${TENANT}/syncs`, { module: 'contact', mode: 'full' });
      expect(started.status).toBe(202);
      for (;;) {
        // A slow reader, so the run writes ahead of the cursor as well as behind it.
        await new Promise((r) => setTimeout(r, 40));
        // The run's state is read first: once it has finished and the feed caught up with its
        // commits, the page below sees all it wrote.
        const run = await getRun(stack, started.body.id);
        const finished = !['queued', 'running'].includes(run.status);
        if (finished) await feedCaughtUp(stack, TENANT, ['contact_users']);
        const p = await page('contact_users', { limit: '2', cursor });
        if (!finished) pagesWhileRunning += 1;
        seen.push(...p.records);
        // resumeCursor: where this page ended, even when it reached the end of what is committed.
        cursor = p.resumeCursor;
        if (!p.nextCursor && finished) break;
      }
      expect((await getRun(stack, started.body.id)).status).toBe('succeeded');
    };
    await followRun();
    // A user missing from one complete listing is only a candidate; the next complete listing
    // that misses it too marks it deleted.
    expect(seen.filter((r) => r.key === deletedBehind).map((r) => r.deletedAt)).toEqual([null]);
    await followRun();
    stack.sim.clearFaults();
    expect(pagesWhileRunning).toBeGreaterThan(0);

    const last = new Map<string, RecordJson>();
    for (const r of seen) last.set(r.key, r);
    const stored = await storedUsers();
    // Every row's latest version was served: nothing skipped, nothing stale.
    expect([...last.keys()].sort()).toEqual(stored.map((r) => r.record_key).sort());
    for (const row of stored) {
      expect(last.get(row.record_key)?.data.name, row.record_key).toBe(row.name);
      expect(last.get(row.record_key)?.deletedAt, row.record_key).toBe(row.deleted_at ? row.deleted_at.toISOString() : null);
    }
    const versions = (key: string) => seen.filter((r) => r.key === key);
    expect(versions(renamedBehind ?? '').map((r) => r.data.name)).toEqual([expect.stringMatching(/^User /), 'Renamed Behind']);
    expect(versions(deletedBehind).map((r) => r.deletedAt)).toEqual([null, expect.stringMatching(ISO)]);
    expect(versions(renamedAhead ?? '').at(-1)?.data.name).toBe('Renamed Ahead');

    // A deleted row stays readable, with its last known content.
    const gone = (await walk('contact_users', 1000)).records.find((r) => r.key === deletedBehind);
    expect(gone?.deletedAt).toMatch(ISO);
    expect(gone?.data).toMatchObject({ open_id: deletedBehind, raw: expect.objectContaining({ open_id: deletedBehind }) });

    // updatedSince: exactly the rows this run changed.
    const since = new Date(sinceMs - 1).toISOString();
    const changed = await walk('contact_users', 2, { updatedSince: since });
    expect(changed.records.map((r) => r.key).sort()).toEqual([renamedBehind, deletedBehind, renamedAhead].sort());
    expect((await page('contact_users', { updatedSince: new Date(Date.now() + 60_000).toISOString() })).records).toEqual([]);
    // Offsets other than Z are instants too.
    const plusTwo = new Date(sinceMs - 1 + 2 * 3_600_000).toISOString().replace('Z', '+02:00');
    expect((await page('contact_users', { updatedSince: plusTwo, limit: '1000' })).records.map((r) => r.key).sort()).toEqual(
      changed.records.map((r) => r.key).sort(),
    );
  });

  it('answers 400 for a bad cursor, limit or updatedSince, and 404 for an unknown stream or tenant', async () => {
    const bad = (query: string, code = 'invalid_request') => expectError(stack, 'GET', `${recordsOf('contact_users')}?${query}`, undefined, 400, code);
    expect(await bad('cursor=garbage', 'invalid_cursor')).toContain('cursor');
    await bad(`cursor=${Buffer.from('v1:12x').toString('base64url')}`, 'invalid_cursor');
    await bad(`cursor=${Buffer.from('v2:12').toString('base64url')}`, 'invalid_cursor');
    expect(await bad('limit=0')).toMatch(/^querystring\.limit: /);
    expect(await bad('limit=1001')).toMatch(/^querystring\.limit: /);
    expect(await bad('limit=ten')).toMatch(/^querystring\.limit: /);
    // The last is valid RFC 3339 (a leap second) that a Date cannot hold.
    for (const when of ['yesterday', '2026-01-01', '2026-13-01T00:00:00Z', '2026-01-01T00:00:00', '2016-12-31T23:59:60Z']) {
      expect(await bad(`updatedSince=${encodeURIComponent(when)}`), when).toMatch(/^querystring\.updatedSince: /);
    }
    const limitOk = await page('contact_users', { limit: '1000' });
    expect(limitOk.nextCursor).toBeNull();

    const unknown = await expectError(stack, 'GET', recordsOf('contact_people'), undefined, 404, 'stream_not_found');
    expect(unknown).toContain('contact_users');
    // The stream is looked at before the query, so a bad query on an unknown stream is still a 404.
    await expectError(stack, 'GET', `${recordsOf('nope')}?limit=0`, undefined, 404, 'stream_not_found');
    await expectError(stack, 'GET', recordsOf('contact_users', 'tenant-nobody'), undefined, 404, 'tenant_not_found');
    expect((await stack.api('GET', recordsOf('contact_users'), undefined, '')).status).toBe(401);
  });

  it("shows only the tenant's own rows, and an empty page for a stream never synced", async () => {
    const other = 'tenant-records-2';
    await installStoreTenant(stack, other);
    const empty = { records: [], nextCursor: null, resumeCursor: expect.any(String) };
    expect(await page('contact_users', {}, other)).toEqual(empty);
    expect(await page('approval_instances')).toEqual(empty);
    // A cursor from one tenant's walk only moves along the change order; it reveals nothing of others.
    const mine = await page('contact_users', { limit: '1' });
    const theirs = await page('contact_users', { cursor: mine.nextCursor ?? undefined }, other);
    expect(theirs).toEqual(empty);
    // An empty page resumes where it was asked to.
    expect(theirs.resumeCursor).toBe(mine.nextCursor);
  });
});

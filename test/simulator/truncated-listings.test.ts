import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PagedApi } from '../../simulator/data/index.js';
import { startDataClient, type DataClient, type LarkBody } from './data-client.js';

// Listings that end early (review finding L5): Lark can answer has_more: true without a
// page_token. SimData.truncateListings(api, n) makes the next n pages of one API answer that way,
// their items unchanged; other APIs and later pages are not affected.

const TENANT = 'tk-sim-truncated';
const DAY = 86_400_000;

interface Page extends LarkBody {
  data?: { has_more: boolean; page_token?: string; items?: unknown[]; instance_code_list?: string[]; total?: number };
}

describe('simulator listings cut short', () => {
  let client: DataClient;
  let token: string;
  /** The first page of each paged API, small enough that more pages follow. */
  const firstPage: Record<PagedApi, () => string> = {
    'contact.departments.children': () => '/open-apis/contact/v3/departments/0/children?page_size=1',
    'contact.users.find_by_department': () => '/open-apis/contact/v3/users/find_by_department?department_id=0&page_size=1',
    'approval.instances.list': () => {
      const approval = client.data.approval(TENANT);
      const end = approval.anchorMs;
      return `/open-apis/approval/v4/instances?approval_code=${approval.codes()[0]}&start_time=${end - 2 * DAY}&end_time=${end}&page_size=10`;
    },
    'bitable.fields.list': () => {
      const { appToken, projects } = client.data.bitable(TENANT).refs.main;
      return `/open-apis/bitable/v1/apps/${appToken}/tables/${projects}/fields?page_size=5`;
    },
    'bitable.records.search': () => {
      const { appToken, projects } = client.data.bitable(TENANT).refs.main;
      return `/open-apis/bitable/v1/apps/${appToken}/tables/${projects}/records/search?page_size=10`;
    },
  };
  const get = async (api: PagedApi, url = firstPage[api]()) =>
    (await client.call<Page>(token, api === 'bitable.records.search' ? 'POST' : 'GET', url, api === 'bitable.records.search' ? {} : undefined)).body;
  const itemsOf = (p: Page) => p.data?.items ?? p.data?.instance_code_list;

  beforeAll(async () => {
    client = await startDataClient([TENANT], { enforceRateLimits: false });
    client.data.bitable(TENANT, { projects: 100, ledger: 0, tasks: 0, events: 0 });
    token = await client.tenantToken(TENANT);
  });
  afterAll(async () => {
    await client.stop();
  });

  for (const api of Object.keys(firstPage) as PagedApi[]) {
    it(`${api}: the next page answers its items with has_more true and no page_token; the page after is whole again`, async () => {
      const normal = await get(api);
      expect(normal.code).toBe(0);
      expect(normal.data?.has_more).toBe(true);
      expect(typeof normal.data?.page_token).toBe('string');
      expect(itemsOf(normal)?.length).toBeGreaterThan(0);

      client.data.truncateListings(api);
      const cut = await get(api);
      expect(cut.code).toBe(0);
      expect(cut.data?.has_more).toBe(true);
      expect(cut.data && 'page_token' in cut.data).toBe(false);
      expect(itemsOf(cut)).toEqual(itemsOf(normal));
      expect({ ...cut.data, items: undefined, instance_code_list: undefined }).toEqual({ ...normal.data, items: undefined, instance_code_list: undefined, page_token: undefined });

      expect(await get(api)).toEqual(normal);
    });
  }

  it('cuts the given number of pages, also a last page, and only of the named API; a rejected request uses none', async () => {
    const { appToken, projects } = client.data.bitable(TENANT).refs.main;
    const search = `/open-apis/bitable/v1/apps/${appToken}/tables/${projects}/records/search`;
    client.data.truncateListings('bitable.records.search', 2);

    // Another API is not affected, nor is a request answered with an error.
    const children = await get('contact.departments.children');
    expect(typeof children.data?.page_token).toBe('string');
    const rejected = await client.call<Page>(token, 'POST', `${search}?page_size=501`, {});
    expect(rejected.body.code).toBe(1254011);

    const page = (query: string) => client.call<Page>(token, 'POST', `${search}?page_size=60${query}`, {}).then((r) => r.body);
    for (const cut of [await page(''), await page('')]) {
      expect(cut.data).toMatchObject({ has_more: true, total: 100 });
      expect(cut.data?.items?.length).toBe(60);
      expect(cut.data?.page_token).toBeUndefined();
    }
    const whole = await page('');
    expect(typeof whole.data?.page_token).toBe('string');

    // The last page (records 60-99) ends the listing; cut short, it still claims more.
    client.data.truncateListings('bitable.records.search');
    const last = await page(`&page_token=${whole.data?.page_token}`);
    expect(last.data).toMatchObject({ has_more: true, total: 100 });
    expect(last.data?.items?.length).toBe(40);
    expect(last.data?.page_token).toBeUndefined();
    expect((await page(`&page_token=${whole.data?.page_token}`)).data).toMatchObject({ has_more: false, total: 100 });
  });
});

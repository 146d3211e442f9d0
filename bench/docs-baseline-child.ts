/**
 * The baseline of the docs benchmark, in its own process: what KBSync-style tools do on every run.
 * It walks the wiki space (nodes 50 a page, one parent at a time), fetches the Markdown of every
 * docx page (docs/v1/content) and uploads it to RAGFlow as a new document, then starts its parse;
 * nothing is remembered between runs, so every run costs the same. Calls go one at a time; a call
 * refused by Lark's limits (99991400) waits `x-ogw-ratelimit-reset` seconds and is sent again, as
 * limits-and-errors.md §3 says. Pages over 10 MB (2889925) are skipped. Started by bench/docs-sync.ts.
 */
import { serveParent } from './child-ipc.js';

export interface DocsBaselineArgs {
  simUrl: string;
  appId: string;
  appSecret: string;
  ticket: string;
  tenant: string;
  spaceId: string;
  ragflowUrl: string;
  ragflowKey: string;
  datasetId: string;
}

export interface DocsBaselineResult {
  seconds: number;
  listings: number;
  contents: number;
  uploads: number;
  skipped: number;
  throttled: number;
}

interface LarkAnswer<T> {
  code: number;
  msg?: string;
  data?: T;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

serveParent(
  {
    run: async (a: DocsBaselineArgs): Promise<DocsBaselineResult> => {
      let throttled = 0;
      const post = async <T>(path: string, body: unknown, token?: string): Promise<LarkAnswer<T>> => {
        const res = await fetch(`${a.simUrl}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify(body),
        });
        return (await res.json()) as LarkAnswer<T>;
      };
      const app = (await post<never>('/open-apis/auth/v3/app_access_token', { app_id: a.appId, app_secret: a.appSecret, app_ticket: a.ticket })) as LarkAnswer<never> & { app_access_token?: string };
      const tenant = (await post<never>('/open-apis/auth/v3/tenant_access_token', { app_access_token: app.app_access_token, tenant_key: a.tenant })) as LarkAnswer<never> & { tenant_access_token?: string };
      const token = tenant.tenant_access_token;
      if (!token) throw new Error(`baseline: no tenant token (${tenant.code} ${tenant.msg})`);

      const get = async <T>(path: string, query: Record<string, string | undefined>): Promise<LarkAnswer<T>> => {
        const q = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined));
        for (;;) {
          const res = await fetch(`${a.simUrl}${path}?${q}`, { headers: { authorization: `Bearer ${token}` } });
          const body = (await res.json()) as LarkAnswer<T>;
          if (body.code !== 99991400) return body;
          throttled += 1;
          await sleep(Number(res.headers.get('x-ogw-ratelimit-reset') ?? 1) * 1000);
        }
      };

      const started = performance.now();
      let listings = 0;
      let contents = 0;
      let uploads = 0;
      let skipped = 0;
      const parents: string[] = [''];
      const pages: Array<{ obj: string; title: string }> = [];
      while (parents.length > 0) {
        const parent = parents.shift()!;
        let pageToken: string | undefined;
        do {
          const page = await get<{ items?: Array<{ node_token: string; obj_token: string; obj_type: string; title: string; has_child: boolean }>; has_more?: boolean; page_token?: string }>(
            `/open-apis/wiki/v2/spaces/${a.spaceId}/nodes`,
            { page_size: '50', page_token: pageToken, parent_node_token: parent || undefined },
          );
          listings += 1;
          if (page.code !== 0) throw new Error(`baseline: wiki listing answered ${page.code} ${page.msg}`);
          for (const n of page.data?.items ?? []) {
            if (n.obj_type === 'docx') pages.push({ obj: n.obj_token, title: n.title });
            if (n.has_child) parents.push(n.node_token);
          }
          pageToken = page.data?.has_more ? page.data.page_token : undefined;
        } while (pageToken);
      }

      for (const p of pages) {
        const body = await get<{ content?: string }>('/open-apis/docs/v1/content', { doc_token: p.obj, doc_type: 'docx', content_type: 'markdown' });
        contents += 1;
        if (body.code !== 0) {
          skipped += 1;
          continue;
        }
        const form = new FormData();
        form.append('file', new Blob([body.data?.content ?? '']), `${p.title}.md`);
        const up = await fetch(`${a.ragflowUrl}/api/v1/datasets/${a.datasetId}/documents`, { method: 'POST', headers: { authorization: `Bearer ${a.ragflowKey}` }, body: form });
        const created = (await up.json()) as { code: number; data?: Array<{ id: string }> };
        const id = created.data?.[0]?.id;
        if (created.code !== 0 || !id) throw new Error(`baseline: RAGFlow upload answered ${created.code}`);
        uploads += 1;
        await fetch(`${a.ragflowUrl}/api/v1/datasets/${a.datasetId}/chunks`, {
          method: 'POST',
          headers: { authorization: `Bearer ${a.ragflowKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ document_ids: [id] }),
        });
      }
      return { seconds: (performance.now() - started) / 1000, listings, contents, uploads, skipped, throttled };
    },
  },
  async () => undefined,
);

/**
 * Lark and RAGFlow for the docs benchmark, in their own process: the simulator with one store app,
 * one installed tenant whose shared wiki space holds BENCH_SIM_DOCS pages nested 5 deep (some of
 * them about 1.5 MB of Markdown, see bigWikiDocsShape), Lark's frequency limits enforced (the docx
 * and docs content family at 5/s per app, wiki listings at 100/min), and a RAGFlow v0.27 fake
 * with one dataset. Started by bench/docs-sync.ts; the same seed gives the same wiki in every
 * process, so larksync and the baseline each get an identical copy.
 */
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { SimData } from '../simulator/data/index.js';
import { bigWikiDocsShape, type DocsApi } from '../simulator/data/docs/index.js';
import { RagflowFake } from '../simulator/kb/index.js';
import { serveParent } from './child-ipc.js';

const env = process.env;
const appId = env.BENCH_SIM_APP_ID ?? 'cli_bench_docs';
const tenant = env.BENCH_SIM_TENANT ?? 'tenant-bench-docs';
const pages = Number(env.BENCH_SIM_DOCS ?? 2000);

const sim = new LarkSimulator();
sim.addApp({ appId, appSecret: env.BENCH_SIM_APP_SECRET ?? 'bench-secret', verificationToken: env.BENCH_SIM_VTOK ?? 'vtok-bench', kind: 'store' });
sim.installTenant(appId, tenant);
const data = new SimData(sim, { enforceRateLimits: true });
// 2,000 pages with 20 large and 2 over 10 MB; scaled down, the same shares (at least one of each).
const docs = data.docs(tenant, {
  ...bigWikiDocsShape,
  seed: 'docs:bench',
  wikiDocuments: pages,
  largePages: Math.max(1, Math.round((pages * (bigWikiDocsShape.largePages ?? 20)) / 2000)),
  oversizePages: Math.max(1, Math.round((pages * (bigWikiDocsShape.oversizePages ?? 2)) / 2000)),
});
const url = await sim.start();

// Parses take 200 ms on the fake's clock: RAGFlow's real parse time (embedding) is not what is measured.
const ragflow = new RagflowFake({ version: '0.27.0', parseMs: 200 });
const ragflowUrl = await ragflow.start();
const { apiKey } = ragflow.addOwner();
const dataset = ragflow.addDataset(apiKey, { name: 'lark wiki' });

let mark = 0;

export interface DocsSimInfo {
  url: string;
  spaceId: string;
  pages: number;
  ragflowUrl: string;
  ragflowKey: string;
  datasetId: string;
}

export interface DocsSimStats {
  /** Lark docs calls since the mark, by API (those refused by the limits counted apart) */
  lark: Partial<Record<DocsApi, number>>;
  /** the first and last docs/v1/content call since the mark (ms since the epoch), null when none */
  contentFirstAt: number | null;
  contentLastAt: number | null;
  /** RAGFlow calls since the mark, by route, and its writes */
  sink: Record<string, number>;
  sinkCalls: number;
  sinkWrites: { uploads: number; updates: number; deletes: number; parses: number; stops: number };
  /** documents in the dataset now, and how many distinct names (a duplicate shows as fewer names) */
  sinkDocuments: number;
  sinkDistinctNames: number;
  sinkNotDone: number;
  /** requests Lark's limits refused since the process started, and since the mark by API */
  throttled: number;
  throttledByApi: Partial<Record<DocsApi, number>>;
}

serveParent(
  {
    info: async (): Promise<DocsSimInfo> => ({ url, spaceId: docs.refs.space, pages: docs.refs.spaceNodes.length, ragflowUrl, ragflowKey: apiKey, datasetId: dataset.id }),
    ticket: async () => sim.issueTicket(appId),
    mark: async () => {
      mark = docs.calls.length;
      ragflow.resetCounts();
    },
    stats: async (): Promise<DocsSimStats> => {
      const lark: Partial<Record<DocsApi, number>> = {};
      let first: number | null = null;
      let last: number | null = null;
      const throttledByApi: Partial<Record<DocsApi, number>> = {};
      for (const c of docs.calls.slice(mark)) {
        if (c.code === 99991400) {
          throttledByApi[c.api] = (throttledByApi[c.api] ?? 0) + 1;
          continue;
        }
        lark[c.api] = (lark[c.api] ?? 0) + 1;
        if (c.api === 'docs.content') {
          first ??= c.at;
          last = c.at;
        }
      }
      const inSink = ragflow.documents(dataset.id);
      return {
        lark,
        contentFirstAt: first,
        contentLastAt: last,
        sink: ragflow.countsByRoute(),
        sinkCalls: ragflow.count(),
        sinkWrites: { ...ragflow.writes },
        sinkDocuments: inSink.length,
        sinkDistinctNames: new Set(inSink.map((d) => d.name)).size,
        sinkNotDone: inSink.filter((d) => d.status !== 'DONE').length,
        throttled: data.limiter.throttled,
        throttledByApi,
      };
    },
    // The call log keeps every call: a long benchmark has no use for the ones already counted.
    forget: async () => {
      docs.calls.splice(0, mark);
      mark = 0;
    },
  },
  async () => {
    await ragflow.stop();
    await sim.stop();
  },
);

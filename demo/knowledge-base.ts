/**
 * The demo's knowledge base: a RAGFlow fake (simulator/kb, RAGFlow v0.27's HTTP API) with one
 * dataset, the sink larksync delivers a tenant's Docs and Wiki into (PUT …/sinks/kb over the REST
 * API, as an operator would), and the wait for that delivery with its line in the summary.
 */
import { RagflowFake } from '../simulator/kb/index.js';
import type { SinkView } from '../src/sinks/sinks.service.js';
import { LarksyncApi, waitUntil } from './api-client.js';
import { fmt, type ProgressView } from './progress.js';

/** The sink name the docs connectors name (`config.sinks`). */
export const KB_SINK = 'kb';

export interface KnowledgeBase {
  fake: RagflowFake;
  url: string;
  apiKey: string;
  datasetId: string;
  datasetName: string;
}

/** Starts the RAGFlow fake (a parse takes 300 ms on its clock) with one account and one dataset. */
export async function startKnowledgeBase(port = 0): Promise<KnowledgeBase> {
  const fake = new RagflowFake({ version: '0.27.0', parseMs: 300, port });
  const url = await fake.start();
  const { apiKey } = fake.addOwner();
  const datasetName = 'Lark wiki';
  const ds = fake.addDataset(apiKey, { name: datasetName });
  return { fake, url, apiKey, datasetId: ds.id, datasetName };
}

/** PUT /api/v1/tenants/{key}/sinks/kb: the dataset as the RAGFlow UI would show its id and key. */
export async function putSink(api: LarksyncApi, tenantKey: string, kb: KnowledgeBase): Promise<void> {
  await api.call('PUT', `/api/v1/tenants/${tenantKey}/sinks/${KB_SINK}`, { type: 'ragflow', url: kb.url, apiKey: kb.apiKey, datasetId: kb.datasetId, enabled: true });
}

export interface KnowledgeBaseDemo {
  tenantKey: string;
  tenantName: string;
  datasetName: string;
  /** documents the docs run left in docs_content, and their states in the sink */
  documents: number;
  delivered: number;
  failed: number;
  /** documents in the RAGFlow dataset, and how many of them are parsed */
  inDataset: number;
  parsed: number;
  /** the docs run's end to the sink being idle */
  seconds: number;
}

/** Waits until the sink has delivered every document the docs run produced (GET …/sinks/kb). */
export async function waitDelivered(api: LarksyncApi, tenant: { key: string; name: string }, documents: number, kb: KnowledgeBase, view: ProgressView): Promise<KnowledgeBaseDemo> {
  const started = performance.now();
  let lastSaid = 0;
  const sink = await waitUntil(
    async () => {
      const s = await api.get<SinkView>(`/api/v1/tenants/${tenant.key}/sinks/${KB_SINK}`);
      const settled = s.documents.done + s.documents.failed;
      if (performance.now() - lastSaid > 5_000) {
        lastSaid = performance.now();
        view.say(`GET /api/v1/tenants/${tenant.key}/sinks/${KB_SINK}: ${fmt(s.documents.done)} of ${fmt(documents)} documents delivered to RAGFlow (${s.delivery.state})`);
      }
      return s.delivery.state === 'idle' && settled >= documents ? s : undefined;
    },
    600_000,
    `the ${KB_SINK} sink to deliver ${documents} documents`,
    500,
  );
  const inDataset = kb.fake.documents(kb.datasetId);
  return {
    tenantKey: tenant.key,
    tenantName: tenant.name,
    datasetName: kb.datasetName,
    documents,
    delivered: sink.documents.done,
    failed: sink.documents.failed,
    inDataset: inDataset.length,
    parsed: inDataset.filter((d) => d.status === 'DONE').length,
    seconds: (performance.now() - started) / 1000,
  };
}

/** The knowledge-base part of the summary. */
export function formatKnowledgeBase(kb: KnowledgeBaseDemo | undefined): string | undefined {
  if (!kb) return undefined;
  return (
    `Knowledge base: ${fmt(kb.delivered)} of ${fmt(kb.documents)} ${kb.tenantName} documents (Wiki and Drive) delivered to the RAGFlow dataset "${kb.datasetName}"` +
    `${kb.failed > 0 ? ` (${fmt(kb.failed)} failed)` : ''}, ${kb.seconds.toFixed(1)} s after the docs run; the dataset holds ${fmt(kb.inDataset)} documents, ${fmt(kb.parsed)} parsed, ` +
    `one per Lark document. Later runs send only what changed.`
  );
}

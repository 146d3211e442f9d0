/**
 * The Lark simulator for the writes benchmark, in its own process: one store app, one installed
 * tenant whose main Base has an empty "Orders" table to write into. Lark's frequency limits are
 * enforced (50 write calls/s, 20 searches and batch_gets/s per API, app and tenant) unless
 * BENCH_SIM_ENFORCE_LIMITS=0; a write call holds its Base for BENCH_SIM_WRITE_LATENCY_MS
 * (default 150, the simulator's default). Started by bench/writes.ts.
 */
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { SimData } from '../simulator/data/index.js';
import { textOf } from '../simulator/data/bitable/table.js';
import type { BaseWriteStats } from '../simulator/data/bitable/writes.js';
import { serveParent } from './child-ipc.js';

const env = process.env;
const appId = env.BENCH_SIM_APP_ID ?? 'cli_bench_writes';
const tenant = env.BENCH_SIM_TENANT ?? 'tenant-bench-writes';

const sim = new LarkSimulator();
sim.addApp({ appId, appSecret: env.BENCH_SIM_APP_SECRET ?? 'bench-secret', verificationToken: env.BENCH_SIM_VTOK ?? 'vtok-bench', kind: 'store' });
sim.installTenant(appId, tenant);
const data = new SimData(sim, {
  enforceRateLimits: env.BENCH_SIM_ENFORCE_LIMITS !== '0',
  bitableWrites: { latencyMs: Number(env.BENCH_SIM_WRITE_LATENCY_MS ?? 150) },
});
const bitable = data.bitable(tenant, { projects: 20, ledger: 0, tasks: 0, events: 0, orders: 0 });
const { appToken, orders } = bitable.refs.main;
const table = bitable.table(appToken, orders);
const tablePath = `/open-apis/bitable/v1/apps/${appToken}/tables/${orders}`;
const url = await sim.start();
// Nothing here reads the request log, and a write call's body is a thousand records.
setInterval(() => {
  bitable.requests.length = 0;
}, 1_000).unref();

export interface WritesSimInfo {
  url: string;
  appToken: string;
  tableId: string;
  latencyMs: number;
  enforceLimits: boolean;
}

export interface WritesSimStats {
  write: Omit<BaseWriteStats, 'batchSizes' | 'idleGapsMs'> & { batchSizes: Summary; idleGapsMs: Summary };
  searches: number;
  batchGets: number;
  fieldLists: number;
  /** requests the simulator refused for a frequency limit */
  throttled: number;
  rows: number;
}

export interface KeyCheck {
  rows: number;
  distinct: number;
  /** keys held by more than one record (the first few) */
  doubled: string[];
  /** records without a key */
  missing: number;
  /** records whose key starts with `prefix`, and how many of those have Qty = `qty` */
  prefixed: number;
  prefixedWithQty: number;
}

export interface Summary {
  n: number;
  min: number;
  median: number;
  p90: number;
  max: number;
  total: number;
}

function summarise(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    min: s[0] ?? 0,
    median: s[Math.floor(s.length / 2)] ?? 0,
    p90: s[Math.floor(s.length * 0.9)] ?? 0,
    max: s[s.length - 1] ?? 0,
    total: s.reduce((a, b) => a + b, 0),
  };
}

serveParent(
  {
    info: async (): Promise<WritesSimInfo> => ({ url, appToken, tableId: orders, latencyMs: data.bitableWrites.latencyMs, enforceLimits: data.enforceRateLimits }),
    ticket: async () => sim.issueTicket(appId),
    stats: async (): Promise<WritesSimStats> => {
      const w = bitable.writeStats(appToken);
      return {
        write: { ...w, batchSizes: summarise(w.batchSizes), idleGapsMs: summarise(w.idleGapsMs) },
        searches: sim.count(`${tablePath}/records/search`),
        batchGets: sim.count(`${tablePath}/records/batch_get`),
        fieldLists: sim.count(`${tablePath}/fields`),
        throttled: data.limiter.throttled,
        rows: table.count,
      };
    },
    rows: async () => table.count,
    resetStats: async () => {
      sim.resetCounts();
      bitable.writes.resetStats();
      data.limiter.throttled = 0;
    },
    /** Every record's key field: how many distinct, which doubled. */
    checkKeys: async (a: { field: string; prefix: string; qty: number }): Promise<KeyCheck> => {
      const seen = new Set<string>();
      const doubled: string[] = [];
      let missing = 0;
      let prefixed = 0;
      let prefixedWithQty = 0;
      for (let i = 0; i < table.count; i += 1) {
        const r = table.nth(i);
        const key = textOf(r?.fields[a.field]);
        if (key === undefined || key === '') {
          missing += 1;
          continue;
        }
        if (seen.has(key)) {
          if (doubled.length < 10) doubled.push(key);
        } else seen.add(key);
        if (key.startsWith(a.prefix)) {
          prefixed += 1;
          if (r?.fields.Qty === a.qty) prefixedWithQty += 1;
        }
      }
      return { rows: table.count, distinct: seen.size, doubled, missing, prefixed, prefixedWithQty };
    },
  },
  () => sim.stop(),
);

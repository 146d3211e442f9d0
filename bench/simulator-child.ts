/**
 * The Lark simulator as its own process for benchmarks: one store app, one installed tenant whose
 * "Events" table holds BENCH_SIM_RECORDS records (generated on demand, never all in memory).
 * BENCH_SIM_ENFORCE_LIMITS=0 lifts Lark's frequency limits. Started by bench/base-sync.ts.
 */
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { SimData } from '../simulator/data/index.js';
import { serveParent } from './child-ipc.js';

const env = process.env;
const appId = env.BENCH_SIM_APP_ID ?? 'cli_bench_sync';
const tenant = env.BENCH_SIM_TENANT ?? 'tenant-bench-base';
const records = Number(env.BENCH_SIM_RECORDS ?? 1_000_000);

const sim = new LarkSimulator();
sim.addApp({ appId, appSecret: env.BENCH_SIM_APP_SECRET ?? 'bench-secret', verificationToken: env.BENCH_SIM_VTOK ?? 'vtok-bench', kind: 'store' });
sim.installTenant(appId, tenant);
const data = new SimData(sim, { enforceRateLimits: env.BENCH_SIM_ENFORCE_LIMITS !== '0' });
const bitable = data.bitable(tenant, { events: records });
const { appToken, events } = bitable.refs.big;
const searchPath = `/open-apis/bitable/v1/apps/${appToken}/tables/${events}/records/search`;
const fieldsPath = `/open-apis/bitable/v1/apps/${appToken}/tables/${events}/fields`;
const url = await sim.start();

export interface SimInfo {
  url: string;
  appToken: string;
  tableId: string;
  records: number;
}

export interface SimStats {
  searches: number;
  fieldLists: number;
  /** requests the simulator answered with a frequency-limit error */
  throttled: number;
  /** when each search and field listing arrived (Date.now() ms): where a paced run's time goes */
  callTimes: number[];
}

serveParent(
  {
    info: async (): Promise<SimInfo> => ({ url, appToken, tableId: events, records: bitable.table(appToken, events).count }),
    ticket: async () => sim.issueTicket(appId),
    stats: async (): Promise<SimStats> => ({
      searches: sim.count(searchPath),
      fieldLists: sim.count(fieldsPath),
      throttled: data.limiter.throttled,
      callTimes: bitable.requests.filter((r) => r.api === 'search' || r.api === 'fields').map((r) => r.at),
    }),
    resetStats: async () => {
      sim.resetCounts();
      // The request log keeps every search's body: a benchmark has no use for it across runs.
      bitable.requests.length = 0;
      data.limiter.throttled = 0;
    },
  },
  () => sim.stop(),
);

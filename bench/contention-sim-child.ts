/**
 * The Lark simulator for the contention benchmark, in its own process: one store app with
 * BENCH_SIM_TENANTS installed tenants (`tenant-contention-<i>`), each with an "Events" table of
 * BENCH_SIM_RECORDS records (generated on demand), Lark's frequency limits lifted so that every
 * tenant's sync runs at full speed. Started by bench/contention.ts.
 */
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { SimData } from '../simulator/data/index.js';
import { serveParent } from './child-ipc.js';

const env = process.env;
const appId = env.BENCH_SIM_APP_ID ?? 'cli_bench_contention';
const tenants = Number(env.BENCH_SIM_TENANTS ?? 20);
const records = Number(env.BENCH_SIM_RECORDS ?? 50_000);

const sim = new LarkSimulator();
sim.addApp({
  appId,
  appSecret: env.BENCH_SIM_APP_SECRET ?? 'bench-secret',
  verificationToken: env.BENCH_SIM_VTOK ?? 'vtok-bench',
  encryptKey: env.BENCH_SIM_ENCRYPT_KEY,
  kind: 'store',
});
const data = new SimData(sim, { enforceRateLimits: false });
const keys = Array.from({ length: tenants }, (_, i) => `tenant-contention-${i}`);
const tables = keys.map((tenant) => {
  sim.installTenant(appId, tenant);
  const { appToken, events } = data.bitable(tenant, { events: records, projects: 0, ledger: 0, tasks: 0 }).refs.big;
  return { tenant, appToken, tableId: events };
});
const url = await sim.start();

export interface ContentionSimInfo {
  url: string;
  tables: Array<{ tenant: string; appToken: string; tableId: string }>;
  records: number;
}

serveParent(
  {
    info: async (): Promise<ContentionSimInfo> => ({ url, tables, records }),
    ticket: async () => sim.issueTicket(appId),
    install: async (tenant: string) => sim.installTenant(appId, tenant),
  },
  () => sim.stop(),
);

/**
 * larksync for the writes benchmark: the production bootstrap with its HTTP endpoint and the
 * worker (crons off, so nothing but the measured writes runs), configured by environment variables
 * as `npm start` is, plus BENCH_RATE_LIMIT_SCALE (1 = Lark's documented tiers). The parent
 * installs the tenant over IPC and sends the writes over HTTP. Started by bench/writes.ts.
 */
import { pino } from 'pino';
import { startLarksync } from '../src/bootstrap.js';
import { loadConfig } from '../src/config/env.js';
import { serveParent } from './child-ipc.js';

const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1' });
const larksync = await startLarksync(config, {
  log: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' }, pino.destination(2)),
  workerOptions: { cron: false },
  rateLimitScale: Number(process.env.BENCH_RATE_LIMIT_SCALE ?? 1),
});
const s = larksync.services;

serveParent(
  {
    url: async () => larksync.url,
    setup: async (a: { appId: string; ticket: string; tenant: string }) => {
      await s.tickets.save(a.appId, a.ticket, new Date(), null);
      await s.tenants.install({ tenantKey: a.tenant, appId: a.appId }, null);
      await s.tokens.getTenantAccessToken(a.tenant);
    },
  },
  () => larksync.stop(),
);

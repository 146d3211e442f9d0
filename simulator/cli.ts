/**
 * Runs the Lark simulator on its own, to try larksync without a Lark account:
 *
 *   SIM_PORT=3900 npm run simulator
 *   LARK_DOMAIN=http://127.0.0.1:3900 LARK_APP_ID=cli_sim_store LARK_APP_SECRET=sim-secret \
 *     LARK_VERIFICATION_TOKEN=sim-vtok LARK_ENCRYPT_KEY=sim-encrypt npm start
 *   curl -XPOST localhost:3900/_sim/app_open -d '{"tenantKey":"t1"}' -H 'content-type: application/json'
 *
 * Control routes (not part of Lark): POST /_sim/ticket, /_sim/app_open, /_sim/app_status_change
 * ({tenantKey, status}), /_sim/app_uninstalled ({tenantKey}); GET /_sim/calls.
 */
import { LarkSimulator } from './lark-simulator.js';

const env = process.env;
const appId = env.SIM_APP_ID ?? 'cli_sim_store';
const sim = new LarkSimulator({
  port: Number(env.SIM_PORT ?? 3900),
  host: env.SIM_HOST ?? '127.0.0.1',
  tokenTtlSeconds: env.SIM_TOKEN_TTL ? Number(env.SIM_TOKEN_TTL) : undefined,
});
sim.addApp({
  appId,
  appSecret: env.SIM_APP_SECRET ?? 'sim-secret',
  kind: 'store',
  verificationToken: env.SIM_VERIFICATION_TOKEN ?? 'sim-vtok',
  encryptKey: env.SIM_ENCRYPT_KEY ?? 'sim-encrypt',
  eventUrl: env.SIM_EVENT_URL ?? 'http://127.0.0.1:3000/lark/events',
});

type Body = { tenantKey?: string; status?: 'start_by_tenant' | 'stop_by_tenant' | 'stop_by_platform' };
const tenantOf = (body: unknown) => (body as Body | undefined)?.tenantKey ?? 'tenant-sim-1';

sim.app.post('/_sim/ticket', async () => sim.pushTicket(appId));
sim.app.post('/_sim/app_open', async (req) => sim.appOpen(appId, tenantOf(req.body)));
sim.app.post('/_sim/app_status_change', async (req) =>
  sim.appStatusChange(appId, tenantOf(req.body), (req.body as Body | undefined)?.status ?? 'stop_by_tenant'),
);
sim.app.post('/_sim/app_uninstalled', async (req) => sim.appUninstalled(appId, tenantOf(req.body)));
sim.app.get('/_sim/calls', async () => sim.callLog);

const url = await sim.start();
process.stdout.write(`Lark simulator listening on ${url} (store app ${appId}); pushes go to ${sim.getApp(appId).eventUrl}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void sim.stop().then(() => process.exit(0)));

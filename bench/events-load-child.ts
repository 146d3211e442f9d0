/**
 * Load generator for the event benchmark, in its own process: autocannon posting Lark pushes
 * (app_ticket and lifecycle events, v1 envelopes, encrypted and signed like Lark), each with its
 * own event id, so every acknowledged push is a new event to store.
 * Env: TARGET (base URL), APP_ID, APP_SECRET, VERIFICATION_TOKEN, ENCRYPT_KEY, AMOUNT,
 * CONNECTIONS, RATE (requests/s overall; unset = as fast as the target answers), KINDS (the event
 * types to send, comma-separated; default all four).
 */
import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { serveParent } from './child-ipc.js';

const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`push-load: ${k} is required`);
  return v;
};
const appId = env('APP_ID');
const amount = Number(env('AMOUNT'));
const rate = process.env.RATE ? Number(process.env.RATE) : undefined;

// The simulator's wire format is the one proven against the SDK's own AESCipher (test/simulator).
const sim = new LarkSimulator();
sim.addApp({ appId, appSecret: env('APP_SECRET'), verificationToken: env('VERIFICATION_TOKEN'), encryptKey: env('ENCRYPT_KEY'), kind: 'store' });
const token = env('VERIFICATION_TOKEN');
const pushes = Array.from({ length: amount }, (_, i) => {
  const tenant = `tenant-${i % 500}`;
  const kinds = [
    { type: 'app_ticket', app_id: appId, app_ticket: `ticket-${randomUUID()}` },
    { type: 'app_open', app_id: appId, tenant_key: tenant, applicants: [{ open_id: `ou_${i}` }], installer: { open_id: `ou_${i}` } },
    { type: 'app_status_change', app_id: appId, tenant_key: tenant, status: i % 8 < 4 ? 'start_by_tenant' : 'stop_by_tenant' },
    { type: 'app_uninstalled', app_id: appId, tenant_key: tenant },
  ];
  const wanted = process.env.KINDS ? kinds.filter((k) => process.env.KINDS!.split(',').includes(k.type)) : kinds;
  const event = wanted[i % wanted.length]!;
  const plaintext = JSON.stringify({ ts: (Date.now() / 1000).toFixed(6), uuid: randomUUID(), token, type: 'event_callback', event });
  return sim.wireFormat(appId, plaintext);
});

async function run() {
  let next = 0;
  // autocannon notices the end of an `amount` run on its one-second tick, so its `duration` is
  // whole seconds: at a few seconds per run a third off. The run is timed here, to the last answer.
  const started = performance.now();
  let lastAnswer = started;
  const options: autocannon.Options = {
    url: `${env('TARGET')}/lark/events`,
    connections: Number(process.env.CONNECTIONS ?? 32),
    amount,
    ...(rate ? { overallRate: rate } : {}),
    timeout: 10,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          const p = pushes[next++ % pushes.length]!;
          return { ...req, body: p.body, headers: p.headers };
        },
      },
    ],
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (err: Error | null, res: autocannon.Result) => (err ? reject(err) : resolve(res)));
    instance.on('response', () => {
      lastAnswer = performance.now();
    });
  });
  return {
    sent: result.requests.sent,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds: (lastAnswer - started) / 1000,
    latency: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max, mean: result.latency.average },
  };
}

serveParent({ run }, async () => undefined);

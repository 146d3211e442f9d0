/**
 * The token benchmark's baseline process: the official node SDK's ISV client (token cache on, its
 * default in-memory cache), asked for one tenant's token by CALLS concurrent callers at one
 * instant. Its cached tenant token has expired, as larksync's stored one has. Same protocol and
 * report as test/helpers/token-caller.ts: prints {"ready":true}, reads the start time (epoch ms)
 * from stdin, prints one JSON line (CallerReport) with token fingerprints, never tokens.
 * Environment: LARK_DOMAIN, LARK_APP_ID, LARK_APP_SECRET, APP_TICKET, TENANT_KEY, CALLS.
 */
import * as lark from '@larksuiteoapi/node-sdk';
import { fireAndReport, startTime } from '../test/helpers/caller-protocol.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const silent: lark.Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined, trace: () => undefined };

/** The SDK's token manager (a public field typed `any` in its declarations). */
interface TokenManager {
  getTenantAccessToken(params: Record<symbol, string | undefined>): Promise<string | undefined>;
}

async function main(): Promise<void> {
  const appId = env('LARK_APP_ID');
  const tenantKey = env('TENANT_KEY');
  const calls = Number(process.env.CALLS ?? 100);
  const cache = lark.internalCache;
  // The SDK learns the app_ticket from its event dispatcher, which writes it into this cache.
  await cache.set(lark.CAppTicket, env('APP_TICKET'), undefined, { namespace: appId });
  // The tenant token it had cached has expired (the SDK caches it until expire - 3 min).
  await cache.set(`larkMarketAccessToken${tenantKey}`, 't-expired', Date.now() - 1000, { namespace: appId });
  const client = new lark.Client({
    appId,
    appSecret: env('LARK_APP_SECRET'),
    appType: lark.AppType.ISV,
    domain: env('LARK_DOMAIN'),
    disableTokenCache: false,
    cache,
    logger: silent,
  });
  const tokens = client.tokenManager as TokenManager;
  const tenantParam = lark.withTenantKey(tenantKey).lark as Record<symbol, string | undefined>;

  const at = await startTime();
  await fireAndReport(at, calls, async () => {
    const token = await tokens.getTenantAccessToken(tenantParam);
    if (!token) throw new Error('the SDK returned no token');
    return token;
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`sdk-token-caller failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
});

import { startStack, whenReady, openTenant, type Stack } from '../helpers/stack.js';

/**
 * A stack whose simulator holds one tenant's Bases (its Orders table empty) with Lark's limits off
 * in the simulator: the writes tests' common start. `rateLimitScale` multiplies larksync's own
 * pacing; `latencyMs` is the simulator's time per write call.
 */
export async function stackWithOrders(
  tenant: string,
  opts: { rateLimitScale: number; latencyMs: number },
): Promise<{ stack: Stack; appToken: string; tableId: string }> {
  const stack = await startStack({
    encrypt: false,
    start: { rateLimitScale: opts.rateLimitScale },
    data: { enforceRateLimits: false, bitableWrites: { latencyMs: opts.latencyMs } },
  });
  await whenReady(stack);
  const bitable = stack.data.bitable(tenant, { projects: 5, ledger: 0, tasks: 0, events: 0, orders: 0 });
  await openTenant(stack, tenant);
  const { appToken, orders: tableId } = bitable.refs.main;
  return { stack, appToken, tableId };
}

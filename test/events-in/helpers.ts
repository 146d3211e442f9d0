import { sql } from 'kysely';
import type { Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

/** Upstream calls per simulator API for one tenant, counted from now on. */
export function countCalls(stack: Stack, tenantKey: string): Record<string, number> {
  const calls: Record<string, number> = {};
  stack.data.onPage = (api, who) => {
    if (who.tenantKey === tenantKey) calls[api] = (calls[api] ?? 0) + 1;
  };
  return calls;
}

/** Waits until every change event the simulator pushed was handled by larksync (none pending or failed). */
export async function eventsSettled(stack: Stack, timeoutMs = 15_000): Promise<void> {
  await stack.sim.events.idle({ timeoutMs });
  await waitFor(async () => {
    const r = await sql<{ n: number }>`select count(*)::int as n from lark_events where status not in ('processed', 'ignored')`.execute(stack.db.db);
    return r.rows[0]?.n === 0;
  }, timeoutMs, 'stored events handled');
}

/** Outcomes of the stored events of one type. */
export async function eventStatuses(stack: Stack, type: string): Promise<string[]> {
  const r = await sql<{ status: string }>`select status from lark_events where event_type = ${type} order by id`.execute(stack.db.db);
  return r.rows.map((x) => x.status);
}

export async function row(stack: Stack, table: string, tenantKey: string, key: string): Promise<Record<string, any> | undefined> {
  const r = await sql<Record<string, any>>`select * from ${sql.table(table)} where tenant_key = ${tenantKey} and record_key = ${key}`.execute(stack.db.db);
  return r.rows[0];
}

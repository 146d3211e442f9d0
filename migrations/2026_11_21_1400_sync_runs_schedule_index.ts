import type { Kysely } from 'kysely';

// Frozen in time: never import application code here.
export async function up(db: Kysely<any>): Promise<void> {
  // The scheduler asks every minute, per connector, "any run created since this time?" and "when
  // was the last full pass?". Runs pile up (hourly, per module, forever), so both must be index
  // probes on (tenant, module, time), not scans of the tenant's whole history.
  await db.schema.createIndex('sync_runs_schedule_idx').on('sync_runs').columns(['tenant_key', 'module', 'created_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('sync_runs_schedule_idx').execute();
}

import { Migrator, type Kysely, type MigrationProvider } from 'kysely';
import { Logger, runMigrations as runWorkerMigrations } from 'graphile-worker';
import { migrations } from '../../migrations/index.js';

const provider: MigrationProvider = {
  getMigrations: async () => migrations,
};

export const silentWorkerLogger = new Logger(() => () => undefined);

/**
 * Brings the schema to the latest version: our tables (kysely Migrator, which takes a lock so
 * replicas can start together) and graphile-worker's queue schema. Running it twice changes nothing.
 */
export async function migrateToLatest(db: Kysely<any>, connectionString: string): Promise<string[]> {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${reason}`);
  }
  await runWorkerMigrations({ connectionString, logger: silentWorkerLogger });
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

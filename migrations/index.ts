import type { Migration } from 'kysely';
import * as backbone from './2026_11_21_0900_backbone.js';
import * as sync from './2026_11_21_1000_sync.js';
import * as workerProcesses from './2026_11_21_1100_worker_processes.js';
import * as tenantStatusOrder from './2026_11_21_1200_tenant_status_order.js';
import * as seenKeyPages from './2026_11_21_1300_seen_key_pages.js';
import * as syncRunsScheduleIndex from './2026_11_21_1400_sync_runs_schedule_index.js';
import * as eventShards from './2026_12_02_0900_event_shards.js';
import * as changeFeed from './2026_12_06_0900_change_feed.js';
import * as failedEventsIndex from './2026_12_06_1100_failed_events_index.js';
import * as tokenMintLeases from './2026_12_06_1110_token_mint_leases.js';
import * as encryptionCanary from './2026_12_06_1200_encryption_canary.js';
import * as runResumes from './2026_12_06_1300_run_resumes.js';
import * as userGrants from './2026_12_06_1400_user_grants.js';
import * as baseWrites from './2026_12_06_1500_base_writes.js';
import * as docsStreams from './2026_12_06_1600_docs_streams.js';
import * as sinks from './2026_12_06_1700_sinks.js';
import * as baseWriteReadBack from './2026_12_07_0900_base_write_read_back.js';
import * as webhooks from './2026_12_07_1000_webhooks.js';
import * as feedHorizon from './2026_12_07_1100_feed_horizon.js';
import * as eventReads from './2026_12_08_0900_event_reads.js';
import * as subscriptions from './2026_12_08_1100_subscriptions.js';
import * as customAppPushes from './2026_12_09_0900_custom_app_pushes.js';
import * as eventMarkReads from './2026_12_10_0900_event_mark_reads.js';
import * as feedHorizonCachedPlan from './2026_12_11_0900_feed_horizon_cached_plan.js';
import * as webhookTakesFixed from './2026_12_12_0900_webhook_takes_fixed.js';
import * as feedHorizonLazyLookup from './2026_12_13_0900_feed_horizon_lazy_lookup.js';

/**
 * Migrations by name, in order. A static list (rather than a folder scan) works the same
 * from TypeScript sources under tsx and from the compiled build.
 */
export const migrations: Record<string, Migration> = {
  '2026_11_21_0900_backbone': backbone,
  '2026_11_21_1000_sync': sync,
  '2026_11_21_1100_worker_processes': workerProcesses,
  '2026_11_21_1200_tenant_status_order': tenantStatusOrder,
  '2026_11_21_1300_seen_key_pages': seenKeyPages,
  '2026_11_21_1400_sync_runs_schedule_index': syncRunsScheduleIndex,
  '2026_12_02_0900_event_shards': eventShards,
  '2026_12_06_0900_change_feed': changeFeed,
  '2026_12_06_1100_failed_events_index': failedEventsIndex,
  '2026_12_06_1110_token_mint_leases': tokenMintLeases,
  '2026_12_06_1200_encryption_canary': encryptionCanary,
  '2026_12_06_1300_run_resumes': runResumes,
  '2026_12_06_1400_user_grants': userGrants,
  '2026_12_06_1500_base_writes': baseWrites,
  '2026_12_06_1600_docs_streams': docsStreams,
  '2026_12_06_1700_sinks': sinks,
  '2026_12_07_0900_base_write_read_back': baseWriteReadBack,
  '2026_12_07_1000_webhooks': webhooks,
  '2026_12_07_1100_feed_horizon': feedHorizon,
  '2026_12_08_0900_event_reads': eventReads,
  '2026_12_08_1100_subscriptions': subscriptions,
  '2026_12_09_0900_custom_app_pushes': customAppPushes,
  '2026_12_10_0900_event_mark_reads': eventMarkReads,
  '2026_12_11_0900_feed_horizon_cached_plan': feedHorizonCachedPlan,
  '2026_12_12_0900_webhook_takes_fixed': webhookTakesFixed,
  '2026_12_13_0900_feed_horizon_lazy_lookup': feedHorizonLazyLookup,
};

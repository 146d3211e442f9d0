import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { Sealer } from '../crypto/sealer.js';
import { appSecretContext, encryptKeyContext, verificationTokenContext } from '../apps/app-credentials.js';
import { ticketContext } from '../tokens/app-tickets.service.js';
import { tokenContext } from '../tokens/tokens.repository.js';
import type { TokenKind } from '../tokens/tokens.table.js';
import { eventContext } from '../events/events.repository.js';
import { CANARY_CONTEXT } from './canary.js';
import { secretContext } from '../webhooks/secrets.js';
import { sinkKeyContext } from '../sinks/sinks.repository.js';

/** A sealed column: its table, primary key and the context its values were sealed with. */
interface SealedColumn {
  table: string;
  column: string;
  keys: string[];
  context(row: Record<string, unknown>): string;
}

/**
 * Every sealed column (`grep -rn "sealer.seal" src`). A new one must be added here, or a retired
 * key it was sealed under could never be dropped.
 */
export const SEALED_COLUMNS: readonly SealedColumn[] = [
  { table: 'apps', column: 'secret_sealed', keys: ['app_id'], context: (r) => appSecretContext(String(r.app_id)) },
  { table: 'apps', column: 'verification_token_sealed', keys: ['app_id'], context: (r) => verificationTokenContext(String(r.app_id)) },
  { table: 'apps', column: 'encrypt_key_sealed', keys: ['app_id'], context: (r) => encryptKeyContext(String(r.app_id)) },
  { table: 'app_tickets', column: 'ticket_sealed', keys: ['app_id'], context: (r) => ticketContext(String(r.app_id)) },
  {
    table: 'access_tokens',
    column: 'token_sealed',
    keys: ['app_id', 'kind', 'tenant_key'],
    context: (r) => tokenContext({ appId: String(r.app_id), kind: r.kind as TokenKind, tenantKey: String(r.tenant_key) }),
  },
  { table: 'lark_events', column: 'payload_sealed', keys: ['id'], context: (r) => eventContext(String(r.event_id)) },
  { table: 'encryption_canary', column: 'sealed', keys: ['id'], context: () => CANARY_CONTEXT },
  { table: 'webhooks', column: 'secret_sealed', keys: ['id'], context: (r) => secretContext(String(r.id), 'current') },
  { table: 'webhooks', column: 'previous_secret_sealed', keys: ['id'], context: (r) => secretContext(String(r.id), 'previous') },
  { table: 'sinks', column: 'api_key_sealed', keys: ['tenant_key', 'name'], context: (r) => sinkKeyContext(String(r.tenant_key), String(r.name)) },
];

export interface ResealCount {
  table: string;
  /** re-sealed under the current key */
  resealed: number;
  /** under a key this process does not hold, or failing authentication: left as they are */
  unreadable: number;
}

const BATCH = 500;

/**
 * Re-seals every sealed value that is not under the current ENCRYPTION_KEY, table by table, in
 * batches (keyset order on the primary key). Each row is updated only if it still holds the value
 * read, so a token refreshed or a ticket replaced meanwhile is not overwritten. Safe to run on
 * several replicas at once and to run again: rows already under the current key are skipped.
 * Once it reports no unreadable value, and every replica runs with the new key, the retired keys
 * can be dropped from ENCRYPTION_KEYS_RETIRED.
 */
export async function resealAll(db: Kysely<Database>, sealer: Sealer): Promise<ResealCount[]> {
  const counts: ResealCount[] = [];
  for (const spec of SEALED_COLUMNS) counts.push(await resealColumn(db, sealer, spec));
  return counts;
}

async function resealColumn(db: Kysely<Database>, sealer: Sealer, spec: SealedColumn): Promise<ResealCount> {
  const count: ResealCount = { table: spec.table, resealed: 0, unreadable: 0 };
  const keyRefs = sql.join(spec.keys.map((k) => sql.ref(k)));
  const extra = spec.table === 'lark_events' ? sql`, ${sql.ref('event_id')}` : sql``;
  const prefix = sealer.currentKeyPrefix;
  let after: unknown[] | undefined;
  for (;;) {
    const from = after === undefined ? sql`true` : sql`(${keyRefs}) > (${sql.join(after.map((v) => sql`${v}`))})`;
    const { rows } = await sql<Record<string, unknown>>`
      select ${keyRefs}, ${sql.ref(spec.column)} as sealed ${extra}
        from ${sql.table(spec.table)}
       where ${sql.ref(spec.column)} is not null
         and substring(${sql.ref(spec.column)} from 1 for ${prefix.length}) <> ${prefix}
         and ${from}
       order by ${keyRefs}
       limit ${BATCH}`.execute(db);
    for (const row of rows) {
      const old = row.sealed as Buffer;
      let fresh: Buffer;
      try {
        fresh = sealer.reseal(old, spec.context(row));
      } catch {
        count.unreadable += 1;
        continue;
      }
      const match = sql.join(spec.keys.map((k) => sql`${sql.ref(k)} = ${row[k]}`), sql` and `);
      const res = await sql`
        update ${sql.table(spec.table)} set ${sql.ref(spec.column)} = ${fresh}
         where ${match} and ${sql.ref(spec.column)} = ${old}`.execute(db);
      if (Number(res.numAffectedRows ?? 0) > 0) count.resealed += 1;
    }
    if (rows.length < BATCH) return count;
    const last = rows[rows.length - 1] as Record<string, unknown>;
    after = spec.keys.map((k) => last[k]);
  }
}

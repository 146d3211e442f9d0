import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { SealError, type Sealer } from '../crypto/sealer.js';
import type { LarkHttp } from '../lark/http.js';
import type { Metrics } from '../metrics/metrics.js';
import type { AppCredentials } from '../apps/app-credentials.js';
import { resendAppTicket } from '../lark/auth-api.js';

export const ticketContext = (appId: string) => `app_tickets.ticket:${appId}`;
const hash = (value: string) => createHash('sha256').update(value).digest('hex');

export interface TicketOptions {
  /** Minimum time between two resend calls for one app, across all processes. */
  resendCooldownMs: number;
  /** How long a caller waits for a pushed ticket after asking for a resend. */
  waitMs: number;
  pollMs: number;
}

export const defaultTicketOptions: TicketOptions = { resendCooldownMs: 60_000, waitMs: 5_000, pollMs: 100 };

/**
 * Keeps the store app's latest app_ticket (sealed) and asks Lark to push a fresh one when it is
 * missing or rejected. Resends are rate-limited in Postgres, so any number of callers in any
 * number of processes cause one resend per cool-down.
 */
export class AppTicketsService {
  /**
   * Applies app_ticket pushes that are stored but whose jobs have not run yet. A mint waiting for
   * a ticket occupies a worker slot; with every slot held by such waits, the ticket's own job
   * could not run, so the waiter applies it (idempotently) itself.
   */
  applyPending: ((appId: string) => Promise<void>) | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    private readonly http: LarkHttp,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: TicketOptions = defaultTicketOptions,
  ) {}

  /** Stores a pushed ticket unless a newer push was already stored. */
  async save(appId: string, ticket: string, pushedAt: Date, eventId: string | null): Promise<boolean> {
    const result = await this.db
      .insertInto('app_tickets')
      .values({
        app_id: appId,
        ticket_sealed: this.sealer.seal(ticket, ticketContext(appId)),
        ticket_hash: hash(ticket),
        received_at: pushedAt,
        event_id: eventId,
      })
      .onConflict((oc) =>
        oc
          .column('app_id')
          .doUpdateSet({
            ticket_sealed: (eb) => eb.ref('excluded.ticket_sealed'),
            ticket_hash: (eb) => eb.ref('excluded.ticket_hash'),
            received_at: (eb) => eb.ref('excluded.received_at'),
            event_id: (eb) => eb.ref('excluded.event_id'),
          })
          .where('app_tickets.received_at', '<=', (eb) => eb.ref('excluded.received_at')),
      )
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async get(appId: string): Promise<{ ticket: string; hash: string } | undefined> {
    const row = await this.db
      .selectFrom('app_tickets')
      .select(['ticket_sealed', 'ticket_hash'])
      .where('app_id', '=', appId)
      .executeTakeFirst();
    if (!row) return undefined;
    try {
      return { ticket: this.sealer.open(row.ticket_sealed, ticketContext(appId)), hash: row.ticket_hash };
    } catch (err) {
      if (!(err instanceof SealError)) throw err;
      // Sealed under a key this process no longer holds: as good as no ticket, and Lark pushes a
      // new one on request, so callers treat it as missing instead of failing until the next push.
      this.log.warn({ appId, reason: err.message }, 'stored app_ticket cannot be opened; treating it as missing');
      return undefined;
    }
  }

  /** Whether a usable ticket is known (readiness, and the startup resend, go by this). */
  async has(appId: string): Promise<boolean> {
    return (await this.get(appId)) !== undefined;
  }

  /**
   * Asks Lark to push a new ticket, unless this app already asked within the cool-down.
   * Returns true when this call sent the resend.
   */
  async requestResend(app: AppCredentials, reason: 'missing' | 'rejected' | 'startup'): Promise<boolean> {
    const cooldown = `${Math.max(0, Math.floor(this.options.resendCooldownMs))} milliseconds`;
    const won = await sql<{ app_id: string }>`
      insert into ticket_resends (app_id, last_requested_at, requests)
      values (${app.appId}, now(), 1)
      on conflict (app_id) do update
        set last_requested_at = now(), requests = ticket_resends.requests + 1
        where ticket_resends.last_requested_at < now() - ${cooldown}::interval
      returning app_id`.execute(this.db);
    if (won.rows.length === 0) return false;
    this.metrics.ticketResends.inc();
    try {
      await resendAppTicket(this.http, app);
      this.log.info({ appId: app.appId, reason }, 'asked Lark to push a fresh app_ticket');
    } catch (err) {
      this.log.warn({ appId: app.appId, reason, err: (err as Error).message }, 'app_ticket resend failed');
    }
    return true;
  }

  /** Waits for a ticket whose hash differs from `staleHash` (or any ticket when undefined). */
  async waitFor(appId: string, staleHash?: string): Promise<{ ticket: string; hash: string } | undefined> {
    const deadline = Date.now() + this.options.waitMs;
    for (;;) {
      await this.applyPending?.(appId).catch(() => undefined);
      const current = await this.get(appId);
      if (current && current.hash !== staleHash) return current;
      if (Date.now() >= deadline) return undefined;
      await new Promise((r) => setTimeout(r, this.options.pollMs));
    }
  }
}

import type { Kysely } from 'kysely';
import { systemClock, type Clock } from '../clock.js';
import type { Sealer } from '../crypto/sealer.js';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';
import { wakeLanes } from './emit.js';
import type { WebhookEventType } from './event-types.js';
import { generateSecret, secretContext } from './secrets.js';
import { checkWebhookUrl, checkWebhookUrlResolves, systemResolver, type Resolver, type UrlPolicy } from './url-policy.js';
import {
  deleteWebhook,
  findDelivery,
  findWebhook,
  insertWebhook,
  listDeliveries,
  listWebhooks,
  markForResend,
  nextWebhookId,
  updateWebhook,
  type WebhookChanges,
} from './webhooks.repository.js';
import type { DeliveryStatus, WebhookAttemptRow, WebhookDeliveryRow, WebhookRow } from './webhooks.table.js';

export interface WebhookView {
  id: string;
  url: string;
  description: string | null;
  eventTypes: WebhookEventType[];
  tenantKeys: string[] | null;
  status: 'enabled' | 'disabled';
  disabledReason: string | null;
  disabledAt: string | null;
  failingSince: string | null;
  lastFailureAt: string | null;
  lastSuccessAt: string | null;
  /** while a rotation's overlap lasts, the previous secret signs too, until then */
  previousSecretExpiresAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface DeliveryView {
  id: string;
  messageId: string;
  eventType: WebhookEventType;
  tenantKey: string;
  status: DeliveryStatus;
  coalescedInto: string | null;
  attemptCount: number;
  nextAttemptAt: string | null;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
  attempts: Array<{ at: string; statusCode: number | null; latencyMs: number; error: string | null }>;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toWebhookView(w: WebhookRow, now: Date = new Date()): WebhookView {
  return {
    id: w.id,
    url: w.url,
    description: w.description,
    eventTypes: w.event_types,
    tenantKeys: w.tenant_keys,
    status: w.status,
    disabledReason: w.disabled_reason,
    disabledAt: iso(w.disabled_at),
    failingSince: iso(w.failing_since),
    lastFailureAt: iso(w.last_failure_at),
    lastSuccessAt: iso(w.last_success_at),
    previousSecretExpiresAt: w.previous_secret_sealed && w.previous_secret_expires_at && w.previous_secret_expires_at > now ? w.previous_secret_expires_at.toISOString() : null,
    createdAt: w.created_at.toISOString(),
    updatedAt: w.updated_at.toISOString(),
  };
}

export function toDeliveryView(d: WebhookDeliveryRow, attempts: WebhookAttemptRow[]): DeliveryView {
  return {
    id: d.id,
    messageId: d.message_id,
    eventType: d.event_type,
    tenantKey: d.tenant_key,
    status: d.status,
    coalescedInto: d.coalesced_into,
    attemptCount: d.attempts,
    nextAttemptAt: d.status === 'pending' ? iso(d.next_attempt_at) : null,
    lastStatusCode: d.last_status_code,
    lastError: d.last_error,
    createdAt: d.created_at.toISOString(),
    deliveredAt: iso(d.delivered_at),
    attempts: attempts.map((a) => ({ at: a.attempted_at.toISOString(), statusCode: a.status_code, latencyMs: a.latency_ms, error: a.error })),
  };
}

export interface WebhooksServiceDeps {
  db: Kysely<Database>;
  sealer: Sealer;
  policy: UrlPolicy;
  resolve?: Resolver;
  clock?: Clock;
}

export interface NewWebhook {
  url: string;
  eventTypes: WebhookEventType[];
  tenantKeys?: string[] | null;
  description?: string | null;
}

/** Longest overlap of a secret rotation: a week. */
export const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;

const notFound = (id: string) => new AppError(404, 'webhook_not_found', `webhook ${id} is not known`);
const isId = (id: string) => /^\d{1,18}$/.test(id);

/**
 * The operator's side of webhooks (REST /api/v1/webhooks). A signing secret is generated here,
 * answered once (at creation and at each rotation) and otherwise only ever held sealed.
 */
export class WebhooksService {
  private readonly clock: Clock;

  constructor(private readonly deps: WebhooksServiceDeps) {
    this.clock = deps.clock ?? systemClock;
  }

  private async checkUrl(value: string): Promise<string> {
    const checked = checkWebhookUrl(value, this.deps.policy);
    if (!checked.ok) throw new AppError(400, 'invalid_url', `url ${checked.problem}`);
    const problem = await checkWebhookUrlResolves(checked.url, this.deps.policy, this.deps.resolve ?? systemResolver);
    if (problem) throw new AppError(400, 'invalid_url', `url: ${problem}`);
    return checked.url;
  }

  async create(input: NewWebhook): Promise<{ webhook: WebhookView; secret: string }> {
    const url = await this.checkUrl(input.url);
    const secret = generateSecret();
    const row = await this.deps.db.transaction().execute(async (trx) => {
      const id = await nextWebhookId(trx);
      return insertWebhook(trx, {
        id,
        url,
        description: input.description ?? null,
        eventTypes: [...new Set(input.eventTypes)],
        tenantKeys: input.tenantKeys ? [...new Set(input.tenantKeys)] : null,
        secretSealed: this.deps.sealer.seal(secret, secretContext(id, 'current')),
      });
    });
    return { webhook: toWebhookView(row, this.clock.now()), secret };
  }

  async list(opts: { limit: number; after?: string }): Promise<WebhookView[]> {
    if (opts.after !== undefined && !isId(opts.after)) return [];
    return (await listWebhooks(this.deps.db, opts)).map((w) => toWebhookView(w, this.clock.now()));
  }

  async get(id: string): Promise<WebhookView> {
    const row = isId(id) ? await findWebhook(this.deps.db, id) : undefined;
    if (!row) throw notFound(id);
    return toWebhookView(row, this.clock.now());
  }

  async update(id: string, changes: WebhookChanges): Promise<WebhookView> {
    if (!isId(id)) throw notFound(id);
    const c: WebhookChanges = { ...changes };
    if (c.url !== undefined) c.url = await this.checkUrl(c.url);
    if (c.eventTypes) c.eventTypes = [...new Set(c.eventTypes)];
    if (c.tenantKeys) c.tenantKeys = [...new Set(c.tenantKeys)];
    const row = await updateWebhook(this.deps.db, id, c);
    if (!row) throw notFound(id);
    // Enabled again: lanes that held deliveries when it was disabled go on where they stopped.
    if (c.enabled === true) await wakeLanes(this.deps.db, id);
    return toWebhookView(row, this.clock.now());
  }

  async remove(id: string): Promise<void> {
    if (!isId(id) || !(await deleteWebhook(this.deps.db, id))) throw notFound(id);
  }

  /**
   * A new signing secret; the current one becomes the previous one and keeps signing for
   * `overlapSeconds` (both signatures in webhook-signature), so receivers can switch meanwhile.
   */
  async rotateSecret(id: string, overlapSeconds: number): Promise<{ webhook: WebhookView; secret: string }> {
    if (!isId(id)) throw notFound(id);
    const secret = generateSecret();
    const row = await this.deps.db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom('webhooks').select(['id', 'secret_sealed']).where('id', '=', id).forUpdate().executeTakeFirst();
      if (!current) return undefined;
      // Re-sealed under the previous secret's own context (a sealed value only opens where it belongs).
      const previous = this.deps.sealer.seal(this.deps.sealer.openBuffer(current.secret_sealed, secretContext(id, 'current')), secretContext(id, 'previous'));
      return trx
        .updateTable('webhooks')
        .set({
          secret_sealed: this.deps.sealer.seal(secret, secretContext(id, 'current')),
          previous_secret_sealed: overlapSeconds > 0 ? previous : null,
          previous_secret_expires_at: overlapSeconds > 0 ? new Date(this.clock.now().getTime() + overlapSeconds * 1000) : null,
          updated_at: new Date(),
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
    });
    if (!row) throw notFound(id);
    return { webhook: toWebhookView(row, this.clock.now()), secret };
  }

  async deliveries(
    id: string,
    opts: { limit: number; before?: string; status?: DeliveryStatus; tenantKey?: string },
  ): Promise<{ deliveries: DeliveryView[]; nextCursor: string | null }> {
    await this.get(id);
    if (opts.before !== undefined && !isId(opts.before)) throw new AppError(400, 'invalid_cursor', 'cursor is not one this API returned; start without it');
    const { deliveries, attempts } = await listDeliveries(this.deps.db, id, opts);
    return {
      deliveries: deliveries.map((d) => toDeliveryView(d, attempts.get(d.id) ?? [])),
      nextCursor: deliveries.length === opts.limit ? deliveries.at(-1)!.id : null,
    };
  }

  /** Sends a delivery again, under the same webhook-id with the same body, in its lane's order. */
  async resend(id: string, deliveryId: string): Promise<DeliveryView> {
    const webhook = await this.get(id);
    const found = isId(deliveryId) ? await findDelivery(this.deps.db, id, deliveryId) : undefined;
    if (!found) throw new AppError(404, 'delivery_not_found', `delivery ${deliveryId} of webhook ${id} is not known`);
    if (found.status === 'coalesced') {
      throw new AppError(409, 'delivery_coalesced', `delivery ${deliveryId} was sent as part of delivery ${found.coalesced_into}: resend that one`);
    }
    if (webhook.status !== 'enabled') throw new AppError(409, 'webhook_disabled', `webhook ${id} is disabled: enable it first (PATCH { "enabled": true })`);
    const row = (await markForResend(this.deps.db, id, deliveryId, this.clock.now())) ?? found;
    await wakeLanes(this.deps.db, id, row.tenant_key);
    return toDeliveryView(row, []);
  }
}

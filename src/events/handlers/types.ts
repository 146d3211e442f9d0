import type { Services } from '../../services.js';

export interface EventContext {
  services: Services;
  eventId: string;
  appId: string | null;
  tenantKey: string | null;
  /** Push time from the envelope (v1 `ts`, v2 `header.create_time`), or now. */
  pushedAt: Date;
}

/** Returns 'processed' when it changed something, 'ignored' when there was nothing to do. */
export type EventHandler = (event: Record<string, unknown>, ctx: EventContext) => Promise<'processed' | 'ignored'>;

export const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
export const openId = (v: unknown): string | null => str((v as { open_id?: unknown } | undefined)?.open_id) ?? null;

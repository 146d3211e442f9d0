/** Every event a webhook can subscribe to (README "Webhooks" describes each payload). */
export const WEBHOOK_EVENT_TYPES = [
  'records.changed',
  'sync.finished',
  'tenant.installed',
  'tenant.status_changed',
  'tenant.uninstalled',
  'grant.needs_reauth',
  'write.finished',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

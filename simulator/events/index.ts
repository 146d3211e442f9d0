/**
 * Change events (../shared/lark/change-events.md, events.md) for the simulator:
 * - delivery.ts       SimEvents (`sim.events`): envelopes, Lark's retries, per-instance approval
 *                     ordering, pause/resume, idle(), out-of-order and duplicate injection, counters;
 * - subscriptions.ts  approval and Drive file subscriptions;
 * - routes.ts         the subscribe / unsubscribe / get_subscribe / delete_subscribe calls;
 * - payloads.ts       the `event` objects built from the data;
 * - feed.ts           which app receives which data change (scope, subscriptions, owners);
 * - generator.ts      `sim.events.generate()`: changes at a rate across tenants (data/change-source.ts).
 */
export {
  SimEvents,
  defaultEventDeliveryOptions,
  type EmitOptions,
  type EventCounters,
  type EventDeliveryOptions,
  type EventFilter,
  type EventTransport,
  type PushAttempt,
  type SimEvent,
  type SimEventState,
} from './delivery.js';
export { APP_SUBSCRIBER, SubscriptionBook, type FileSubscription } from './subscriptions.js';
export { CHANGE_KINDS, ChangeGenerator, type ChangeKind, type ChangeSource, type GenerateOptions } from './generator.js';
export { registerEventRoutes, type EventRouteDeps } from './routes.js';
export { ChangeFeed } from './feed.js';

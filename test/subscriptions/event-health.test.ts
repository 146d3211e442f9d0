import { describe, expect, it } from 'vitest';
import { defaultHealthOptions, judge, type HealthFacts } from '../../src/subscriptions/event-health.js';
import { moduleOfEvent } from '../../src/subscriptions/event-modules.js';

// The rule the scheduler stretches polling by, as a pure function, and which module an event speaks for.

const NOW = new Date('2026-12-08T12:00:00Z');
const ago = (minutes: number) => new Date(NOW.getTime() - minutes * 60_000);
const facts = (patch: Partial<HealthFacts>): HealthFacts => ({
  module: 'approval',
  subscriptions: { subscribed: 2, pending: 0, refused: 0, failed: 0 },
  lastEventAt: ago(5),
  lastChangeFoundAt: null,
  lastPollAt: ago(120),
  connectorCreatedAt: ago(10_000),
  ...patch,
});

describe('event health', () => {
  it('is healthy when subscribed and heard from recently, and names the first gap otherwise', () => {
    expect(judge(facts({}), NOW, defaultHealthOptions)).toEqual({ healthy: true, reason: null, behindSince: null });
    const reason = (p: Partial<HealthFacts>) => judge(facts(p), NOW, defaultHealthOptions).reason;
    expect(reason({ subscriptions: { subscribed: 1, pending: 0, refused: 1, failed: 0 } })).toBe('subscription_refused');
    expect(reason({ subscriptions: { subscribed: 1, pending: 0, refused: 0, failed: 1 } })).toBe('subscription_failed');
    expect(reason({ subscriptions: { subscribed: 1, pending: 1, refused: 0, failed: 0 } })).toBe('not_subscribed');
    expect(reason({ subscriptions: { subscribed: 0, pending: 0, refused: 0, failed: 0 } })).toBe('not_subscribed');
    expect(reason({ lastEventAt: null })).toBe('no_events');
    expect(reason({ lastEventAt: ago(25 * 60) })).toBe('events_silent');
    // A poll found changes 90 min after the last event: events are being lost.
    expect(reason({ lastEventAt: ago(100), lastChangeFoundAt: ago(10) })).toBe('changes_missed');
    // ...but not when the events were still flowing (within the hour) when the poll began.
    expect(reason({ lastEventAt: ago(40), lastChangeFoundAt: ago(10) })).toBeNull();
  });

  it('contact needs no subscribe call; a gap is behind since the last successful poll began (or the connector was made)', () => {
    expect(judge(facts({ module: 'contact', subscriptions: { subscribed: 0, pending: 0, refused: 0, failed: 0 } }), NOW, defaultHealthOptions).healthy).toBe(true);
    expect(judge(facts({ lastEventAt: null }), NOW, defaultHealthOptions).behindSince).toEqual(ago(120));
    expect(judge(facts({ lastEventAt: null, lastPollAt: null }), NOW, defaultHealthOptions).behindSince).toEqual(ago(10_000));
  });

  it('maps event types to modules', () => {
    expect(moduleOfEvent('contact.user.updated_v3')).toBe('contact');
    expect(moduleOfEvent('contact.scope.updated_v3')).toBe('contact');
    expect(moduleOfEvent('approval_instance')).toBe('approval');
    expect(moduleOfEvent('approval.approval.updated_v4')).toBe('approval');
    expect(moduleOfEvent('leave_approvalV2')).toBe('approval');
    expect(moduleOfEvent('drive.file.bitable_record_changed_v1')).toBe('base');
    expect(moduleOfEvent('drive.file.bitable_field_changed_v1')).toBe('base');
    expect(moduleOfEvent('drive.file.edit_v1')).toBe('docs');
    expect(moduleOfEvent('app_ticket')).toBeUndefined();
    expect(moduleOfEvent('auth.user_access_token.revoked_v4')).toBeUndefined();
  });
});

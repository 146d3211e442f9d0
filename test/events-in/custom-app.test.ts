import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalTenant } from '../../simulator/data/approval.js';
import { STORE_APP, openTenant, startStack, whenReady, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { eventsSettled, row } from './helpers.js';

// Custom-app tenants get change events too (issue 14). A custom app's console has a Verification
// Token and Encrypt Key of its own, registered with the app (POST /api/v1/apps); its pushes go
// to /lark/events/<appId>, are checked with those, and are applied like the store app's: for its
// own tenant only, re-read with its own token. Pushes of an unknown app id stay ignored, and one
// app's pushes never act on a tenant another app serves.

const CUSTOM = {
  appId: 'cli_custom_events_01',
  appSecret: 'custom-events-secret-never-shown',
  tenantKey: 'tenant-ev-custom',
  tenantName: 'Own App Events Co',
  verificationToken: 'vt-custom-events',
  encryptKey: 'ek-custom-events',
};
const STORE_TENANT = 'tenant-ev-custom-store';

describe('change events of a custom app', () => {
  let stack: Stack;
  let approval: ApprovalTenant;
  let code: string;
  /** Detail reads per app id. */
  const reads: Record<string, number> = {};

  beforeAll(async () => {
    stack = await startStack();
    await whenReady(stack);
    await openTenant(stack, STORE_TENANT);
    stack.sim.addApp({ ...CUSTOM, kind: 'custom' });
    const res = await stack.api('POST', '/api/v1/apps', {
      appId: CUSTOM.appId,
      appSecret: CUSTOM.appSecret,
      domain: stack.sim.url,
      verificationToken: CUSTOM.verificationToken,
      encryptKey: CUSTOM.encryptKey,
    });
    expect(res.status).toBe(201);
    const registered = (await res.json()) as { tenantKey: string; eventsPath: string };
    expect(registered).toMatchObject({ tenantKey: CUSTOM.tenantKey, eventsPath: `/lark/events/${CUSTOM.appId}` });
    // The custom app's console gets the request URL larksync answered with.
    stack.sim.setEventUrl(CUSTOM.appId, `${stack.larksync.url}${registered.eventsPath}`);
    approval = stack.data.approval(CUSTOM.tenantKey, { definitions: 1, instancesPerDay: 2, days: 2 });
    [code] = approval.codes() as [string];
    stack.data.onPage = (api, who) => {
      if (api === 'approval.instances.get') reads[who.appId] = (reads[who.appId] ?? 0) + 1;
    };
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const status = async (eventId: string) =>
    waitFor(async () => {
      const r = await stack.db.db.selectFrom('lark_events').select(['status', 'app_id']).where('event_id', '=', eventId).executeTakeFirst();
      return r && r.status !== 'pending' ? r : undefined;
    }, 10_000, `event ${eventId} handled`);

  it("answers the app's URL verification, subscribes with its token, and applies its approval events with its token", async () => {
    const challenge = await stack.sim.challenge(CUSTOM.appId);
    expect(challenge.status).toBe(200);
    expect(JSON.parse(challenge.body)).toEqual({ challenge: challenge.challenge });

    await stack.larksync.services.connectors.put(CUSTOM.tenantKey, 'approval', { enabled: true, config: { approvalCodes: [code], backfillDays: 3 } }, 'custom');
    // Subscription management makes the subscribe call for the custom app (its tenant token).
    await waitFor(() => stack.sim.events.subscriptions.hasApproval(CUSTOM.appId, CUSTOM.tenantKey, code), 15_000, 'subscribed as the custom app');

    const inst = approval.createInstance(code);
    await waitFor(async () => (await row(stack, 'approval_instances', CUSTOM.tenantKey, inst))?.status === 'PENDING', 10_000, 'instance from the event');
    approval.setStatus(inst, 'APPROVED');
    await waitFor(async () => (await row(stack, 'approval_instances', CUSTOM.tenantKey, inst))?.status === 'APPROVED', 10_000, 'approved from the event');
    await eventsSettled(stack);
    const stored = await stack.db.db
      .selectFrom('lark_events')
      .select(['app_id', 'tenant_key', 'status'])
      .where('event_type', 'in', ['approval_instance', 'approval_task'])
      .execute();
    expect(stored.length).toBeGreaterThanOrEqual(4);
    // Each handled: re-read, or already shown by a re-read that started after it arrived.
    expect(stored.every((e) => e.app_id === CUSTOM.appId && e.tenant_key === CUSTOM.tenantKey && ['processed', 'ignored'].includes(e.status))).toBe(true);
    const processed = stored.filter((e) => e.status === 'processed').length;
    expect(processed).toBeGreaterThanOrEqual(2);
    // Every re-read went out with the custom app's token; the store app read nothing.
    expect(reads).toEqual({ [CUSTOM.appId]: processed });
  });

  it("its app_status_change acts on its own tenant (the lifecycle that applies to a custom app); app_open is not taken from it", async () => {
    const stop = await stack.sim.appStatusChange(CUSTOM.appId, CUSTOM.tenantKey, 'stop_by_tenant');
    expect((await status(stop.uuid)).status).toBe('processed');
    expect((await stack.larksync.services.tenants.get(CUSTOM.tenantKey))?.status).toBe('paused');
    const start = await stack.sim.appStatusChange(CUSTOM.appId, CUSTOM.tenantKey, 'start_by_tenant');
    expect((await status(start.uuid)).status).toBe('processed');
    expect((await stack.larksync.services.tenants.get(CUSTOM.tenantKey))?.status).toBe('active');

    // Store apps only (events.md §8): from a custom app it would let the app's key holder claim a tenant key.
    const open = await stack.sim.pushV1(CUSTOM.appId, { app_id: CUSTOM.appId, tenant_key: 'tenant-not-theirs', type: 'app_open' });
    expect((await status(open.uuid)).status).toBe('ignored');
    expect(await stack.larksync.services.tenants.get('tenant-not-theirs')).toBeUndefined();
  });

  it('pushes that do not apply: another tenant, another app, an unknown app', async () => {
    const inst = approval.createInstance(code);
    await eventsSettled(stack);
    const before = { ...reads };
    const event = (appId: string, tenantKey: string) => ({ app_id: appId, tenant_key: tenantKey, type: 'approval_instance', approval_code: code, instance_code: inst, status: 'APPROVED', operate_time: String(Date.now() + 60_000) });

    // The custom app naming the store app's tenant: stored, ignored.
    const foreign = await stack.sim.pushV1(CUSTOM.appId, event(CUSTOM.appId, STORE_TENANT));
    expect((await status(foreign.uuid)).status).toBe('ignored');
    // The store app naming the custom app's tenant: not the tenant's app, so no re-read with its token.
    const store = await stack.sim.pushV1(STORE_APP.appId, event(STORE_APP.appId, CUSTOM.tenantKey));
    expect((await status(store.uuid)).status).toBe('ignored');
    // Through the store app's URL, an app id larksync does not know: stored, ignored (as before).
    const unknown = await stack.sim.pushV1(STORE_APP.appId, event('cli_nobody_knows', CUSTOM.tenantKey));
    expect(await status(unknown.uuid)).toEqual({ status: 'ignored', app_id: 'cli_nobody_knows' });
    expect(reads).toEqual(before);

    // The custom app's URL takes no push naming another app (its keys are its tenant admin's).
    const plaintext = JSON.stringify({ ts: String(Date.now() / 1000), uuid: 'mismatch-0001', token: CUSTOM.verificationToken, type: 'event_callback', event: event(STORE_APP.appId, STORE_TENANT) });
    const wire = stack.sim.wireFormat(CUSTOM.appId, plaintext);
    const mismatch = await fetch(`${stack.larksync.url}/lark/events/${CUSTOM.appId}`, { method: 'POST', body: wire.body, headers: wire.headers });
    expect(mismatch.status).toBe(400);
    expect(((await mismatch.json()) as { error: { code: string } }).error.code).toBe('app_mismatch');
    // Signed with the store app's key, at the custom app's URL: refused.
    const storeWire = stack.sim.wireFormat(STORE_APP.appId, plaintext);
    expect((await fetch(`${stack.larksync.url}/lark/events/${CUSTOM.appId}`, { method: 'POST', body: storeWire.body, headers: storeWire.headers })).status).toBe(401);
    // An app id with no push credentials registered: 404.
    const nobody = await fetch(`${stack.larksync.url}/lark/events/cli_nobody_knows`, { method: 'POST', body: wire.body, headers: wire.headers });
    expect(nobody.status).toBe(404);
    expect(await stack.db.db.selectFrom('lark_events').select('id').where('event_id', '=', 'mismatch-0001').executeTakeFirst()).toBeUndefined();
  });

  it("never shows the app's push credentials: not in an answer, not in the logs", async () => {
    const again = await stack.api('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret, domain: stack.sim.url });
    // Registered again without them (a new secret only): the stored ones stay, so do the pushes.
    expect(await again.json()).toEqual({ appId: CUSTOM.appId, tenantKey: CUSTOM.tenantKey, type: 'custom', eventsPath: `/lark/events/${CUSTOM.appId}` });
    const challenge = await stack.sim.challenge(CUSTOM.appId);
    expect(challenge.status).toBe(200);
    const logs = stack.logs.join('');
    for (const secret of [CUSTOM.verificationToken, CUSTOM.encryptKey, CUSTOM.appSecret]) expect(logs).not.toContain(secret);
  });

  it("an Encrypt Key cleared in the app's console is removed by registering again with encryptKey: null", async () => {
    // The console now sends plain pushes, checked by the Verification Token alone.
    stack.sim.addApp({ ...stack.sim.getApp(CUSTOM.appId), encryptKey: undefined });
    // larksync still holds the key, so it wants them signed and encrypted.
    expect((await stack.sim.challenge(CUSTOM.appId)).status).toBe(401);
    const kept = await stack.api('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret, domain: stack.sim.url });
    expect(kept.status).toBe(201);
    expect((await stack.sim.challenge(CUSTOM.appId)).status).toBe(401);
    const cleared = await stack.api('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret, domain: stack.sim.url, encryptKey: null });
    expect(cleared.status).toBe(201);
    expect((await stack.sim.challenge(CUSTOM.appId)).status).toBe(200);
    const stored = await stack.db.db.selectFrom('apps').select(['encrypt_key_sealed', 'verification_token_sealed']).where('app_id', '=', CUSTOM.appId).executeTakeFirstOrThrow();
    expect(stored.encrypt_key_sealed).toBeNull();
    expect(stored.verification_token_sealed).not.toBeNull();
    // An empty string is not a way to say it: a clear 400.
    const empty = await stack.api('POST', '/api/v1/apps', { appId: CUSTOM.appId, appSecret: CUSTOM.appSecret, domain: stack.sim.url, encryptKey: '' });
    expect(empty.status).toBe(400);
  });
});

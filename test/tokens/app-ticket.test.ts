import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_PATHS } from '../../simulator/lark-simulator.js';
import { connectDatabase, type DbHandle } from '../../src/db/connect.js';
import type { AppError } from '../../src/errors.js';
import type { Services } from '../../src/services.js';
import { AppTicketMissingError } from '../../src/tokens/access-token-mints.js';
import { startStack, STORE_APP, type Stack } from '../helpers/stack.js';
import { buildServices, dumpDatabase, leakedSecrets, startTokenFixture, type TokenFixture } from '../helpers/token-fixture.js';
import { waitFor } from '../helpers/wait.js';

const COOLDOWN_MS = 1_000;
const PUSH_DELAY_MS = 600;
const TICKET_OPTIONS = { waitMs: 4_000, pollMs: 25, resendCooldownMs: COOLDOWN_MS };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('app_ticket: missing, pushed, rejected', () => {
  let stack: Stack;
  /** A second larksync instance (own pool, own single-flight map) on the same database. */
  let replica: { services: Services; handle: DbHandle };

  const readiness = async () => {
    const res = await fetch(`${stack.larksync.url}/readyz`);
    return { status: res.status, body: (await res.json()) as { status: string; storeApp: string } };
  };
  const install = async (tenantKey: string) => {
    stack.sim.installTenant(STORE_APP.appId, tenantKey);
    await stack.larksync.services.tenants.install({ tenantKey, appId: STORE_APP.appId }, null);
  };
  /** Waits until the last resend is older than the cool-down, so the next one is allowed. */
  const pastCooldown = async () => {
    const last = stack.sim.callLog.filter((c) => c.path === AUTH_PATHS.ticketResend).at(-1)?.at ?? 0;
    await sleep(Math.max(0, last + COOLDOWN_MS + 150 - Date.now()));
  };

  beforeAll(async () => {
    stack = await startStack({
      sim: { resendPushDelayMs: PUSH_DELAY_MS },
      start: { ticketOptions: TICKET_OPTIONS },
    });
    // The push that answers the startup resend gets lost (Lark's pushes can be late or fail),
    // so larksync keeps running without a ticket.
    stack.sim.setEventUrl(STORE_APP.appId, 'http://127.0.0.1:9/lost');
    // Built like bootstrap builds services but without its startup resend, whose timing against
    // the cool-down would depend on how loaded the machine is.
    const handle = connectDatabase(stack.db.url, { max: 10, applicationName: 'larksync-test-replica' });
    replica = { handle, services: buildServices(stack.config, handle, { ticketOptions: TICKET_OPTIONS }) };
    await waitFor(() => stack.sim.count(AUTH_PATHS.ticketResend) === 1, 5_000, 'startup resend');
    await stack.sim.settle();
    stack.sim.setEventUrl(STORE_APP.appId, stack.eventsUrl);
  });
  afterAll(async () => {
    await replica?.handle.close();
    await stack?.stop();
  });

  it('startup asked for one ticket, and readiness waits for it', async () => {
    expect(stack.sim.count(AUTH_PATHS.ticketResend)).toBe(1);
    expect(await readiness()).toEqual({ status: 503, body: { status: 'waiting_for_app_ticket', storeApp: 'configured', pushes: 'signed' } });
    expect(await stack.larksync.services.tickets.has(STORE_APP.appId)).toBe(false);
  });

  it('many callers in two instances with no ticket cause ONE resend; the pushed ticket then serves them all', async () => {
    const tenants = ['tk-ticket-1', 'tk-ticket-2', 'tk-ticket-3', 'tk-ticket-4'];
    for (const t of tenants) await install(t);
    await pastCooldown();
    stack.sim.resetCounts();

    const services = [stack.larksync.services, replica.services];
    const calls = tenants.flatMap((t) =>
      Array.from({ length: 25 }, (_, i) => services[i % 2]!.tokens.getTenantAccessToken(t)),
    );
    await sleep(PUSH_DELAY_MS / 4);
    // Lark has been asked but has not pushed yet.
    expect((await readiness()).body.status).toBe('waiting_for_app_ticket');
    const got = await Promise.all(calls);

    expect(got).toHaveLength(100);
    expect(new Set(got).size).toBe(tenants.length);
    expect(stack.sim.count(AUTH_PATHS.ticketResend)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.appAccessToken)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(tenants.length);
    expect(await readiness()).toEqual({ status: 200, body: { status: 'ready', storeApp: 'configured', pushes: 'signed' } });
  });

  it('when Lark rejects the ticket (10012), asks for a new push once and mints with the new ticket', async () => {
    const svc = stack.larksync.services;
    const oldTicket = await svc.tickets.get(STORE_APP.appId);
    const appToken = await svc.tokens.getAppAccessToken(STORE_APP.appId);
    // Lark forgets every ticket it issued, and our app token has to be minted again.
    stack.sim.invalidateTickets(STORE_APP.appId);
    await svc.tokens.invalidate({ kind: 'app', appId: STORE_APP.appId, tenantKey: '' }, appToken);
    await install('tk-ticket-new');
    await pastCooldown();
    stack.sim.resetCounts();

    const got = await Promise.all(Array.from({ length: 30 }, () => svc.tokens.getTenantAccessToken('tk-ticket-new')));

    expect(new Set(got).size).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.appAccessToken, 10012)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.ticketResend)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.appAccessToken, 0)).toBe(1);
    expect(stack.sim.count(AUTH_PATHS.tenantAccessToken, 0)).toBe(1);
    const newTicket = await svc.tickets.get(STORE_APP.appId);
    expect(newTicket?.hash).toBeDefined();
    expect(newTicket?.hash).not.toBe(oldTicket?.hash);
    expect((await svc.tokens.health('app', STORE_APP.appId)).status).toBe('valid');

    // Neither ticket, nor the secret, is readable anywhere in the database (events and jobs included).
    const current = stack.sim.currentTicket(STORE_APP.appId);
    expect(current).toBeDefined();
    const dump = await dumpDatabase(stack.db);
    expect(dump.includes('app_ticket')).toBe(true);
    expect(
      leakedSecrets(dump, {
        oldTicket: oldTicket!.ticket,
        newTicket: current!,
        appSecret: STORE_APP.appSecret,
        appToken,
        tenantToken: got[0]!,
      }),
    ).toEqual([]);
  });
});

describe('app_ticket never arrives', () => {
  let f: TokenFixture;
  beforeAll(async () => {
    // No event URL in the simulator: Lark accepts the resend but the push reaches nobody.
    f = await startTokenFixture({ ticketOptions: { waitMs: 300, pollMs: 25, resendCooldownMs: 60_000 } });
    await f.installTenant('tk-no-ticket');
  });
  afterAll(async () => {
    await f?.stop();
  });

  it('fails fast with app_ticket_missing, never calls Lark without a ticket, and resends once per cool-down', async () => {
    for (let wave = 0; wave < 2; wave++) {
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => f.services.tokens.getTenantAccessToken('tk-no-ticket')));
      expect(results.every((r) => r.status === 'rejected' && r.reason instanceof AppTicketMissingError)).toBe(true);
    }
    const err = (await f.services.tokens.getTenantAccessToken('tk-no-ticket').catch((e: unknown) => e)) as AppError;
    expect([err.statusCode, err.code]).toEqual([503, 'app_ticket_missing']);

    expect(f.sim.count(AUTH_PATHS.ticketResend)).toBe(1);
    expect(f.sim.count(AUTH_PATHS.appAccessToken)).toBe(0);
    expect(f.sim.count(AUTH_PATHS.tenantAccessToken)).toBe(0);
    const health = await f.services.tokens.health('app', f.appId);
    expect(health.status).toBe('failing');
    expect(health.lastError).toMatchObject({ code: 'app_ticket_missing', class: 'app_ticket' });
    // The ticket has its own pacing (one resend per cool-down): no backoff on top of it.
    expect(health.nextAttemptAt).toBeNull();
  });
});

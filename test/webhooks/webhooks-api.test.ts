import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { emitWebhookEvent } from '../../src/webhooks/emit.js';
import { pruneDeliveries } from '../../src/webhooks/webhooks.repository.js';
import { WebhookSender } from '../../src/webhooks/sender.js';
import { WebhooksService } from '../../src/webhooks/webhooks.service.js';
import type { Resolver } from '../../src/webhooks/url-policy.js';
import { AppError } from '../../src/errors.js';
import { configuredSecrets, findLogLeaks } from '../helpers/secret-watch.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { waitFor } from '../helpers/wait.js';

let stack: Stack;
let receiver: WebhookReceiver;
/** Every answer body, searched for secrets at the end. */
const answers: string[] = [];

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await stack.api(method, path, body);
  const text = await res.text();
  answers.push(text);
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

beforeAll(async () => {
  receiver = new WebhookReceiver();
  await receiver.start();
  stack = await startStack();
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.stop();
});

describe('/api/v1/webhooks', () => {
  const issued: string[] = [];

  it('creates, reads, lists, changes and deletes webhooks; the secret is answered once', async () => {
    expect((await stack.api('GET', '/api/v1/webhooks', undefined, 'wrong-token-0000000')).status).toBe(401);
    const created = await call('POST', '/api/v1/webhooks', { url: receiver.url, eventTypes: ['records.changed', 'sync.finished'], description: 'analytics' });
    expect(created.status).toBe(201);
    const secret = created.json.secret as string;
    issued.push(secret);
    expect(created.json).toMatchObject({
      url: receiver.url,
      eventTypes: ['records.changed', 'sync.finished'],
      tenantKeys: null,
      status: 'enabled',
      description: 'analytics',
      disabledReason: null,
    });
    const id = created.json.id as string;
    const got = await call('GET', `/api/v1/webhooks/${id}`);
    expect(got.json).not.toHaveProperty('secret');
    expect(got.json.id).toBe(id);
    const list = await call('GET', '/api/v1/webhooks');
    expect((list.json.webhooks as unknown[]).length).toBe(1);

    const patched = await call('PATCH', `/api/v1/webhooks/${id}`, { eventTypes: ['tenant.installed'], tenantKeys: ['t1', 't1', 't2'] });
    expect(patched.json).toMatchObject({ eventTypes: ['tenant.installed'], tenantKeys: ['t1', 't2'] });
    const off = await call('PATCH', `/api/v1/webhooks/${id}`, { enabled: false });
    expect(off.json).toMatchObject({ status: 'disabled', disabledReason: 'disabled through the API' });
    const on = await call('PATCH', `/api/v1/webhooks/${id}`, { enabled: true, tenantKeys: null });
    expect(on.json).toMatchObject({ status: 'enabled', disabledReason: null, tenantKeys: null });

    const rotated = await call('POST', `/api/v1/webhooks/${id}/rotate-secret`, {});
    expect(rotated.status).toBe(200);
    issued.push(rotated.json.secret as string);
    expect(rotated.json.secret).not.toBe(secret);

    expect((await call('GET', `/api/v1/webhooks/${id}/deliveries`)).json).toEqual({ deliveries: [], nextCursor: null });
    expect((await call('DELETE', `/api/v1/webhooks/${id}`)).status).toBe(204);
    expect((await call('GET', `/api/v1/webhooks/${id}`)).status).toBe(404);
    expect((await call('DELETE', `/api/v1/webhooks/${id}`)).status).toBe(404);
    expect((await call('GET', `/api/v1/webhooks/${id}/deliveries`)).status).toBe(404);
  });

  it('refuses bad input with 400 naming the field', async () => {
    const bad = [
      { url: receiver.url, eventTypes: [] },
      { url: receiver.url, eventTypes: ['records.deleted'] },
      { url: 'ftp://example.com/x', eventTypes: ['sync.finished'] },
      { url: 'not a url', eventTypes: ['sync.finished'] },
      { url: 'https://user:pw@example.com/x', eventTypes: ['sync.finished'] },
      { url: receiver.url, eventTypes: ['sync.finished'], secret: 'mine' },
    ];
    for (const body of bad) {
      const res = await call('POST', '/api/v1/webhooks', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((res.json.error as { message: string }).message).toMatch(/body\.|url/);
    }
    expect((await call('PATCH', '/api/v1/webhooks/1', {})).status).toBe(400);
    expect((await call('POST', '/api/v1/webhooks/1/rotate-secret', { overlapSeconds: -1 })).status).toBe(400);
  });

  it('lists deliveries with their attempts, and never shows a secret in an answer or a log line', async () => {
    const created = await call('POST', '/api/v1/webhooks', { url: receiver.url, eventTypes: ['tenant.installed'] });
    const id = created.json.id as string;
    issued.push(created.json.secret as string);
    receiver.accept(created.json.secret as string);
    await stack.db.db.transaction().execute((trx) => emitWebhookEvent(trx, { type: 'tenant.installed', tenantKey: 't-list', data: { appId: 'cli_x' } }));
    await waitFor(() => receiver.received.length === 1, 5_000, 'the delivery');
    await waitFor(async () => ((await call('GET', `/api/v1/webhooks/${id}/deliveries`)).json.deliveries as Array<{ status: string }>)[0]?.status === 'delivered', 5_000, 'delivered');
    const listed = await call('GET', `/api/v1/webhooks/${id}/deliveries?status=delivered&limit=1`);
    const [d] = listed.json.deliveries as Array<Record<string, unknown>>;
    expect(d).toMatchObject({ eventType: 'tenant.installed', tenantKey: 't-list', status: 'delivered', attemptCount: 1, lastStatusCode: 204, messageId: receiver.received[0]!.id });
    expect(d!.attempts).toEqual([{ at: expect.any(String), statusCode: 204, latencyMs: expect.any(Number), error: null }]);
    expect(listed.json.nextCursor).toBe(d!.id);
    expect((await call('GET', `/api/v1/webhooks/${id}/deliveries?cursor=${d!.id as string}`)).json.deliveries).toEqual([]);

    const secrets = configuredSecrets(stack);
    for (const s of issued) secrets.add('webhook signing secret', s);
    secrets.add('webhook signing secret key bytes', Buffer.from(issued[0]!.slice('whsec_'.length), 'base64').toString('hex'));
    // The answers that were meant to carry a secret (create, rotate) are the only ones that do.
    const leaks = answers.filter((a) => !issued.some((s) => a.includes(`"secret":"${s}"`))).flatMap((a) => secrets.find(a));
    expect(leaks).toEqual([]);
    expect(findLogLeaks(stack.logs, secrets)).toEqual([]);
    const stored = await stack.db.db.selectFrom('webhooks').select(['secret_sealed']).execute();
    for (const row of stored) expect(Buffer.from(row.secret_sealed).toString('latin1')).not.toContain('whsec_');

    // Retention: finished deliveries go after their days, with events no delivery needs.
    expect(await pruneDeliveries(stack.db.db, 30)).toBe(0);
    await stack.db.db.updateTable('webhook_deliveries').set({ created_at: sql<Date>`now() - interval '31 days'` } as never).execute();
    await sql`update webhook_events set occurred_at = now() - interval '31 days'`.execute(stack.db.db);
    expect(await pruneDeliveries(stack.db.db, 30)).toBe(1);
    expect(await stack.db.db.selectFrom('webhook_events').select('id').execute()).toEqual([]);
  });
});

describe('targets in production (ALLOW_PRIVATE_WEBHOOKS unset)', () => {
  /** DNS as the test says: a name can move to another address between two lookups (a rebind). */
  const dns = new Map<string, string>([['hooks.example.test', '93.184.216.34']]);
  const resolve: Resolver = async (host) => {
    const address = dns.get(host);
    if (!address) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return [{ address, family: address.includes(':') ? 6 : 4 }];
  };

  it('takes only https on public hosts at create and update', async () => {
    const service = new WebhooksService({ db: stack.db.db, sealer: stack.larksync.services.sealer, policy: { allowPrivate: false }, resolve });
    const refused = async (url: string) => {
      const err = await service.create({ url, eventTypes: ['sync.finished'] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, url).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('invalid_url');
      return (err as AppError).message;
    };
    expect(await refused('http://hooks.example.test/x')).toContain('https');
    expect(await refused('https://127.0.0.1/x')).toContain('loopback');
    expect(await refused('https://10.1.2.3/x')).toContain('private');
    expect(await refused('https://169.254.169.254/latest/meta-data')).toContain('link-local');
    expect(await refused('https://[::1]/x')).toContain('loopback');
    expect(await refused('https://[::ffff:10.0.0.1]/x')).toContain('private');
    expect(await refused('https://localhost/x')).toContain('loopback');
    expect(await refused('https://nowhere.example.test/x')).toContain('does not resolve');
    dns.set('internal.example.test', '192.168.1.20');
    expect(await refused('https://internal.example.test/x')).toContain('private');
    const ok = await service.create({ url: 'https://hooks.example.test/x', eventTypes: ['sync.finished'] });
    await expect(service.update(ok.webhook.id, { url: 'https://internal.example.test/y' })).rejects.toThrow(/private/);
    await service.remove(ok.webhook.id);
  });

  it('checks the address again when it connects: a name rebound to this machine is refused before any byte is sent', async () => {
    let hits = 0;
    const server = http.createServer((_req, res) => {
      hits += 1;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    dns.set('rebind.example.test', '127.0.0.1');
    const sender = new WebhookSender({ allowPrivate: false, timeoutMs: 2_000, maxResponseBytes: 4096, resolve });
    const msg = (url: string) => ({ url, messageId: 'msg_1', body: '{}', secrets: [`whsec_${Buffer.alloc(32, 1).toString('base64')}`] });
    const rebound = await sender.send(msg(`http://rebind.example.test:${port}/x`), new Date());
    expect(rebound).toMatchObject({ ok: false, statusCode: null, error: 'the host resolves to a loopback, private or link-local address' });
    const literal = await sender.send(msg(`http://127.0.0.1:${port}/x`), new Date());
    expect(literal.error).toContain('loopback');
    expect(hits).toBe(0);
    // The same name allowed (ALLOW_PRIVATE_WEBHOOKS=1) reaches the server.
    const allowed = new WebhookSender({ allowPrivate: true, timeoutMs: 2_000, maxResponseBytes: 4096, resolve });
    expect(await allowed.send(msg(`http://rebind.example.test:${port}/x`), new Date())).toMatchObject({ ok: true, statusCode: 200 });
    expect(hits).toBe(1);
    sender.close();
    allowed.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('never follows a redirect, gives up after the timeout, and reads at most a few KiB of an answer', async () => {
    let served = 0;
    const server = http.createServer((req, res) => {
      if (req.url === '/redirect') {
        res.writeHead(307, { location: '/elsewhere' }).end();
      } else if (req.url === '/elsewhere') {
        served += 1;
        res.end();
      } else if (req.url === '/slow') {
        setTimeout(() => res.end(), 3_000).unref();
      } else {
        // 10 MiB, slowly: the sender stops after a few KiB.
        res.writeHead(200);
        const chunk = Buffer.alloc(64 * 1024, 'x');
        let sent = 0;
        const push = () => {
          while (sent < 160 && res.write(chunk)) sent += 1;
          if (sent < 160) res.once('drain', push);
          else res.end();
        };
        push();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const sender = new WebhookSender({ allowPrivate: true, timeoutMs: 500, maxResponseBytes: 4096 });
    const msg = (path: string) => ({ url: base + path, messageId: 'msg_2', body: '{}', secrets: [`whsec_${Buffer.alloc(32, 2).toString('base64')}`] });
    expect(await sender.send(msg('/redirect'), new Date())).toMatchObject({ ok: false, statusCode: 307, error: 'HTTP 307: redirects are not followed' });
    expect(served).toBe(0);
    const slow = await sender.send(msg('/slow'), new Date());
    expect(slow).toMatchObject({ ok: false, statusCode: null, error: 'no answer within 500 ms' });
    expect(slow.latencyMs).toBeLessThan(1_500);
    const big = await sender.send(msg('/big'), new Date());
    expect(big).toMatchObject({ ok: true, statusCode: 200 });
    expect(big.latencyMs).toBeLessThan(1_000);
    sender.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
});

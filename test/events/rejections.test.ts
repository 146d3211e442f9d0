import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encryptPush } from '../../src/lark/event-crypto.js';
import { startStack, STORE_APP, type Stack } from '../helpers/stack.js';
import {
  encryptedWire,
  settleStartupTicket,
  eventCounts,
  eventsWithoutJob,
  maxJobId,
  newId,
  plainWire,
  postRaw,
  signedWire,
  v1Body,
  v2Body,
  type PostResult,
  type Wire,
} from '../helpers/events-helpers.js';

const ticketEvent = (ticket = `tkt-${newId()}`) => ({ app_id: STORE_APP.appId, app_ticket: ticket, type: 'app_ticket' });
const challengeText = (token: string, challenge = 'ch-unsigned') => JSON.stringify({ challenge, token, type: 'url_verification' });
const nowSeconds = () => Date.now() / 1000;

function expectError(res: PostResult, status: number, code: string) {
  expect({ status: res.status, body: res.json }).toEqual({
    status,
    body: { error: { code, message: expect.stringMatching(/\S/) } },
  });
}

/**
 * The worker is off so queued jobs stay visible: "stores nothing" means no lark_events row and no
 * graphile-worker job appeared, checked around every single rejected push.
 */
describe('pushes to an endpoint with an encrypt key', () => {
  let stack: Stack;
  let before: { events: number; jobs: number; maxJob: number };

  beforeAll(async () => {
    stack = await startStack({ encrypt: true, start: { worker: false } });
    await settleStartupTicket(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    before = { ...(await eventCounts(stack.db)), maxJob: await maxJobId(stack.db) };
  });

  async function expectNothingStored() {
    expect({ ...(await eventCounts(stack.db)), maxJob: await maxJobId(stack.db) }).toEqual(before);
  }

  async function rejected(wire: Wire | { body: string | Buffer; headers: Record<string, string> }, status: number, code: string) {
    const res = await postRaw(stack.eventsUrl, wire);
    expectError(res, status, code);
    await expectNothingStored();
    return res;
  }

  it('accepts a correctly signed and encrypted v1 event, storing one row with a job to read it', async () => {
    const res = await postRaw(stack.eventsUrl, encryptedWire(JSON.stringify(v1Body(ticketEvent()))));
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ msg: 'success' });
    expect((await eventCounts(stack.db)).events).toBe(before.events + 1);
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
  });

  it('accepts a correctly signed and encrypted v2 event (token read from header.token)', async () => {
    const res = await postRaw(stack.eventsUrl, encryptedWire(JSON.stringify(v2Body('im.message.receive_v1', {}))));
    expect(res.status).toBe(200);
    expect((await eventCounts(stack.db)).events).toBe(before.events + 1);
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
  });

  describe('timestamp window: up to 8 hours in the past (Lark retries late), 5 minutes ahead', () => {
    // Rounded so that whole-second headers never drift across a bound on the way.
    const cases = [
      { name: '7:59:50 in the past', ts: () => Math.ceil(nowSeconds()) - (8 * 3600 - 10), ok: true },
      { name: '4:59 in the future', ts: () => Math.floor(nowSeconds()) + 299, ok: true },
      { name: '8:00:10 in the past', ts: () => Math.floor(nowSeconds()) - (8 * 3600 + 10), ok: false },
      { name: '5:01 in the future', ts: () => Math.ceil(nowSeconds()) + 301, ok: false },
      { name: 'a day in the past', ts: () => Math.floor(nowSeconds()) - 86_400, ok: false },
    ];
    for (const c of cases) {
      it(`${c.ok ? 'accepts' : 'rejects'} a push signed ${c.name}`, async () => {
        const wire = encryptedWire(JSON.stringify(v1Body(ticketEvent())), { timestamp: String(c.ts()) });
        if (c.ok) {
          const res = await postRaw(stack.eventsUrl, wire);
          expect(res.status).toBe(200);
          expect((await eventCounts(stack.db)).events).toBe(before.events + 1);
        } else {
          const res = await rejected(wire, 401, 'stale_timestamp');
          expect((res.json as { error: { message: string } }).error.message).toContain('8 hours');
        }
      });
    }

    it('accepts a millisecond timestamp inside the window and rejects one outside it', async () => {
      const ok = encryptedWire(JSON.stringify(v1Body(ticketEvent())), { timestamp: String(Date.now() - 7 * 3600_000) });
      expect((await postRaw(stack.eventsUrl, ok)).status).toBe(200);
      before = { ...(await eventCounts(stack.db)), maxJob: await maxJobId(stack.db) };
      await rejected(encryptedWire(JSON.stringify(v1Body(ticketEvent())), { timestamp: String(Date.now() + 10 * 60_000) }), 401, 'stale_timestamp');
    });

    it('rejects a timestamp that is not a number', async () => {
      await rejected(encryptedWire(JSON.stringify(v1Body(ticketEvent())), { timestamp: 'yesterday' }), 401, 'stale_timestamp');
    });
  });

  it('rejects a signature made with another key (401 invalid_signature)', async () => {
    await rejected(encryptedWire(JSON.stringify(v1Body(ticketEvent())), { signKey: 'not-our-key' }), 401, 'invalid_signature');
  });

  it('rejects a signature that belongs to another nonce', async () => {
    const wire = encryptedWire(JSON.stringify(v1Body(ticketEvent())));
    await rejected({ ...wire, headers: { ...wire.headers, 'x-lark-request-nonce': 'different' } }, 401, 'invalid_signature');
  });

  it('rejects a truncated or garbled signature', async () => {
    const wire = encryptedWire(JSON.stringify(v1Body(ticketEvent())));
    const sig = wire.headers['x-lark-signature']!;
    await rejected({ ...wire, headers: { ...wire.headers, 'x-lark-signature': sig.slice(0, -1) } }, 401, 'invalid_signature');
    await rejected({ ...wire, headers: { ...wire.headers, 'x-lark-signature': `${sig}00` } }, 401, 'invalid_signature');
    await rejected({ ...wire, headers: { ...wire.headers, 'x-lark-signature': 'not hex at all' } }, 401, 'invalid_signature');
  });

  it('accepts the signature in upper-case hex (it is the same digest)', async () => {
    const wire = encryptedWire(JSON.stringify(v1Body(ticketEvent())));
    const res = await postRaw(stack.eventsUrl, {
      ...wire,
      headers: { ...wire.headers, 'x-lark-signature': wire.headers['x-lark-signature']!.toUpperCase() },
    });
    expect(res.status).toBe(200);
  });

  it('rejects the original signature on a whitespace-altered body: the signature covers the raw bytes', async () => {
    const wire = encryptedWire(JSON.stringify(v1Body(ticketEvent())));
    const parsed = JSON.parse(wire.body) as { encrypt: string };
    // Same JSON value, different bytes.
    for (const body of [JSON.stringify(parsed, null, 2), `${wire.body}\n`, ` ${wire.body}`, wire.body.replace('":"', '": "')]) {
      expect(JSON.parse(body)).toEqual(parsed);
      await rejected({ body, headers: wire.headers }, 401, 'invalid_signature');
    }
  });

  it('rejects an encrypted event without any signature headers (401 unverified_push)', async () => {
    const { body } = encryptedWire(JSON.stringify(v1Body(ticketEvent())));
    await rejected({ body, headers: { 'content-type': 'application/json' } }, 401, 'unverified_push');
  });

  it('rejects a signature without its timestamp or nonce (401 missing_signature), before decrypting', async () => {
    const wire = encryptedWire(JSON.stringify(v1Body(ticketEvent())));
    const { 'x-lark-request-timestamp': _ts, ...noTimestamp } = wire.headers;
    const { 'x-lark-request-nonce': _nonce, ...noNonce } = wire.headers;
    await rejected({ body: wire.body, headers: noTimestamp }, 401, 'missing_signature');
    await rejected({ body: wire.body, headers: noNonce }, 401, 'missing_signature');
  });

  it('checks the signature before decrypting: a bad signature on garbage is invalid_signature, not undecryptable', async () => {
    const wire = signedWire(JSON.stringify({ encrypt: 'AAAA' }), { signKey: 'not-our-key' });
    await rejected(wire, 401, 'invalid_signature');
  });

  it('rejects a validly signed payload that does not decrypt (400 undecryptable)', async () => {
    await rejected(signedWire(JSON.stringify({ encrypt: 'bm90IGEgY2lwaGVydGV4dA==' })), 400, 'undecryptable');
    await rejected(signedWire(JSON.stringify({ encrypt: '%%% not base64 %%%' })), 400, 'undecryptable');
    // Right length, wrong key: fails on the padding check.
    const iv = Buffer.alloc(16, 7);
    const foreign = encryptPush('some-other-key', JSON.stringify(v1Body(ticketEvent(), { uuid: 'fixed-uuid' })), iv);
    await rejected(signedWire(JSON.stringify({ encrypt: foreign })), 400, 'undecryptable');
  });

  it('rejects a signed body that is not JSON at all (400 malformed_json)', async () => {
    await rejected(signedWire('{"encrypt": '), 400, 'malformed_json');
    await rejected(signedWire('[]'), 400, 'malformed_json');
    await rejected(signedWire(''), 400, 'malformed_json');
  });

  it('rejects a correctly encrypted payload that is not JSON (400 malformed_json)', async () => {
    await rejected(encryptedWire('this is not json'), 400, 'malformed_json');
  });

  it('rejects a correctly signed and encrypted event carrying the wrong token (401 invalid_token), v1 and v2', async () => {
    await rejected(encryptedWire(JSON.stringify(v1Body(ticketEvent(), { token: 'vtok-other-app' }))), 401, 'invalid_token');
    await rejected(encryptedWire(JSON.stringify(v2Body('im.message.receive_v1', {}, { token: 'vtok-other-app' }))), 401, 'invalid_token');
    const noToken = v1Body(ticketEvent()) as Record<string, unknown>;
    delete noToken.token;
    await rejected(encryptedWire(JSON.stringify(noToken)), 401, 'invalid_token');
  });

  it('does not take a v2 event`s token from the top level', async () => {
    const body = { ...v2Body('im.message.receive_v1', {}, { token: 'vtok-wrong' }), token: STORE_APP.verificationToken };
    await rejected(encryptedWire(JSON.stringify(body)), 401, 'invalid_token');
  });

  it('rejects an unknown schema (400 unknown_schema)', async () => {
    const token = STORE_APP.verificationToken;
    for (const body of [
      { token, type: 'something_else', uuid: newId(), event: { type: 'app_ticket' } },
      { schema: '3.0', header: { event_id: newId(), token, event_type: 'x' }, event: {} },
      { schema: '3.0', token, type: 'event_callback', uuid: newId(), event: { type: 'app_ticket' } },
      { hello: 'world' },
    ]) {
      await rejected(encryptedWire(JSON.stringify(body)), 400, 'unknown_schema');
    }
  });

  it('rejects events without an id or a type (400 missing_event_id)', async () => {
    const v1 = v1Body(ticketEvent()) as Record<string, unknown>;
    delete v1.uuid;
    await rejected(encryptedWire(JSON.stringify(v1)), 400, 'missing_event_id');
    const v2 = v2Body('', {});
    await rejected(encryptedWire(JSON.stringify(v2)), 400, 'missing_event_id');
  });

  it('rejects a plaintext event when an encrypt key is configured', async () => {
    // Unsigned, it is one more push that is not a signed event: the one 401.
    await rejected(plainWire(JSON.stringify(v1Body(ticketEvent()))), 401, 'unverified_push');
    // With a valid signature over the plaintext bytes, it is told what is wrong.
    await rejected(signedWire(JSON.stringify(v1Body(ticketEvent()))), 400, 'not_encrypted');
  });

  describe('a push without X-Lark-Signature (no padding oracle)', () => {
    const wrongKeyIv = Buffer.alloc(16, 7);
    /** Each fails a different check; each must get the very same answer. */
    const unsignedCases = (): Array<{ name: string; detail: string; body: string }> => [
      { name: 'bad padding (another key)', detail: 'undecryptable', body: JSON.stringify({ encrypt: encryptPush('some-other-key', challengeText('vtok-x'), wrongKeyIv) }) },
      { name: 'not base64 at all', detail: 'undecryptable', body: JSON.stringify({ encrypt: '%%% not base64 %%%' }) },
      { name: 'good padding, not JSON', detail: 'malformed_json', body: JSON.stringify({ encrypt: encryptPush(STORE_APP.encryptKey, 'this is not json') }) },
      { name: 'good padding, wrong token', detail: 'invalid_token', body: JSON.stringify({ encrypt: encryptPush(STORE_APP.encryptKey, challengeText('vtok-wrong')) }) },
      { name: 'good padding, an event', detail: 'missing_signature', body: JSON.stringify({ encrypt: encryptPush(STORE_APP.encryptKey, JSON.stringify(v1Body(ticketEvent()))) }) },
      { name: 'good padding, a challenge without a value', detail: 'unknown_schema', body: JSON.stringify({ encrypt: encryptPush(STORE_APP.encryptKey, JSON.stringify({ token: STORE_APP.verificationToken, type: 'url_verification' })) }) },
      { name: 'a plaintext challenge', detail: 'not_encrypted', body: challengeText(STORE_APP.verificationToken) },
      { name: 'not JSON', detail: 'malformed_json', body: '{"encrypt": ' },
      {
        name: 'a valid challenge over 2 KB',
        detail: 'unsigned_body_too_large',
        body: JSON.stringify({ encrypt: encryptPush(STORE_APP.encryptKey, challengeText(STORE_APP.verificationToken, 'c'.repeat(2048))) }),
      },
    ];
    const rejectedCount = async (): Promise<Record<string, number>> => {
      const text = await (await fetch(`${stack.larksync.url}/metrics`)).text();
      const out: Record<string, number> = {};
      for (const m of text.matchAll(/^larksync_events_rejected_total\{reason="([^"]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
      return out;
    };

    it('answers every failure with one identical 401, counted under one reason; only the log says which check failed', async () => {
      const metricsBefore = await rejectedCount();
      const logsBefore = stack.logs.length;
      const cases = unsignedCases();
      const answers = new Set<string>();
      for (const c of cases) {
        const res = await fetch(stack.eventsUrl, { method: 'POST', body: c.body, headers: { 'content-type': 'application/json' } });
        const text = await res.text();
        answers.add(JSON.stringify({ status: res.status, type: res.headers.get('content-type'), length: res.headers.get('content-length'), text }));
        expect({ case: c.name, status: res.status }).toEqual({ case: c.name, status: 401 });
        expectError({ status: res.status, text, json: JSON.parse(text), ms: 0 }, 401, 'unverified_push');
        await expectNothingStored();
      }
      expect(answers.size).toBe(1);

      // /metrics (public) shows one reason for all of them, and none of the checks behind it.
      const metricsAfter = await rejectedCount();
      const delta = Object.fromEntries(
        Object.entries(metricsAfter).map(([k, v]) => [k, v - (metricsBefore[k] ?? 0)]).filter(([, v]) => (v as number) !== 0),
      );
      expect(delta).toEqual({ unverified_push: cases.length });

      // The log keeps the detail, one line per push.
      const lines = stack.logs.slice(logsBefore).filter((l) => l.includes('lark push rejected'));
      expect(lines.map((l) => (JSON.parse(l) as { detail?: string }).detail)).toEqual(cases.map((c) => c.detail));
    });

    it('still answers a valid unsigned challenge up to 2 KB', async () => {
      const challenge = 'c'.repeat(1400);
      const body = JSON.stringify({ encrypt: encryptPush(STORE_APP.encryptKey, challengeText(STORE_APP.verificationToken, challenge)) });
      expect(Buffer.byteLength(body)).toBeLessThanOrEqual(2048);
      const res = await postRaw(stack.eventsUrl, { body, headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ challenge });
    });
  });

  it('rejects a body over 1 MiB with 413 payload_too_large', async () => {
    const big = `{"encrypt":"${'A'.repeat(1024 * 1024)}"}`;
    await rejected(signedWire(big), 413, 'payload_too_large');
  });

  it('accepts a body just under 1 MiB, so the limit is not accidentally lower', async () => {
    const event = { ...ticketEvent(), padding: 'x'.repeat(700 * 1024) };
    const wire = encryptedWire(JSON.stringify(v1Body(event)));
    expect(Buffer.byteLength(wire.body)).toBeGreaterThan(900 * 1024);
    expect(Buffer.byteLength(wire.body)).toBeLessThan(1024 * 1024);
    expect((await postRaw(stack.eventsUrl, wire)).status).toBe(200);
  });

  it('accepts pushes whatever their content type says, since the body is read raw', async () => {
    const wire = encryptedWire(JSON.stringify(v1Body(ticketEvent())));
    const res = await postRaw(stack.eventsUrl, { body: wire.body, headers: { ...wire.headers, 'content-type': 'text/plain' } });
    expect(res.status).toBe(200);
    const wire2 = encryptedWire(JSON.stringify(v1Body(ticketEvent())));
    const { 'content-type': _ct, ...noType } = wire2.headers;
    const res2 = await postRaw(stack.eventsUrl, { body: Buffer.from(wire2.body), headers: noType });
    expect(res2.status).toBe(200);
  });

  it('never echoes the decrypted payload or the token in a rejection', async () => {
    const secretTicket = `tkt-${newId()}`;
    const res = await rejected(
      encryptedWire(JSON.stringify(v1Body(ticketEvent(secretTicket), { token: 'vtok-bad' }))),
      401,
      'invalid_token',
    );
    expect(res.text).not.toContain(secretTicket);
    expect(res.text).not.toContain(STORE_APP.verificationToken);
    expect(stack.logs.join('')).not.toContain(secretTicket);
  });
});

describe('pushes to an endpoint without an encrypt key', () => {
  let stack: Stack;
  let before: { events: number; jobs: number };
  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { worker: false } });
    await settleStartupTicket(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    before = await eventCounts(stack.db);
  });

  it('accepts a plaintext event on the token alone, ignoring any signature headers', async () => {
    const res = await stack.sim.pushV1(STORE_APP.appId, ticketEvent());
    expect(res.status).toBe(200);
    const wire = signedWire(JSON.stringify(v1Body(ticketEvent())), { signKey: 'whatever', timestamp: '1' });
    expect((await postRaw(stack.eventsUrl, wire)).status).toBe(200);
    expect((await eventCounts(stack.db)).events).toBe(before.events + 2);
    expect(await eventsWithoutJob(stack.db)).toEqual([]);
  });

  it('rejects a wrong token (401 invalid_token), malformed JSON and unknown schemas, storing nothing', async () => {
    expectError(await postRaw(stack.eventsUrl, plainWire(JSON.stringify(v1Body(ticketEvent(), { token: 'nope' })))), 401, 'invalid_token');
    expectError(await postRaw(stack.eventsUrl, plainWire(JSON.stringify(v2Body('x.y', {}, { token: 'nope' })))), 401, 'invalid_token');
    expectError(await postRaw(stack.eventsUrl, plainWire('{"uuid":')), 400, 'malformed_json');
    expectError(await postRaw(stack.eventsUrl, plainWire('"just a string"')), 400, 'malformed_json');
    expectError(await postRaw(stack.eventsUrl, plainWire(JSON.stringify({ type: 'nope', token: STORE_APP.verificationToken }))), 400, 'unknown_schema');
    expectError(await postRaw(stack.eventsUrl, plainWire(`{"pad":"${'x'.repeat(1024 * 1024)}"}`)), 413, 'payload_too_large');
    expect(await eventCounts(stack.db)).toEqual(before);
  });

  it('rejects an encrypted push it cannot decrypt with a clear 400', async () => {
    const res = await postRaw(stack.eventsUrl, encryptedWire(JSON.stringify(v1Body(ticketEvent()))));
    expectError(res, 400, 'encrypt_key_not_configured');
    expect(await eventCounts(stack.db)).toEqual(before);
  });
});

describe('pushes when no store app is configured', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      encrypt: false,
      start: { worker: false },
      env: { LARK_APP_ID: '', LARK_APP_SECRET: '', LARK_VERIFICATION_TOKEN: '', LARK_ENCRYPT_KEY: '' },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers 503 store_app_not_configured and stores nothing', async () => {
    const before = await eventCounts(stack.db);
    expectError(await postRaw(stack.eventsUrl, plainWire(JSON.stringify(v1Body(ticketEvent())))), 503, 'store_app_not_configured');
    expectError(await postRaw(stack.eventsUrl, plainWire(JSON.stringify({ challenge: 'c', token: 't', type: 'url_verification' }))), 503, 'store_app_not_configured');
    expect(await eventCounts(stack.db)).toEqual(before);
  });
});

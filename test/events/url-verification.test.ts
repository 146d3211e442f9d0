import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, STORE_APP, type Stack } from '../helpers/stack.js';
import { encryptedWire, eventCounts, plainWire, postRaw, settleStartupTicket } from '../helpers/events-helpers.js';

const challengeBody = (token: string, challenge = 'ch-abc123') => JSON.stringify({ challenge, token, type: 'url_verification' });

// The console gives up when the echo takes a second (events.md §3); leave a wide margin.
const CHALLENGE_BUDGET_MS = 1_000;

describe('URL verification without an encrypt key', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: false, start: { worker: false } });
    await settleStartupTicket(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('echoes the challenge as plain JSON, well inside 1 s', async () => {
    const before = await eventCounts(stack.db);
    const res = await stack.sim.challenge(STORE_APP.appId);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ challenge: res.challenge });
    expect(res.durationMs).toBeLessThan(CHALLENGE_BUDGET_MS);
    // A challenge is not an event.
    expect(await eventCounts(stack.db)).toEqual(before);
  });

  it('answers every one of 20 challenges in time (the first is not a warm-up exception)', async () => {
    const times: number[] = [];
    for (let i = 0; i < 20; i += 1) {
      const res = await stack.sim.challenge(STORE_APP.appId);
      expect(res.status).toBe(200);
      times.push(res.durationMs);
    }
    expect(Math.max(...times)).toBeLessThan(CHALLENGE_BUDGET_MS);
  });

  it('refuses a challenge carrying the wrong verification token with 401 invalid_token', async () => {
    const res = await postRaw(stack.eventsUrl, plainWire(challengeBody('vtok-someone-else')));
    expect(res.status).toBe(401);
    expect(res.json).toEqual({ error: { code: 'invalid_token', message: expect.any(String) } });
    expect(res.text).not.toContain('ch-abc123');
  });

  it('refuses a challenge with no token at all', async () => {
    const res = await postRaw(stack.eventsUrl, plainWire(JSON.stringify({ challenge: 'ch-x', type: 'url_verification' })));
    expect(res.status).toBe(401);
    expect((res.json as { error: { code: string } }).error.code).toBe('invalid_token');
  });

  it('refuses a challenge whose token only shares a prefix with ours', async () => {
    const res = await postRaw(stack.eventsUrl, plainWire(challengeBody(STORE_APP.verificationToken.slice(0, -1))));
    expect(res.status).toBe(401);
    const longer = await postRaw(stack.eventsUrl, plainWire(challengeBody(`${STORE_APP.verificationToken}x`)));
    expect(longer.status).toBe(401);
  });

  it('refuses a challenge without a challenge value', async () => {
    const res = await postRaw(
      stack.eventsUrl,
      plainWire(JSON.stringify({ token: STORE_APP.verificationToken, type: 'url_verification' })),
    );
    expect(res.status).toBe(400);
    expect((res.json as { error: { code: string } }).error.code).toBe('unknown_schema');
  });
});

describe('URL verification with an encrypt key', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ encrypt: true, start: { worker: false } });
    await settleStartupTicket(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('decrypts the challenge and echoes it, well inside 1 s', async () => {
    const before = await eventCounts(stack.db);
    const res = await stack.sim.challenge(STORE_APP.appId);
    expect(res.status).toBe(200);
    // Lark expects the echo in plaintext JSON even when the request was encrypted (events.md §3).
    expect(JSON.parse(res.body)).toEqual({ challenge: res.challenge });
    expect(res.durationMs).toBeLessThan(CHALLENGE_BUDGET_MS);
    expect(await eventCounts(stack.db)).toEqual(before);
  });

  it('also accepts an encrypted challenge that carries valid signature headers', async () => {
    const res = await postRaw(stack.eventsUrl, encryptedWire(challengeBody(STORE_APP.verificationToken, 'ch-signed')));
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ challenge: 'ch-signed' });
  });

  // An unsigned push gets one answer whatever is wrong with it (no padding oracle: see
  // rejections.test.ts); the log says which check failed.
  it('refuses an encrypted challenge with the wrong token (checked after decryption)', async () => {
    const { body, headers } = encryptedWire(challengeBody('vtok-wrong', 'ch-secret-echo'));
    const res = await postRaw(stack.eventsUrl, { body, headers: { 'content-type': headers['content-type']! } });
    expect(res.status).toBe(401);
    expect((res.json as { error: { code: string } }).error.code).toBe('unverified_push');
    expect(res.text).not.toContain('ch-secret-echo');
    expect(stack.logs.join('')).toContain('"detail":"invalid_token"');
  });

  it('refuses a plaintext challenge, since the console would have encrypted it', async () => {
    const res = await postRaw(stack.eventsUrl, plainWire(challengeBody(STORE_APP.verificationToken)));
    expect(res.status).toBe(401);
    expect((res.json as { error: { code: string } }).error.code).toBe('unverified_push');
    expect(stack.logs.join('')).toContain('"detail":"not_encrypted"');
  });

  it('refuses a challenge encrypted under another key, with the same answer as any unsigned failure', async () => {
    const { body } = encryptedWire(challengeBody(STORE_APP.verificationToken), { encryptKey: 'some-other-key' });
    const res = await postRaw(stack.eventsUrl, { body, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(401);
    expect((res.json as { error: { code: string } }).error.code).toBe('unverified_push');
    const wrongToken = await postRaw(stack.eventsUrl, { body: encryptedWire(challengeBody('vtok-wrong')).body, headers: { 'content-type': 'application/json' } });
    expect(wrongToken.text).toBe(res.text);
  });
});

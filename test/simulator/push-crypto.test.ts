import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AESCipher } from '@larksuiteoapi/node-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LarkSimulator } from '../../simulator/lark-simulator.js';
import { decryptPush, encryptPush, signPush } from '../../src/lark/event-crypto.js';

// Known answers from shared/lark/events.md §4 (decryption) and §5 (signature).
const DOCS_VECTOR = { key: 'test key', ciphertext: 'P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=', plaintext: 'hello world' };
const SELF_VECTOR = {
  key: 'sim-encrypt-key-001',
  iv: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'),
  plaintext: '{"challenge":"ch-7f3a","token":"vtok-demo","type":"url_verification"}',
  ciphertext:
    'AAECAwQFBgcICQoLDA0OD0JwaGIno4TCn+bytyls8H3oGLXsDHifFbewz+O3/qhEgn3QNH2r3BB+zc5IHoVoyho2CMPtRfU4PENHsjUik4vNcm3EMYtsStWPE2osomI8',
};
const SIGNATURE_EXAMPLE = {
  timestamp: '1718000000',
  nonce: '5d1f0c2a',
  key: 'sim-encrypt-key-001',
  signature: '54c25861372c38b7cc75abea013f5328e217cdce3804b73bd720f1b7ee58f0a2',
};

describe('push crypto known-answer vectors', () => {
  it('decryptPush decodes the documented vector and the self-made one', () => {
    expect(decryptPush(DOCS_VECTOR.key, DOCS_VECTOR.ciphertext)).toBe(DOCS_VECTOR.plaintext);
    expect(decryptPush(SELF_VECTOR.key, SELF_VECTOR.ciphertext)).toBe(SELF_VECTOR.plaintext);
  });

  it('encryptPush with the vector IV reproduces the self-made ciphertext byte for byte', () => {
    expect(encryptPush(SELF_VECTOR.key, SELF_VECTOR.plaintext, SELF_VECTOR.iv)).toBe(SELF_VECTOR.ciphertext);
  });

  it('the SDK agrees on both vectors', () => {
    expect(new AESCipher(DOCS_VECTOR.key).decrypt(DOCS_VECTOR.ciphertext)).toBe(DOCS_VECTOR.plaintext);
    expect(new AESCipher(SELF_VECTOR.key).decrypt(SELF_VECTOR.ciphertext)).toBe(SELF_VECTOR.plaintext);
  });

  it('signPush reproduces the documented signature example, from a string and from raw bytes', () => {
    const body = `{"encrypt":"${SELF_VECTOR.ciphertext}"}`;
    const { timestamp, nonce, key, signature } = SIGNATURE_EXAMPLE;
    expect(signPush(timestamp, nonce, key, body)).toBe(signature);
    expect(signPush(timestamp, nonce, key, Buffer.from(body, 'utf8'))).toBe(signature);
    // One byte of whitespace changes it: the signature is over the raw bytes, not the JSON value.
    expect(signPush(timestamp, nonce, key, `{"encrypt": "${SELF_VECTOR.ciphertext}"}`)).not.toBe(signature);
  });

  it('decryptPush refuses a wrong key and malformed ciphertext instead of returning garbage', () => {
    expect(() => decryptPush('wrong key', SELF_VECTOR.ciphertext)).toThrow();
    expect(() => decryptPush(SELF_VECTOR.key, 'AAEC')).toThrow(/invalid length/);
  });
});

describe('what the simulator puts on the wire for a push', () => {
  const sim = new LarkSimulator();
  const received: Array<{ headers: IncomingHttpHeaders; body: Buffer }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"msg":"success"}');
    });
  });

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
    sim.addApp({ appId: 'cli_wire_enc', appSecret: 's1', kind: 'store', verificationToken: 'vtok-wire', encryptKey: 'wire-key-001', eventUrl: url });
    sim.addApp({ appId: 'cli_wire_plain', appSecret: 's2', kind: 'store', verificationToken: 'vtok-plain', eventUrl: url });
    await sim.start();
  });
  afterAll(async () => {
    await sim.stop();
    await new Promise((resolve) => server.close(resolve));
  });

  it('encrypted push: signed over the raw bytes, seconds timestamp, decrypts to a v1 app_ticket envelope', async () => {
    received.length = 0;
    const res = await sim.pushTicket('cli_wire_enc');
    expect(res.status).toBe(200);
    const [push] = received;
    const { body, headers } = push!;
    expect(headers['content-type']).toMatch(/^application\/json/);
    const timestamp = String(headers['x-lark-request-timestamp']);
    const nonce = String(headers['x-lark-request-nonce']);
    expect(timestamp).toMatch(/^\d{10}$/);
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(5);
    expect(nonce.length).toBeGreaterThan(0);
    expect(headers['x-lark-signature']).toBe(signPush(timestamp, nonce, 'wire-key-001', body));

    // Compact `{"encrypt":"..."}`: the SDK's re-serialising signature check depends on it.
    const outer = JSON.parse(body.toString('utf8')) as { encrypt: string };
    expect(Object.keys(outer)).toEqual(['encrypt']);
    expect(JSON.stringify(outer)).toBe(body.toString('utf8'));
    const inner = JSON.parse(new AESCipher('wire-key-001').decrypt(outer.encrypt)) as Record<string, unknown>;
    expect(inner).toMatchObject({ type: 'event_callback', token: 'vtok-wire', uuid: res.uuid });
    expect(inner.event).toMatchObject({ type: 'app_ticket', app_id: 'cli_wire_enc' });
    expect((inner.event as { app_ticket: string }).app_ticket === sim.currentTicket('cli_wire_enc')).toBe(true);
  });

  it('plain push (no encrypt key): JSON body, no signature headers', async () => {
    received.length = 0;
    await sim.pushV2('cli_wire_plain', 'contact.user.created_v3', { object: { open_id: 'ou_1' } }, { tenantKey: 'tk-w' });
    const [push] = received;
    expect(push!.headers['x-lark-signature']).toBeUndefined();
    expect(push!.headers['x-lark-request-timestamp']).toBeUndefined();
    const body = JSON.parse(push!.body.toString('utf8')) as { schema: string; header: Record<string, string> };
    expect(body.schema).toBe('2.0');
    expect(body.header).toMatchObject({ token: 'vtok-plain', event_type: 'contact.user.created_v3', tenant_key: 'tk-w', app_id: 'cli_wire_plain' });
  });

  it('a redelivery carries the same id with a fresh signature', async () => {
    received.length = 0;
    const first = await sim.pushV1('cli_wire_enc', { type: 'app_open', app_id: 'cli_wire_enc', tenant_key: 'tk-r' });
    await sim.redeliver(first.uuid);
    expect(received).toHaveLength(2);
    const uuids = received.map((r) => {
      const outer = JSON.parse(r.body.toString('utf8')) as { encrypt: string };
      return (JSON.parse(decryptPush('wire-key-001', outer.encrypt)) as { uuid: string }).uuid;
    });
    expect(uuids).toEqual([first.uuid, first.uuid]);
    for (const r of received) {
      expect(r.headers['x-lark-signature']).toBe(
        signPush(String(r.headers['x-lark-request-timestamp']), String(r.headers['x-lark-request-nonce']), 'wire-key-001', r.body),
      );
    }
  });
});

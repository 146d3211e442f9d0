import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SinkRefusedError, SinkUnavailableError } from '../../src/sinks/sink-errors.js';
import { SinkHttp } from '../../src/sinks/sink-http.js';
import { checkSinkUrl } from '../../src/sinks/sink-url.js';
import { carriesShortToken, sameUploadName, sinkDocumentName, uploadPart } from '../../src/sinks/sink-driver.js';

// The sink HTTP client's limits against a server that misbehaves on purpose: no redirect is
// followed (the key would travel with it), a call that hangs times out, an answer past the cap is
// dropped, and no error ever carries the key. Then the names larksync gives sink documents.

const KEY = 'ragflow-never-in-an-error-0001';
let server: Server;
let base = '';
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    if (req.url?.startsWith('/redirect')) {
      res.writeHead(302, { location: 'http://127.0.0.1:1/steal' }).end();
    } else if (req.url?.startsWith('/huge')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"code":0,"data":"${'x'.repeat(200_000)}"}`);
    } else if (req.url?.startsWith('/hang')) {
      // never answers
    } else if (req.url?.startsWith('/echo')) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 100, message: `bad key ${KEY}` }));
    } else {
      res.writeHead(204).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const client = (timeoutMs = 5_000) => new SinkHttp(base, KEY, { timeoutMs, uploadTimeoutMs: timeoutMs, maxBodyBytes: 64 * 1024 });

describe('SinkHttp', () => {
  it('refuses a redirect instead of following it (and says what to fix)', async () => {
    const err = await client().send({ method: 'GET', path: '/redirect', op: 'documents.list' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SinkRefusedError);
    expect((err as Error).message).toMatch(/redirect \(HTTP 302\)/);
    expect(seen.filter((s) => s.includes('/steal'))).toEqual([]);
  });

  it('times out a call that hangs, and drops an answer past the cap', async () => {
    const hang = await client(300).send({ method: 'GET', path: '/hang', op: 'documents.list' }).catch((e: unknown) => e);
    expect(hang).toBeInstanceOf(SinkUnavailableError);
    expect((hang as Error).message).toMatch(/timeout/);
    const huge = await client().send({ method: 'GET', path: '/huge', op: 'documents.list' }).catch((e: unknown) => e);
    expect(huge).toBeInstanceOf(SinkUnavailableError);
    expect((huge as Error).message).toMatch(/larger than 65536 bytes/);
  });

  it('sends the key as a bearer token, and scrubs it from any text quoted in an error', async () => {
    const http = client();
    const a = await http.send({ method: 'GET', path: '/echo', op: 'documents.list' });
    expect(http.scrub(a.text)).not.toContain(KEY);
    expect(http.scrub(a.text)).toContain('[redacted]');
    expect(seen.at(-1)).toContain(`Bearer ${KEY}`);
  });
});

describe('sink URLs', () => {
  it('makes URLs canonical per product and refuses private hosts in production', () => {
    expect(checkSinkUrl('ragflow', 'https://rag.example.com/api/v1/', false)).toEqual({ ok: true, url: 'https://rag.example.com' });
    expect(checkSinkUrl('ragflow', 'https://rag.example.com/proxy/ragflow', false)).toEqual({ ok: true, url: 'https://rag.example.com/proxy/ragflow' });
    expect(checkSinkUrl('dify', 'https://api.dify.ai', false)).toEqual({ ok: true, url: 'https://api.dify.ai/v1' });
    expect(checkSinkUrl('dify', 'https://api.dify.ai/v1/', false)).toEqual({ ok: true, url: 'https://api.dify.ai/v1' });
    for (const bad of ['http://rag.example.com', 'https://127.0.0.1', 'https://[::1]:9380', 'https://10.0.0.8', 'https://100.64.0.1', 'https://[::ffff:192.168.1.1]', 'https://x.localhost']) {
      expect(checkSinkUrl('ragflow', bad, false).ok, bad).toBe(false);
    }
    expect(checkSinkUrl('ragflow', 'http://127.0.0.1:9380', true)).toEqual({ ok: true, url: 'http://127.0.0.1:9380' });
  });
});

describe('sink document names', () => {
  const token = 'doxcnAbCdEfGhIjKlMnOpQrStUv';
  it('title plus the short token; cut deterministically to 200 characters and 240 bytes; no slashes', () => {
    expect(sinkDocumentName('Onboarding / week 1', token, 'md')).toBe('Onboarding - week 1 (MnOpQrStUv).md');
    expect(sinkDocumentName(null, token, 'pdf')).toBe('Untitled (MnOpQrStUv).pdf');
    const long = sinkDocumentName('x'.repeat(500), token, 'md');
    expect([...long].length).toBe(200);
    expect(long).toBe(sinkDocumentName('x'.repeat(500), token, 'md'));
    const cjk = sinkDocumentName('知识库'.repeat(100), token, 'md');
    expect(Buffer.byteLength(cjk)).toBeLessThanOrEqual(240);
    expect(cjk.endsWith(' (MnOpQrStUv).md')).toBe(true);
  });

  it('recognises its own names, and RAGFlow renaming them on a collision', () => {
    const name = sinkDocumentName('Plan', token, 'md');
    expect(carriesShortToken(name, token)).toBe(true);
    expect(carriesShortToken('Plan (MnOpQrStUv)(1).md', token)).toBe(true);
    expect(carriesShortToken('Plan (MnOpQrStUw).md', token)).toBe(false);
    expect(sameUploadName('Plan (MnOpQrStUv)(2).md', name)).toBe(true);
    expect(sameUploadName('Other (MnOpQrStUv).md', name)).toBe(false);
  });
});

describe('upload bodies', () => {
  it('uploads a Markdown page from its Blob as it is and a file from its bytes', async () => {
    const text = 'Überblick — 概要\n'.repeat(3);
    const blob = new Blob([new Blob([text.slice(0, 5)]), text.slice(5)], { type: 'text/markdown' });
    const page = uploadPart({ blob, mime: 'text/markdown' });
    expect(page).toBe(blob);
    expect(page.type).toBe('text/markdown');
    expect(Buffer.from(await page.arrayBuffer()).equals(Buffer.from(text, 'utf8'))).toBe(true);
    const bytes = Buffer.from([0x25, 0x50, 0x44, 0x46]);
    const file = uploadPart({ bytes, mime: 'application/pdf' });
    expect(Buffer.from(await file.arrayBuffer()).equals(bytes)).toBe(true);
  });
});

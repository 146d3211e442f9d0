import { connect } from 'node:net';

/** What came back over a raw socket; `status` 0 means the server closed without an answer. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Everything the server sent, head included (for "no secret on the wire" checks). */
  wire: Buffer;
}

export interface RawRequest {
  method: string;
  /** Sent as-is on the request line: encode it yourself (or don't, that is the point). */
  target: string;
  /** Header lines in order; repeat a name to send it twice. Values are written as latin1 bytes. */
  headers: Array<[string, string]>;
  body?: Buffer | string;
  /** Adds `content-length` for the body (default true). */
  contentLength?: boolean;
  /** Sends the body as chunked transfer encoding instead (split into `chunks` pieces). */
  chunked?: number;
  /** Extra lines written verbatim after the headers (malformed ones included). */
  lines?: string[];
  /** Replaces the whole request line (e.g. `post /x HTTP/1.0`, or something that is no request line). */
  requestLine?: string;
}

/** Builds the bytes of an HTTP/1.1 request. `Connection: close`, so the answer ends with the socket. */
export function requestBytes(req: RawRequest, host: string): Buffer {
  const body = req.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
  const lines = [req.requestLine ?? `${req.method} ${req.target} HTTP/1.1`, `host: ${host}`, 'connection: close'];
  for (const [name, value] of req.headers) lines.push(`${name}: ${value}`);
  lines.push(...(req.lines ?? []));
  let payload = body;
  if (req.chunked !== undefined) {
    lines.push('transfer-encoding: chunked');
    const parts: Buffer[] = [];
    const size = Math.max(1, Math.ceil(body.length / Math.max(1, req.chunked)));
    for (let i = 0; i < body.length; i += size) {
      const piece = body.subarray(i, i + size);
      parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`, 'latin1'), piece, Buffer.from('\r\n', 'latin1'));
    }
    parts.push(Buffer.from('0\r\n\r\n', 'latin1'));
    payload = Buffer.concat(parts);
  } else if (req.contentLength !== false && (body.length > 0 || req.method !== 'GET')) {
    lines.push(`content-length: ${body.length}`);
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

function parseResponse(wire: Buffer): RawResponse {
  const end = wire.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: Buffer.alloc(0), wire };
  const head = wire.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = wire.subarray(end + 4);
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    let rest = body;
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl < 0) break;
      const size = Number.parseInt(rest.subarray(0, nl).toString('latin1'), 16);
      if (!Number.isFinite(size) || size === 0) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    body = body.subarray(0, Number(headers['content-length']));
  }
  return { status, headers, body, wire };
}

/** A complete answer is in `wire` once its head and its whole body (by length or chunked end) arrived. */
function complete(wire: Buffer): boolean {
  const end = wire.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const res = parseResponse(wire);
  if (res.headers['transfer-encoding']?.toLowerCase() === 'chunked') return wire.subarray(end).includes('\r\n0\r\n\r\n');
  if (res.headers['content-length'] !== undefined) return wire.length - end - 4 >= Number(res.headers['content-length']);
  return false;
}

/**
 * Sends raw bytes to host:port and reads the answer. The socket is not half-closed (Node's HTTP
 * server aborts a request whose client sent FIN), except after `halfCloseAfterMs`, which lets a
 * request the server still waits on (a short body) end instead of running into `timeoutMs`.
 */
export function rawExchange(
  host: string,
  port: number,
  bytes: Buffer,
  opts: { timeoutMs?: number; halfCloseAfterMs?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host, port });
    let done = false;
    let halfClose: NodeJS.Timeout | undefined;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(halfClose);
      socket.destroy();
      resolve(parseResponse(Buffer.concat(chunks)));
    };
    const timer = setTimeout(finish, opts.timeoutMs ?? 5_000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (complete(Buffer.concat(chunks))) finish();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    // A reset after the server answered and closed is normal; keep what arrived.
    socket.on('error', finish);
    socket.on('connect', () => {
      socket.write(bytes);
      if (opts.halfCloseAfterMs !== undefined) halfClose = setTimeout(() => socket.end(), opts.halfCloseAfterMs);
    });
  });
}

export async function rawRequest(
  baseUrl: string,
  req: RawRequest,
  opts?: { timeoutMs?: number; halfCloseAfterMs?: number },
): Promise<RawResponse> {
  const u = new URL(baseUrl);
  return rawExchange(u.hostname, Number(u.port), requestBytes(req, u.host), opts);
}

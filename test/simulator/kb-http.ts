/** Plain HTTP calls to the knowledge-base fakes (fetch + multipart), for test/simulator/kb-*.test.ts. */

export interface KbResponse<T = any> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
  bytes: Buffer;
}

export interface CallOptions {
  /** Sent as `Authorization: Bearer <key>` unless `authorization` is given. */
  key?: string;
  /** The whole Authorization header ('' sends none). */
  authorization?: string;
  json?: unknown;
  /** A raw body with its content type. */
  raw?: { body: string | Buffer; contentType: string };
  form?: FormData;
  signal?: AbortSignal;
}

export async function call<T = any>(base: string, method: string, path: string, opts: CallOptions = {}): Promise<KbResponse<T>> {
  const headers: Record<string, string> = {};
  const auth = opts.authorization ?? (opts.key !== undefined ? `Bearer ${opts.key}` : '');
  if (auth) headers.authorization = auth;
  let body: string | Buffer | FormData | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.raw) {
    headers['content-type'] = opts.raw.contentType;
    body = opts.raw.body;
  } else if (opts.form) {
    body = opts.form;
  }
  const res = await fetch(base + path, { method, headers, body, signal: opts.signal });
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed as T, bytes };
}

/** A multipart form with files under `field` (default `file`) and string fields. */
export function filesForm(files: Array<[name: string, content: string | Buffer]>, fields: Record<string, string> = {}, field = 'file'): FormData {
  const form = new FormData();
  for (const [name, content] of files) form.append(field, new Blob([typeof content === 'string' ? Buffer.from(content) : content]), name);
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return form;
}

/** The error code of a failed fetch (ECONNREFUSED, ECONNRESET, UND_ERR_SOCKET, …). */
export async function networkError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (e) {
    const err = e as { cause?: { code?: string; name?: string }; name?: string };
    return err.cause?.code ?? err.cause?.name ?? err.name ?? 'unknown';
  }
}

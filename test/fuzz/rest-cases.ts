import fc from 'fast-check';
import type { LiveRoute } from './rest-routes.js';
import { hostileStrings, valueFor, type JsonSchema } from './schema-values.js';

/**
 * Generators for requests to the REST routes. A spec is the finished request (nothing depends on
 * the clock), plus what the oracle needs: which secrets were planted where, whether the bearer
 * token is the right one, whether the request line is malformed HTTP.
 */

export interface RestSpec {
  kind: string;
  /** `METHOD url` of the route the request was built from. */
  route: string;
  method: string;
  target: string;
  headers: Array<[string, string]>;
  body?: string;
  /** Secrets put into the path or query (may be named back, e.g. in a 404) and body (may be stored and returned by a 2xx). */
  plantedInUrl: string[];
  plantedInBody: string[];
  authValid: boolean;
  /** The request as built still hits its route (no path mangling, every parameter present). */
  routeMatched: boolean;
  /** Bytes in the request target that Node's HTTP parser may refuse before Fastify sees them. */
  httpMalformed: boolean;
}

export interface RestContext {
  apiToken: string;
  secrets: string[];
  /** Realistic values per path parameter name (existing tenants, modules, run ids...). */
  known: Record<string, string[]>;
  /** Module config schemas, for near-valid PUT connector bodies. */
  moduleConfigs: Record<string, JsonSchema>;
}

/** `BREW` is no HTTP method at all: Node's parser refuses it with its own 400, before Fastify. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND', 'TRACE', 'BREW'];
const BEARER = /^bearer\s+(\S+)\s*$/i;

/** What the server's auth rule says about this Authorization value (Node trims surrounding whitespace). */
export function authorizes(value: string | undefined, token: string): boolean {
  return BEARER.exec((value ?? '').trim())?.[1] === token;
}

export function authHeaders(ctx: RestContext, mode: 'any' | 'invalid'): fc.Arbitrary<Array<[string, string]>> {
  const t = ctx.apiToken;
  const wrong = fc.oneof(
    fc.constant<Array<[string, string]>>([]),
    fc.string({ maxLength: 40 }).map((s): Array<[string, string]> => [['authorization', `Bearer ${s}`]]),
    fc.constantFrom(...ctx.secrets.filter((s) => s !== t)).map((s): Array<[string, string]> => [['authorization', `Bearer ${s}`]]),
    fc
      .constantFrom(
        `Bearer ${t}x`,
        `Bearer ${t.slice(0, -1)}`,
        `Bearer ${t.toUpperCase()}`,
        `Basic ${Buffer.from(`api:${t}`).toString('base64')}`,
        t,
        `Bearer ${t} extra`,
        `Bearer`,
        `Bearer ${'x'.repeat(9000)}`,
        `Token ${t}`,
      )
      .map((v): Array<[string, string]> => [['authorization', v]]),
  );
  if (mode === 'invalid') return wrong;
  const right = fc
    // The scheme is case-insensitive and any whitespace separates it (\s: a no-break space too).
    .constantFrom(`Bearer ${t}`, `bearer ${t}`, `BEARER ${t}`, `Bearer   ${t}`, `Bearer ${t}  `, `Bearer\t${t}`, `Bearer\u00a0${t}`)
    .map((v): Array<[string, string]> => [['authorization', v]]);
  return fc.oneof({ weight: 7, arbitrary: right }, { weight: 3, arbitrary: wrong });
}

const contentTypes = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset=utf-16le',
      'APPLICATION/JSON',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=b',
      'application/octet-stream',
      'application/merge-patch+json',
      'json',
      '',
      '*/*',
    ),
  },
);

/** Bodies: near-valid for the route's schema, any JSON, not JSON at all, odd JSON text. */
function bodies(schema: JsonSchema | undefined, ctx: RestContext, plant: boolean): fc.Arbitrary<string | undefined> {
  const plantList = plant ? ctx.secrets : [];
  const near = schema ? valueFor(schema, { wrongness: 0.2, plant: plantList }).map((v) => JSON.stringify(v)) : fc.constant(undefined);
  return fc.oneof(
    { weight: 6, arbitrary: near },
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
    {
      weight: 2,
      arbitrary: fc.oneof(
        fc.constantFrom('', '{', '{"enabled":true,', 'null', '[]', '"x"', '{"a":1}{"b":2}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', '\u0000', '{"enabled":true,"enabled":"no"}'),
        fc.integer({ min: 1_000, max: 20_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
        fc.string({ unit: 'binary', maxLength: 200 }),
      ),
    },
    { weight: 1, arbitrary: hostileStrings.map((s) => JSON.stringify({ enabled: true, config: { approvalCodes: [s] }, module: s, appId: s, appSecret: s })) },
  );
}

/** A path segment as sent; `reshapes` when it adds or ends segments (a raw `/`, `?` or `#`). */
type Encoded = { text: string; malformed: boolean; value: string; reshapes?: boolean };

function decodes(path: string): boolean {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
}

/** Percent-encodes UTF-8 bytes like encodeURIComponent, without throwing on unpaired surrogates (they become U+FFFD). */
export function pct(value: string): string {
  let out = '';
  for (const b of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.!~*()]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A parameter value as it goes into the path: percent-encoded, or its UTF-8 bytes raw. */
function encodeSegment(value: string, raw: boolean): Encoded {
  if (!raw) return { text: pct(value), malformed: false, value };
  const bytes = Buffer.from(value, 'utf8').toString('latin1');
  // Node's parser refuses control characters, spaces and non-ASCII bytes in the request target.
  return { text: bytes, malformed: /[\u0000-\u0020\u007f-\u00ff]/.test(bytes), value, reshapes: /[/?#]/.test(bytes) };
}

function paramValues(name: string, schema: JsonSchema, ctx: RestContext): fc.Arbitrary<string> {
  const known = ctx.known[name] ?? [];
  return fc.oneof(
    { weight: 6, arbitrary: known.length > 0 ? fc.constantFrom(...known) : fc.string({ minLength: 1, maxLength: 12 }) },
    { weight: 2, arbitrary: valueFor(schema, { wrongness: 0, plant: [] }).map((v) => String(v)) },
    {
      weight: 2,
      arbitrary: fc.oneof(
        hostileStrings,
        fc.constantFrom('..', '.', '/', 'a/b', '%2F', '%', '%zz', '?', '#', ';x', 'a b', '😀', '\u0000', '1'.repeat(19), '-1', '0'),
        fc.integer({ min: 120, max: 600 }).map((n) => 'p'.repeat(n)),
        ...(known.length > 0 ? [fc.constantFrom(...known).map((k) => k.toUpperCase())] : []),
      ),
    },
    { weight: 1, arbitrary: fc.constantFrom(...ctx.secrets) },
  );
}

type PathMangle = 'none' | 'trailing-slash' | 'double-slash' | 'upper' | 'dot-segment' | 'dotdot' | 'encoded-slash' | 'bad-percent' | 'extra-segment';
const mangles = fc.oneof(
  { weight: 12, arbitrary: fc.constant<PathMangle>('none') },
  {
    weight: 4,
    arbitrary: fc.constantFrom<PathMangle>('trailing-slash', 'double-slash', 'upper', 'dot-segment', 'dotdot', 'encoded-slash', 'bad-percent', 'extra-segment'),
  },
);

function mangle(path: string, m: PathMangle, at: number): string {
  const slashes = [...path.matchAll(/\//g)].map((x) => x.index ?? 0);
  const i = slashes[at % Math.max(1, slashes.length)] ?? 0;
  switch (m) {
    case 'none':
      return path;
    case 'trailing-slash':
      return `${path}/`;
    case 'double-slash':
      return `${path.slice(0, i)}/${path.slice(i)}`;
    case 'upper':
      return path.toUpperCase();
    case 'dot-segment':
      return `${path.slice(0, i)}/.${path.slice(i)}`;
    case 'dotdot':
      return `${path.slice(0, i)}/x/..${path.slice(i)}`;
    case 'encoded-slash':
      return i === 0 ? path : `${path.slice(0, i)}%2F${path.slice(i + 1)}`;
    case 'bad-percent':
      return `${path}%`;
    case 'extra-segment':
      return `${path}/extra`;
  }
}

function queryString(route: LiveRoute, ctx: RestContext, plant: boolean): fc.Arbitrary<{ text: string; planted: string[] }> {
  const known = Object.entries(route.query).map(([k, s]) =>
    fc.tuple(fc.constant(k), fc.boolean(), valueFor(s, { wrongness: 0.3, plant: [] }).map((v) => (typeof v === 'string' ? v : JSON.stringify(v)))),
  );
  const extra = fc.array(
    fc.tuple(
      fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor', 'limit', 'cursor', 'a[b]', 'status')),
      fc.oneof(fc.string({ maxLength: 20 }), hostileStrings, ...(plant ? [fc.constantFrom(...ctx.secrets)] : [])),
    ),
    { maxLength: 3 },
  );
  return fc
    .tuple(fc.tuple(...known), extra, fc.oneof({ weight: 9, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('&&', '%zz', '=x', '&limit', 'limit=1&limit=2', '%00=1') }))
    .map(([fields, more, junk]) => {
      const pairs = [...fields.filter(([, keep]) => keep).map(([k, , v]) => [k, v] as [string, string]), ...more];
      const planted = pairs.map(([, v]) => v).filter((v) => ctx.secrets.includes(v));
      const text = [...pairs.map(([k, v]) => `${pct(k)}=${pct(v)}`), junk].filter(Boolean).join('&');
      return { text: text ? `?${text}` : '', planted };
    });
}

/** A request to one route: near its shape, with odd paths, queries, headers, bodies and methods. */
export function requestsFor(route: LiveRoute, ctx: RestContext, opts: { auth: 'any' | 'invalid'; plantInBody: boolean }): fc.Arbitrary<RestSpec> {
  const segments = route.url.split('/').map((seg) => {
    if (seg.startsWith(':')) {
      const name = seg.slice(1);
      return fc.tuple(paramValues(name, route.params[name] ?? { type: 'string' }, ctx), fc.nat(99)).map(([v, r]) => encodeSegment(v, r < 8));
    }
    if (seg === '*') return fc.oneof(fc.constant(''), fc.webSegment(), hostileStrings).map((v) => encodeSegment(v, false));
    return fc.constant<Encoded>({ text: seg, malformed: false, value: '' });
  });
  const isApi = route.url.startsWith('/api/');
  const bodySchema = route.body ?? (route.url.endsWith('/connectors/:module') ? { type: 'object' } : undefined);
  return fc
    .record({
      segs: fc.tuple(...segments),
      mangle: mangles,
      at: fc.nat(),
      method: fc.oneof({ weight: 8, arbitrary: fc.constant(route.method) }, { weight: 2, arbitrary: fc.constantFrom(...METHODS) }),
      query: queryString(route, ctx, isApi),
      auth: authHeaders(ctx, opts.auth),
      contentType: fc.option(contentTypes, { nil: undefined, freq: 8 }),
      extra: fc.array(
        fc.oneof(
          fc.tuple(fc.constant('x-forwarded-for'), fc.ipV4()),
          fc.tuple(fc.constant('accept'), fc.constantFrom('*/*', 'text/html', 'application/xml', '', 'application/json;q=0')),
          fc.tuple(fc.constant('content-encoding'), fc.constantFrom('gzip', 'br', 'identity')),
          fc.tuple(fc.constant('x-request-id'), fc.string({ maxLength: 30 })),
          fc.tuple(fc.constant('x-api-token'), fc.constantFrom(...ctx.secrets)),
        ),
        { maxLength: 2 },
      ),
      body: bodies(bodySchema, ctx, opts.plantInBody),
    })
    .map((r) => {
      const path = r.segs.map((s) => s.text).join('/');
      const target = `${mangle(path, r.mangle, r.at)}${r.query.text}`;
      const authValue = r.auth.find(([n]) => n === 'authorization')?.[1];
      const hasBody = r.body !== undefined && r.method !== 'GET' && r.method !== 'HEAD';
      const headers: Array<[string, string]> = [...r.auth, ...r.extra];
      if (hasBody && r.contentType !== undefined) headers.push(['content-type', r.contentType]);
      const paramValuesUsed = r.segs.filter((s) => s.value !== '');
      const plantedInUrl = [...paramValuesUsed.map((s) => s.value).filter((v) => ctx.secrets.includes(v)), ...r.query.planted];
      const plantedInBody = hasBody ? ctx.secrets.filter((s) => (r.body as string).includes(s)) : [];
      return {
        kind: `${r.mangle === 'none' ? 'path' : r.mangle}${r.method === route.method ? '' : '-method'}`,
        route: `${route.method} ${route.url}`,
        method: r.method,
        target,
        headers,
        body: hasBody ? r.body : undefined,
        plantedInUrl,
        plantedInBody,
        authValid: authorizes(authValue, ctx.apiToken),
        routeMatched:
          r.mangle === 'none' &&
          decodes(path) &&
          r.method === route.method &&
          r.segs.every((s) => !s.malformed && !s.reshapes) &&
          paramValuesUsed.every((s) => s.text.length > 0 && s.text.length <= 256 && !s.text.includes('%2F') && s.text !== '.' && s.text !== '..'),
        httpMalformed: r.segs.some((s) => s.malformed) || r.method === 'BREW',
      } satisfies RestSpec;
    });
}

const json = (v: unknown) => JSON.stringify(v);

/**
 * Authorized, near-valid writes: PUT connectors (config from the module's own schema), POST syncs,
 * POST apps, POST cancel. These reach the services; 2xx answers are checked against the database.
 */
export function authorizedWrites(ctx: RestContext & { simUrl: string; customApp: { appId: string; appSecret: string } }): fc.Arbitrary<RestSpec> {
  const tenants = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...(ctx.known.tenantKey ?? ['t'])) }, { weight: 1, arbitrary: fc.constantFrom('tenant-unknown', 'T-ACTIVE') });
  const modules = Object.keys(ctx.moduleConfigs);
  const auth: Array<[string, string]> = [['authorization', `Bearer ${ctx.apiToken}`], ['content-type', 'application/json']];
  const spec = (route: string, method: string, target: string, body: unknown): RestSpec => ({
    kind: route.split(' ')[1]?.split('/').filter((x) => x && !x.startsWith(':')).slice(-1)[0] ?? route,
    route,
    method,
    target,
    headers: auth,
    body: body === undefined ? undefined : json(body),
    plantedInUrl: [],
    plantedInBody: ctx.secrets.filter((s) => body !== undefined && json(body).includes(s)),
    authValid: true,
    routeMatched: true,
    httpMalformed: false,
  });
  const connector = fc
    .tuple(tenants, fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...modules) }, { weight: 1, arbitrary: fc.constantFrom('Contact', 'hr', '') }))
    .chain(([tenant, module]) =>
      fc
        .record(
          {
            enabled: fc.oneof({ weight: 9, arbitrary: fc.boolean() }, { weight: 1, arbitrary: fc.constantFrom('true', 1, null) }),
            intervalMinutes: valueFor({ type: 'integer', minimum: 5, maximum: 10_080 }, { wrongness: 0.2, plant: [] }),
            // No secrets here: a config is stored and shown back, so a planted value would come back legitimately later.
            config: valueFor(ctx.moduleConfigs[module] ?? { type: 'object' }, { wrongness: 0.15, plant: [] }),
          },
          { requiredKeys: [] },
        )
        .map((body) =>
          spec(
            'PUT /api/v1/tenants/:tenantKey/connectors/:module',
            'PUT',
            `/api/v1/tenants/${pct(tenant)}/connectors/${pct(module)}`,
            body,
          ),
        ),
    );
  const sync = fc
    .tuple(
      tenants,
      fc.record(
        {
          module: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...modules) }, { weight: 1, arbitrary: hostileStrings }),
          mode: fc.oneof({ weight: 9, arbitrary: fc.constantFrom('incremental', 'full') }, { weight: 1, arbitrary: fc.constantFrom('FULL', '', 'partial', 1) }),
        },
        { requiredKeys: [] },
      ),
    )
    .map(([tenant, body]) => spec('POST /api/v1/tenants/:tenantKey/syncs', 'POST', `/api/v1/tenants/${pct(tenant)}/syncs`, body));
  const storeSecret = ctx.secrets.filter((s) => s !== ctx.customApp.appSecret);
  const apps = fc
    .record(
      {
        appId: fc.oneof(
          { weight: 4, arbitrary: fc.constant(ctx.customApp.appId) },
          { weight: 2, arbitrary: fc.stringMatching(/^cli_[a-z0-9]{4,16}$/) },
          { weight: 1, arbitrary: fc.constantFrom(...(ctx.known.appId ?? [])) },
          { weight: 1, arbitrary: hostileStrings },
        ),
        appSecret: fc.oneof(
          { weight: 4, arbitrary: fc.constant(ctx.customApp.appSecret) },
          { weight: 2, arbitrary: fc.constantFrom(...storeSecret) },
          { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 40 }) },
          { weight: 1, arbitrary: hostileStrings },
        ),
        // Never feishu/lark: those would call the real Lark over the internet.
        domain: fc.oneof(
          { weight: 4, arbitrary: fc.constant(ctx.simUrl) },
          { weight: 1, arbitrary: fc.constantFrom('ftp://x', 'open.feishu.cn', 'javascript:alert(1)', 'http//x', '', 'FEISHU ', '__proto__', 'constructor', 'toString') },
          { weight: 1, arbitrary: hostileStrings },
        ),
      },
      { requiredKeys: [] },
    )
    .map((body) => spec('POST /api/v1/apps', 'POST', '/api/v1/apps', body));
  const cancel = fc
    .oneof(fc.constantFrom(...(ctx.known.id ?? ['1'])), fc.constantFrom('0', '999999999999999999', '1'))
    .map((id) => spec('POST /api/v1/syncs/:id/cancel', 'POST', `/api/v1/syncs/${id}/cancel`, undefined));
  return fc.oneof({ weight: 4, arbitrary: connector }, { weight: 3, arbitrary: sync }, { weight: 2, arbitrary: apps }, { weight: 1, arbitrary: cancel });
}

/** A fixed request (a counterexample once found, kept so it runs every time). */
export function pinnedRequest(ctx: RestContext, route: string, target: string, body?: unknown): RestSpec {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return {
    kind: 'pinned',
    route,
    method: route.split(' ')[0] ?? 'GET',
    target,
    headers: [['authorization', `Bearer ${ctx.apiToken}`], ...(text === undefined ? [] : [['content-type', 'application/json'] as [string, string]])],
    body: text,
    plantedInUrl: [],
    plantedInBody: [],
    authValid: true,
    routeMatched: true,
    httpMalformed: false,
  };
}

import { pino, type DestinationStream, type Logger } from 'pino';

/** Field names that could ever hold a secret. */
const SECRET_KEYS = [
  'appSecret',
  'app_secret',
  'token',
  'app_ticket',
  'tenant_access_token',
  'app_access_token',
  'encryptKey',
  'encryptionKey',
  'verificationToken',
  'apiToken',
  'apiKey',
  'api_key',
  'metricsToken',
  'password',
  'authorization',
  'access_token',
  'refresh_token',
  'accessToken',
  'refreshToken',
  'code_verifier',
  'verifier',
  'cookie',
];

/**
 * Paths that could ever hold a secret are censored, as a second line of defence: the code
 * itself never logs tokens, tickets, secrets or payloads. Each name is censored at the top level
 * (`log.info({ appSecret })`) and one level down (`log.info({ app: { appSecret } })`): pino's `*`
 * matches exactly one level, never zero.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-lark-signature"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
];

/**
 * Request lines as logged: a sign-in's callback URL carries Lark's one-time code and the state in
 * its query string, so under /auth/ the query is left out (elsewhere it is kept: cursors and
 * filters help debugging and hold nothing secret).
 */
export function serializeRequest(req: { method?: string; url?: string; host?: string; hostname?: string; ip?: string }) {
  const url = typeof req.url === 'string' && req.url.startsWith('/auth/') ? req.url.replace(/\?.*$/, '') : req.url;
  return { method: req.method, url, host: req.host ?? req.hostname, remoteAddress: req.ip };
}

export const LOG_SERIALIZERS = { req: serializeRequest };

/** Logs to stdout unless a destination is given (the event benchmark discards them). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, serializers: LOG_SERIALIZERS }, destination);
}

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
  'apiToken',
  'metricsToken',
  'password',
  'authorization',
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
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
];

/** Logs to stdout unless a destination is given (the event benchmark discards them). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
}

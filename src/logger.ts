import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Paths that could ever hold a secret are censored, as a second line of defence: the code
 * itself never logs tokens, tickets, secrets or payloads.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-lark-signature"]',
  '*.appSecret',
  '*.app_secret',
  '*.token',
  '*.app_ticket',
  '*.tenant_access_token',
  '*.app_access_token',
  '*.encryptKey',
];

/** Logs to stdout unless a destination is given (the event benchmark discards them). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
}

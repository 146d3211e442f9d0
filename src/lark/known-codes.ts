import { RATE_LIMIT_CODES, TICKET_INVALID_CODES, TOKEN_INVALID_CODES } from './errors.js';

/**
 * Lark codes that get their own `code` label on larksync_upstream_calls_total: success, the codes
 * larksync acts on, and the general and module codes listed in ../shared/lark. Any other code is
 * counted as `other`, so a custom app's domain (which answers whatever it likes) cannot create
 * unbounded metric series.
 */
export const KNOWN_LARK_CODES: ReadonlySet<number> = new Set([
  0,
  ...TOKEN_INVALID_CODES,
  ...TICKET_INVALID_CODES,
  ...RATE_LIMIT_CODES,
  // auth, app and permission
  10001, 10003, 10005, 10013, 10014, 10015, 10016, 10100, 10101, 10204, 20001, 20002, 20003, 20004, 20005, 20007, 20008, 20009,
  20010, 20021, 20022, 20023, 20024, 20026, 20027, 20036, 20037, 20048, 20049, 20050, 20063, 20064, 20065, 20066, 20067, 20068,
  20069, 20070, 20071, 20072, 20073, 20074, 40001, 40003, 40004, 40011, 40012, 40014, 40040, 40041, 40054, 99991201, 99991301,
  99991401, 99991543, 99991662, 99991669, 99991670, 99991671, 99991672, 99991673, 99991674, 99991675, 99991676, 99991677,
  99991679, 99992351, 99992361, 99992364, 99992376,
  // transient and server side
  1500, 1503, 5000, 96001, 1061001, 1225000, 1395001, 131001, 131006, 131007, 1254002, 1254036, 1254291, 1254607, 1255040,
  // module codes (approval, bitable, contact, attendance, wiki)
  1050006, 1064001, 11207, 11209, 11210, 11232, 11233, 11247, 1220001, 1220005, 1254000, 1254011, 1254302, 1390001, 1390009,
  230003, 232019,
]);

/** The metric label of a Lark code. */
export function codeLabel(code: number): string {
  return KNOWN_LARK_CODES.has(code) ? String(code) : 'other';
}

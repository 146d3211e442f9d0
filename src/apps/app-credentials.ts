import { larkBaseUrl } from '../config/lark-domain.js';
import type { Sealer } from '../crypto/sealer.js';
import type { AppKind, AppRow } from './apps.table.js';

/** An app as the token code needs it; the secret is opened only when a mint needs it. */
export interface AppCredentials {
  appId: string;
  kind: AppKind;
  domain: string;
  baseUrl: string;
  secret(): string;
}

export const appSecretContext = (appId: string) => `apps.secret:${appId}`;
export const verificationTokenContext = (appId: string) => `apps.verification_token:${appId}`;
export const encryptKeyContext = (appId: string) => `apps.encrypt_key:${appId}`;

export function toCredentials(row: AppRow, sealer: Sealer): AppCredentials {
  return {
    appId: row.app_id,
    kind: row.kind,
    domain: row.domain,
    baseUrl: larkBaseUrl(row.domain),
    secret: () => sealer.open(row.secret_sealed, appSecretContext(row.app_id)),
  };
}

import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import type { Sealer } from '../crypto/sealer.js';
import { newVerifier } from './pkce.js';

/** A sign-in must come back within this long (Lark's code itself lives 5 minutes). */
export const STATE_TTL_SECONDS = 600;

/** What a sign-in was started for: the admin page, or an operator's own front end (a grant only). */
export type SignInPurpose = 'admin' | 'grant';

export interface StartedSignIn {
  /** sent to Lark as `state`: the row's id, sealed (authenticated), so it cannot be forged or altered */
  state: string;
  verifier: string;
}

export interface ConsumedSignIn {
  appId: string;
  purpose: SignInPurpose;
  verifier: string;
  redirectUri: string;
  returnTo: string;
  tenantHint: string | null;
}

const CONTEXT = 'oauth.state';

/**
 * The server half of a sign-in in flight (the OAuth `state`): one row per sign-in, single use,
 * ten minutes. The state sent out is the row's random id sealed with larksync's key, so a state
 * that was not issued here, or was altered, does not even reach the database.
 */
export class OAuthStates {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
  ) {}

  async start(input: { appId: string; purpose: SignInPurpose; redirectUri: string; returnTo: string; tenantHint?: string | null }): Promise<StartedSignIn> {
    const id = randomBytes(24).toString('base64url');
    const verifier = newVerifier();
    await this.db
      .insertInto('oauth_states')
      .values({
        id,
        app_id: input.appId,
        purpose: input.purpose,
        verifier_sealed: this.sealer.seal(verifier, `${CONTEXT}.verifier:${id}`),
        redirect_uri: input.redirectUri,
        return_to: input.returnTo,
        tenant_hint: input.tenantHint ?? null,
        expires_at: sql<Date>`now() + make_interval(secs => ${STATE_TTL_SECONDS})`,
      })
      .execute();
    return { state: this.sealer.seal(id, CONTEXT).toString('base64url'), verifier };
  }

  /**
   * Takes a state back once: undefined when it was not issued here, was altered, has expired, or
   * was used already. Expired and used rows are swept by the same call.
   */
  async consume(state: string): Promise<ConsumedSignIn | undefined> {
    let id: string;
    try {
      if (!/^[A-Za-z0-9_-]{20,400}$/.test(state)) return undefined;
      id = this.sealer.open(Buffer.from(state, 'base64url'), CONTEXT);
    } catch {
      return undefined;
    }
    const row = await this.db
      .updateTable('oauth_states')
      .set({ used_at: sql<Date>`now()` })
      .where('id', '=', id)
      .where('used_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .returningAll()
      .executeTakeFirst();
    await this.db.deleteFrom('oauth_states').where('expires_at', '<', sql<Date>`now() - interval '1 day'`).execute();
    if (!row) return undefined;
    return {
      appId: row.app_id,
      purpose: row.purpose as SignInPurpose,
      verifier: this.sealer.open(row.verifier_sealed, `${CONTEXT}.verifier:${id}`),
      redirectUri: row.redirect_uri,
      returnTo: row.return_to,
      tenantHint: row.tenant_hint,
    };
  }
}

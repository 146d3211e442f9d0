import { createHash } from 'node:crypto';
import type { SessionStore } from '@fastify/session';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';

/**
 * A row's key: a hash of the session id, so a copy of the table (a backup, a read replica, the
 * secret scan's dump) holds nothing a browser could present as a cookie.
 */
export const sessionKey = (id: string) => createHash('sha256').update(id, 'utf8').digest('base64url');

/**
 * @fastify/session's store on the web_sessions table: every replica sees every session, and
 * signing out (or an operator deleting the row) ends a session everywhere at once. Expired rows
 * are swept by the store's own writes. Rows are keyed by a hash of the session id (sessionKey).
 */
export function postgresSessionStore(db: Kysely<Database>, ttlMs: number): SessionStore {
  return {
    set(id, session, callback) {
      const expires = (session as { cookie?: { expires?: Date | string | null } }).cookie?.expires;
      const at = expires ? new Date(expires) : new Date(Date.now() + ttlMs);
      const data = JSON.stringify(session);
      db.insertInto('web_sessions')
        .values({ id: sessionKey(id), data, expires_at: at })
        .onConflict((oc) => oc.column('id').doUpdateSet({ data, expires_at: at }))
        .execute()
        .then(() => db.deleteFrom('web_sessions').where('expires_at', '<', sql<Date>`now()`).execute())
        .then(() => callback(), (err: Error) => callback(err));
    },
    get(id, callback) {
      db.selectFrom('web_sessions')
        .select('data')
        .where('id', '=', sessionKey(id))
        .where('expires_at', '>', sql<Date>`now()`)
        .executeTakeFirst()
        .then((row) => callback(null, (row?.data ?? null) as never), (err: Error) => callback(err));
    },
    destroy(id, callback) {
      db.deleteFrom('web_sessions')
        .where('id', '=', sessionKey(id))
        .execute()
        .then(() => callback(), (err: Error) => callback(err));
    },
  };
}

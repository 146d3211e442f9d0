import type { SimApp } from '../lark-simulator.js';
import type { AuthorizeRequest } from './user-auth.js';
import type { SimLarkUser } from './users.js';

/**
 * The accounts host's authorize page, reduced to what a test needs: who the app is, what it asks
 * for, and one form per person that can sign in (Lark's real page is a signed-in account's consent
 * screen; the picker stands in for "whoever is signed in"). Every form posts to CONSENT_PATH.
 */

/** Where the page's forms post (a simulator path, not Lark's). */
export const CONSENT_PATH = '/_sim/oauth/consent';

const escape = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/** The value of a form's `user` field: tenant key and open_id, space separated. */
export const userField = (u: { tenantKey: string; openId: string }) => `${u.tenantKey} ${u.openId}`;

function form(consentId: string, body: string, attrs = ''): string {
  return (
    `<form method="post" action="${CONSENT_PATH}"${attrs}>` +
    `<input type="hidden" name="consent" value="${escape(consentId)}">${body}</form>`
  );
}

const denyForm = (consentId: string) =>
  form(consentId, '<button type="submit" name="decision" value="deny">Deny</button>', ' class="deny"');

function layout(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head><body>${body}</body></html>`;
}

export function consentPage(p: {
  app: SimApp;
  request: AuthorizeRequest;
  consentId: string;
  /** Everyone the picker offers; ignored when `preselected` is set. */
  users: SimLarkUser[];
  preselected: SimLarkUser | undefined;
}): string {
  const appName = p.app.tenantName && p.app.kind === 'custom' ? `${p.app.appId} (${p.app.tenantName})` : p.app.appId;
  const scopes = p.request.scopes.length
    ? `<ul class="scopes">${p.request.scopes.map((s) => `<li>${escape(s)}</li>`).join('')}</ul>`
    : '<p class="scopes">No extra permissions.</p>';
  const person = (u: SimLarkUser) => `${escape(u.name)} &lt;${escape(u.email)}&gt; (${escape(u.tenantKey)})`;
  const userAttrs = (u: SimLarkUser) => ` class="user" data-open-id="${escape(u.openId)}" data-tenant-key="${escape(u.tenantKey)}"`;
  let choices: string;
  if (p.preselected) {
    const u = p.preselected;
    choices =
      `<p>Signed in as ${person(u)}</p>` +
      form(
        p.consentId,
        `<input type="hidden" name="user" value="${escape(userField(u))}">` +
          '<button type="submit" name="decision" value="allow">Allow</button>' +
          '<button type="submit" name="decision" value="deny">Deny</button>',
        userAttrs(u),
      );
  } else if (p.users.length === 0) {
    choices = '<p class="empty">Nobody can sign in to this app: no tenant that installed it has users.</p>' + denyForm(p.consentId);
  } else {
    choices =
      '<p>Choose who signs in:</p>' +
      p.users
        .map((u) =>
          form(
            p.consentId,
            `<input type="hidden" name="user" value="${escape(userField(u))}">` +
              `<button type="submit" name="decision" value="allow">Allow as ${escape(u.name)}</button> ${person(u)}`,
            userAttrs(u),
          ),
        )
        .join('') +
      denyForm(p.consentId);
  }
  return layout(`Authorize ${appName}`, `<h1>${escape(appName)} asks to access your account</h1>${scopes}${choices}`);
}

/** The user-facing error page (auth.md §5.1: e.g. 20027 for a scope the app has not enabled). */
export function errorPage(code: number, message: string): string {
  return layout(
    `Error ${code}`,
    `<h1>Authorization failed</h1><p class="error" data-code="${code}">Error code: ${code}</p><p class="message">${escape(message)}</p>`,
  );
}

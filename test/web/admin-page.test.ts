import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_APP, openTenant, startStack, type Stack, whenReady } from '../helpers/stack.js';
import { runFinished } from '../helpers/sync-api.js';
import { waitFor } from '../helpers/wait.js';
import { csrfOf, fetchPage, signInAs, textOf } from '../helpers/web-session.js';

const TENANT = 'tenant-admin-page-1';
const OTHER = 'tenant-admin-page-2';
const GONE = 'tenant-admin-page-3';

describe('the tenant admin page (/admin) over HTTP', () => {
  let stack: Stack;
  let admin: { openId: string; tenantKey: string };
  let adminCookie: string;

  beforeAll(async () => {
    // TRUST_PROXY=1: the test stands in for the proxy that says a request came over https.
    stack = await startStack({ data: { enforceRateLimits: false }, start: { rateLimitScale: 50 }, env: { TRUST_PROXY: '1' } });
    await whenReady(stack);
    for (const t of [TENANT, OTHER, GONE]) await openTenant(stack, t);
    admin = stack.sim.addUser(TENANT, { name: 'Ada <Admin>', admin: true });
    adminCookie = (await signInAs(stack, admin)).cookie;
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('shows a sign-in page to a visitor without a session, with the security headers, and keeps ?app= for custom apps', async () => {
    const page = await fetchPage(stack, '/admin');
    expect(page.status).toBe(200);
    expect(page.body).toContain('href="/auth/lark/login?returnTo=%2Fadmin"');
    expect(page.body).not.toContain(TENANT);
    expect(page.setCookie).toBeNull();
    expect(page.headers.get('cache-control')).toBe('no-store');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]{20,}'/);
    expect(page.headers.get('x-frame-options')).toBe('DENY');

    const custom = await fetchPage(stack, '/admin?app=cli_custom0001');
    expect(custom.body).toContain(`href="/auth/lark/login?returnTo=${encodeURIComponent('/admin?app=cli_custom0001').replace(/&/g, '&amp;')}&amp;app=cli_custom0001"`);
    // An app id that is not one is not echoed.
    expect((await fetchPage(stack, '/admin?app=%22%3E%3Cscript%3E')).body).not.toContain('<script>');

    const css = await fetchPage(stack, '/admin/assets/admin.css');
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toContain('text/css');
    expect((await fetchPage(stack, '/admin/assets/admin.css', { headers: { 'if-none-match': css.headers.get('etag')! } })).status).toBe(304);
  });

  it("shows an admin their own tenant: status, modules, users; the page's one script carries the CSP nonce", async () => {
    const page = await fetchPage(stack, '/admin', { cookie: adminCookie });
    expect(page.status).toBe(200);
    const text = textOf(page.body);
    expect(text).toContain(TENANT);
    expect(text).not.toContain(OTHER);
    // Escaped, never markup: the user's name has angle brackets.
    expect(page.body).toContain('Ada &lt;Admin&gt;');
    expect(page.body).not.toContain('Ada <Admin>');
    for (const title of ['Approval', 'Base', 'Attendance', 'Contact', 'Users who authorized larksync']) expect(text).toContain(title);
    expect(text).toContain('admin');
    // The user's own grant is listed, never its tokens.
    expect(text).toContain('offline_access');
    const nonce = /script-src 'nonce-([^']+)'/.exec(page.headers.get('content-security-policy')!)![1];
    const scripts = [...page.body.matchAll(/<script([^>]*)>/g)].map((m) => m[1]);
    expect(scripts).toEqual([` nonce="${nonce}"`]);
    // Every form carries the CSRF token.
    const forms = page.body.match(/<form /g)!.length;
    expect(page.body.match(/name="_csrf" value="[^"]+"/g)!.length).toBe(forms);
    expect(forms).toBeGreaterThanOrEqual(5);
  });

  it('sets the session cookie HttpOnly and SameSite=Lax, and Secure when the request came over https', async () => {
    const user = stack.sim.addUser(TENANT, { name: 'Sam Secure' });
    const plain = await signInAs(stack, user);
    expect(plain.callback.setCookie).toMatch(/HttpOnly/i);
    expect(plain.callback.setCookie).toMatch(/SameSite=Lax/i);
    expect(plain.callback.setCookie).not.toMatch(/Secure/i);
    expect(plain.callback.setCookie).toMatch(/Expires=/i);
    const https = await signInAs(stack, user, { callbackHeaders: { 'x-forwarded-proto': 'https' } });
    expect(https.callback.setCookie).toMatch(/;\s*Secure/i);
  });

  it('refuses a form post without a CSRF token or with a wrong one (403), changing nothing', async () => {
    const form = { enabled: 'on', intervalMinutes: '60', tables: 'https://acme.feishu.cn/base/bascnAbc?table=tblAbc' };
    const missing = await fetchPage(stack, '/admin/connectors/base', { cookie: adminCookie, form });
    expect(missing.status).toBe(403);
    expect(missing.body).toContain('This form has expired');
    const page = await fetchPage(stack, '/admin', { cookie: adminCookie });
    const token = csrfOf(page.body);
    const wrong = await fetchPage(stack, '/admin/connectors/base', { cookie: adminCookie, form: { ...form, _csrf: `${token.slice(0, -2)}xx` } });
    expect(wrong.status).toBe(403);
    // Another session's token is no good here either.
    const other = stack.sim.addUser(TENANT, { name: 'Other Admin', admin: true });
    const otherCookie = (await signInAs(stack, other)).cookie;
    const otherToken = csrfOf((await fetchPage(stack, '/admin', { cookie: otherCookie })).body);
    expect((await fetchPage(stack, '/admin/syncs', { cookie: adminCookie, form: { module: 'base', _csrf: otherToken } })).status).toBe(403);
    expect(await stack.larksync.services.connectors.get(TENANT, 'base', 'store')).toBeUndefined();
  });

  it('shows the validation message the connectors service gives, keeping what was typed, and saves a wiki URL', async () => {
    const token = csrfOf((await fetchPage(stack, '/admin', { cookie: adminCookie })).body);
    const typed = 'https://acme.feishu.cn/wiki/wikcnNode1?table=tblTasks1\nhttps://acme.feishu.cn/docx/doxcnNotABase <b>x</b>';
    const bad = await fetchPage(stack, '/admin/connectors/base', { cookie: adminCookie, form: { _csrf: token, enabled: 'on', intervalMinutes: '30', tables: typed } });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('config.tables.1.url: url must be a Base URL');
    expect(bad.body).toContain('(Base tables, line 2)');
    // What was typed is back in the textarea, escaped.
    expect(bad.body).toContain('https://acme.feishu.cn/wiki/wikcnNode1?table=tblTasks1\nhttps://acme.feishu.cn/docx/doxcnNotABase &lt;b&gt;x&lt;/b&gt;</textarea>');
    expect(bad.body).toContain('value="30"');
    expect(await stack.larksync.services.connectors.get(TENANT, 'base', 'store')).toBeUndefined();

    const interval = await fetchPage(stack, '/admin/connectors/approval', { cookie: adminCookie, form: { _csrf: token, intervalMinutes: '2', approvalCodes: 'A-1' } });
    expect(interval.status).toBe(400);
    expect(interval.body).toContain('intervalMinutes: a whole number of minutes from 5 to 10080');
    const noCodes = await fetchPage(stack, '/admin/connectors/approval', { cookie: adminCookie, form: { _csrf: token, approvalCodes: '  \n ' } });
    expect(noCodes.status).toBe(400);
    expect(noCodes.body).toContain('config.approvalCodes');
    const badType = await fetchPage(stack, '/admin/connectors/contact', { cookie: adminCookie, form: { _csrf: token, userIdType: 'email' } });
    expect(badType.status).toBe(400);
    expect(badType.body).toContain('config.userIdType: expected one of &quot;open_id&quot;, &quot;union_id&quot;, &quot;user_id&quot;');

    const wiki = 'https://acme.feishu.cn/wiki/wikcnNode1?table=tblTasks1&view=vewAll1';
    const ok = await fetchPage(stack, '/admin/connectors/base', {
      cookie: adminCookie,
      form: { _csrf: token, enabled: 'on', intervalMinutes: '30', tables: `${wiki}\r\n\r\nbascnApp2 tblOther2` },
    });
    expect(ok.status).toBe(303);
    expect(ok.location).toBe('/admin?saved=base#base');
    const stored = await stack.larksync.services.connectors.get(TENANT, 'base', 'store');
    expect(stored).toMatchObject({ enabled: true, intervalMinutes: 30, config: { tables: [{ url: wiki }, { appToken: 'bascnApp2', tableId: 'tblOther2' }] } });
    const after = await fetchPage(stack, '/admin?saved=base', { cookie: adminCookie });
    expect(after.body).toContain('Base settings saved.');
    expect(after.body).toContain(`${wiki.replace(/&/g, '&amp;')}\nbascnApp2 tblOther2</textarea>`);

    // Contact and attendance: empty optional lists are left out, choices kept.
    const contact = await fetchPage(stack, '/admin/connectors/contact', {
      cookie: adminCookie,
      form: { _csrf: token, intervalMinutes: '', departmentIds: 'od-1\nod-2', departmentIdType: 'open_department_id', userIdType: 'union_id' },
    });
    expect(contact.status).toBe(303);
    expect(await stack.larksync.services.connectors.get(TENANT, 'contact', 'store')).toMatchObject({
      enabled: false,
      intervalMinutes: 60,
      config: { departmentIds: ['od-1', 'od-2'], userIdType: 'union_id' },
    });
    const attendance = await fetchPage(stack, '/admin/connectors/attendance', {
      cookie: adminCookie,
      form: { _csrf: token, enabled: 'on', employeeIds: '', employeeType: 'employee_no', lookbackDays: '3' },
    });
    expect(attendance.status).toBe(303);
    const att = await stack.larksync.services.connectors.get(TENANT, 'attendance', 'store');
    expect(att?.config).toEqual({ employeeType: 'employee_no', lookbackDays: 3 });
    // The store-app warning shows on the page.
    expect(textOf((await fetchPage(stack, '/admin', { cookie: adminCookie })).body)).toMatch(/custom app/i);
  });

  it("triggers a sync, serves its progress as JSON to its own tenant only, and refuses another tenant's run id", async () => {
    const data = stack.data.bitable(TENANT);
    await stack.larksync.services.connectors.put(
      TENANT,
      'base',
      { enabled: true, config: { tables: [{ url: `https://acme.feishu.cn/wiki/${data.refs.wiki.nodeToken}?table=${data.refs.wiki.tasks}` }] } },
      'store',
    );
    const token = csrfOf((await fetchPage(stack, '/admin', { cookie: adminCookie })).body);
    const started = await fetchPage(stack, '/admin/syncs', { cookie: adminCookie, form: { _csrf: token, module: 'base', mode: 'full' } });
    expect(started.status).toBe(303);
    expect(started.location).toBe('/admin?started=base#base');
    const [run] = await stack.larksync.services.sync.list(TENANT, { limit: 1, module: 'base' });
    expect(run!.mode).toBe('full');
    const json = await fetchPage(stack, `/admin/runs/${run!.id}.json`, { cookie: adminCookie });
    expect(json.status).toBe(200);
    expect(json.headers.get('cache-control')).toBe('no-store');
    const body = JSON.parse(json.body) as { id: string; progress: string; status: string };
    expect(body.id).toBe(run!.id);
    expect(body.progress).toMatch(/^(queued|running|succeeded)/);
    const done = await runFinished(stack, run!.id);
    expect(done.status).toBe('succeeded');
    const finished = JSON.parse((await fetchPage(stack, `/admin/runs/${run!.id}.json`, { cookie: adminCookie })).body) as { active: boolean; progress: string };
    expect(finished.active).toBe(false);
    expect(finished.progress).toContain(`base_records ${data.table(data.refs.wiki.appToken, data.refs.wiki.tasks).count}`);
    const page = textOf((await fetchPage(stack, '/admin', { cookie: adminCookie })).body);
    expect(page).toContain('succeeded');
    expect(page).toContain('base_records');

    // OTHER's admin: its own page only, and TENANT's run is unknown to it.
    const otherAdmin = stack.sim.addUser(OTHER, { name: 'Olga Other', admin: true });
    const otherCookie = (await signInAs(stack, otherAdmin)).cookie;
    const otherJson = await fetchPage(stack, `/admin/runs/${run!.id}.json`, { cookie: otherCookie });
    expect(otherJson.status).toBe(404);
    expect(otherJson.body).not.toContain(TENANT);
    // The tenant never comes from the URL or a form.
    const otherPage = await fetchPage(stack, `/admin?tenant=${TENANT}&tenantKey=${TENANT}`, { cookie: otherCookie });
    expect(textOf(otherPage.body)).toContain(OTHER);
    expect(otherPage.body).not.toContain(TENANT);
    const otherToken = csrfOf(otherPage.body);
    const posted = await fetchPage(stack, '/admin/syncs', { cookie: otherCookie, form: { _csrf: otherToken, module: 'base', tenantKey: TENANT } });
    expect(posted.status).toBe(409);
    expect(posted.body).toContain('Save the Base settings before starting a sync.');
    expect((await stack.larksync.services.sync.list(TENANT, { limit: 10 })).length).toBe(1);
    // Without a session, JSON says 401.
    expect((await fetchPage(stack, `/admin/runs/${run!.id}.json`)).status).toBe(401);
    expect((await fetchPage(stack, '/admin/runs/not-a-number.json', { cookie: adminCookie })).status).toBe(404);
  });

  it("gives a viewer a read-only page, and a viewer's post is a 403", async () => {
    const viewer = stack.sim.addUser(TENANT, { name: 'Vic Viewer' });
    const cookie = (await signInAs(stack, viewer)).cookie;
    const page = await fetchPage(stack, '/admin', { cookie });
    expect(page.status).toBe(200);
    const text = textOf(page.body);
    expect(text).toContain('read-only');
    expect(text).toContain(TENANT);
    expect(page.body).not.toContain('action="/admin/connectors/');
    expect(page.body).not.toContain('action="/admin/syncs');
    // The settings are shown, not editable.
    expect(text).toContain('Base tables');
    const token = csrfOf(page.body);
    const before = await stack.larksync.services.connectors.get(TENANT, 'base', 'store');
    const post = await fetchPage(stack, '/admin/connectors/base', { cookie, form: { _csrf: token, enabled: 'on', tables: 'bascnX tblY' } });
    expect(post.status).toBe(403);
    expect(post.body).toContain('Read-only');
    expect((await fetchPage(stack, '/admin/syncs', { cookie, form: { _csrf: token, module: 'base' } })).status).toBe(403);
    expect(await stack.larksync.services.connectors.get(TENANT, 'base', 'store')).toEqual(before);
    // A viewer may sign out.
    const out = await fetchPage(stack, '/admin/sign-out', { cookie, form: { _csrf: token } });
    expect(out.status).toBe(303);
  });

  it('makes the installer an admin even when Lark says they are no app admin', async () => {
    stack.sim.setTenantAdmins(OTHER, []);
    const installer = stack.sim.addUser(OTHER, { name: 'Ivy Installer', openId: `ou_admin_${OTHER}` });
    const cookie = (await signInAs(stack, installer)).cookie;
    const page = await fetchPage(stack, '/admin', { cookie });
    expect(page.body).toContain('action="/admin/connectors/base"');
    const plain = stack.sim.addUser(OTHER, { name: 'Pat Plain' });
    const viewerPage = await fetchPage(stack, '/admin', { cookie: (await signInAs(stack, plain)).cookie });
    expect(viewerPage.body).not.toContain('action="/admin/connectors/base"');
  });

  it('answers a tampered, unknown or signed-out session cookie, or a session whose tenant is gone, with a 401 page showing nothing', async () => {
    const user = stack.sim.addUser(TENANT, { name: 'Tess Tamper', admin: true });
    const { cookie } = await signInAs(stack, user);
    expect((await fetchPage(stack, '/admin', { cookie })).status).toBe(200);
    const value = cookie.slice('larksync_session='.length);
    const [id, sig] = decodeURIComponent(value).split('.');
    const flip = (s: string) => s.slice(0, -1) + (s.endsWith('A') ? 'B' : 'A');
    const tampered = [
      `larksync_session=${encodeURIComponent(`${id}.${flip(sig!)}`)}`,
      `larksync_session=${encodeURIComponent(`${flip(id!)}.${sig}`)}`,
      'larksync_session=garbage',
    ];
    for (const c of tampered) {
      const page = await fetchPage(stack, '/admin', { cookie: c });
      expect(page.status, c).toBe(401);
      expect(page.body).not.toContain(TENANT);
      expect(page.body).toContain('Sign in with Lark');
      expect((await fetchPage(stack, '/admin/connectors/base', { cookie: c, form: { _csrf: 'x', tables: 'a b' } })).status).toBe(401);
    }
    // Signed out: the old cookie names a session that no longer exists.
    const token = csrfOf((await fetchPage(stack, '/admin', { cookie })).body);
    const out = await fetchPage(stack, '/admin/sign-out', { cookie, form: { _csrf: token } });
    expect(out.status).toBe(303);
    expect(out.location).toBe('/admin?signed_out=1');
    expect(out.setCookie).toMatch(/larksync_session=;/);
    const stale = await fetchPage(stack, '/admin', { cookie });
    expect(stale.status).toBe(401);
    expect(stale.body).not.toContain(TENANT);
    expect((await fetchPage(stack, '/admin?signed_out=1')).body).toContain('You are signed out.');

    // A company that uninstalled the app: its sessions end.
    const goneAdmin = stack.sim.addUser(GONE, { name: 'Gus Gone', admin: true });
    const goneCookie = (await signInAs(stack, goneAdmin)).cookie;
    expect((await fetchPage(stack, '/admin', { cookie: goneCookie })).status).toBe(200);
    await stack.sim.appUninstalled(STORE_APP.appId, GONE);
    await waitFor(async () => (await stack.larksync.services.tenants.get(GONE))?.status === 'uninstalled', 10_000, 'uninstalled');
    const gone = await fetchPage(stack, '/admin', { cookie: goneCookie });
    expect(gone.status).toBe(401);
    expect(gone.body).not.toContain(GONE);
  });

  it('ends a session 12 hours after its sign-in, however active', async () => {
    const user = stack.sim.addUser(TENANT, { name: 'Olly Old', admin: true });
    const { cookie } = await signInAs(stack, user);
    const rows = await stack.db.db.selectFrom('web_sessions').select(['id', 'data']).execute();
    const mine = rows.filter((r) => (r.data as { user?: { openId?: string } }).user?.openId === user.openId);
    expect(mine).toHaveLength(1);
    const data = mine[0]!.data as { user: { signedInAt: string } };
    data.user.signedInAt = new Date(Date.now() - 12 * 3_600_000 - 1000).toISOString();
    await stack.db.db.updateTable('web_sessions').set({ data: JSON.stringify(data) }).where('id', '=', mine[0]!.id).execute();
    expect((await fetchPage(stack, '/admin', { cookie })).status).toBe(401);
  });
});

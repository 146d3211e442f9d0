import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_APP, openTenant, startStack, type Stack, whenReady } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The admin page in a real browser: Debian's Chromium driven by puppeteer-core (which downloads
 * no browser). SCREENSHOTS=1 also writes the README's screenshots to docs/screenshots/.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) {
  console.warn(`admin-browser.test.ts skipped: no Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`);
}
const SCREENSHOTS = process.env.SCREENSHOTS === '1';
const SHOTS_DIR = path.resolve('docs/screenshots');

const TENANT = 'tenant-browser-acme';
const OTHER = 'tenant-browser-globex';
const TASKS = 1_800;

describe.skipIf(!HAVE_CHROMIUM)('the admin page in Chromium', () => {
  let stack: Stack;
  let browser: Browser;
  let profile: string;
  let adminA: { openId: string; tenantKey: string };
  let adminB: { openId: string; tenantKey: string };

  beforeAll(async () => {
    stack = await startStack({ data: { enforceRateLimits: false }, start: { rateLimitScale: 50 } });
    await whenReady(stack);
    await openTenant(stack, TENANT);
    await openTenant(stack, OTHER);
    await stack.larksync.services.db.updateTable('tenants').set({ name: 'Acme Robotics' }).where('tenant_key', '=', TENANT).execute();
    await stack.larksync.services.db.updateTable('tenants').set({ name: 'Globex' }).where('tenant_key', '=', OTHER).execute();
    adminA = stack.sim.addUser(TENANT, { name: 'Ada Lovelace', admin: true });
    adminB = stack.sim.addUser(OTHER, { name: 'Grace Hopper', admin: true });
    stack.data.bitable(TENANT, { projects: 40, ledger: 10, tasks: TASKS, events: 0 });
    profile = mkdtempSync(path.join(tmpdir(), 'larksync-chromium-'));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: profile,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    await stack?.stop();
  });

  /** From larksync's sign-in page through the simulator's authorize page, back to /admin. */
  async function signIn(page: Page, user: { openId: string; tenantKey: string }): Promise<void> {
    await page.goto(`${stack.larksync.url}/admin`);
    expect(await page.$eval('h1', (h) => h.textContent)).toContain('larksync for your company');
    stack.sim.oauth.preselect(STORE_APP.appId, user);
    await Promise.all([page.waitForNavigation(), page.click('a.button.primary')]);
    // Lark's authorize page (the simulator's), the user preselected: one button.
    expect(page.url().startsWith(stack.sim.url)).toBe(true);
    await Promise.all([page.waitForNavigation(), page.click('button[value="allow"]')]);
    expect(new URL(page.url()).pathname).toBe('/admin');
  }

  const text = (page: Page, selector: string) => page.$eval(selector, (e) => (e as unknown as { innerText: string }).innerText);

  it('signs in through the authorize page, configures Base with a wiki URL, triggers a sync and watches it finish; another tenant sees none of it', async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      // A CSP refusal would show here: the page's only script must run. Failed loads are judged below.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico') errors.push(`${r.status()} ${r.url()}`);
    });

    if (SCREENSHOTS) {
      mkdirSync(SHOTS_DIR, { recursive: true });
      await page.goto(`${stack.larksync.url}/admin`);
      await page.setViewport({ width: 390, height: 520, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
      await page.screenshot({ path: path.join(SHOTS_DIR, 'admin-sign-in-phone.png') });
      await page.setViewport({ width: 1280, height: 900 });
    }

    await signIn(page, adminA);
    expect(await text(page, '#tenant')).toContain(TENANT);
    expect(await text(page, '.who')).toContain('Ada Lovelace');
    expect(await text(page, '#base .badge')).toBe('not configured');

    // Base, with a wiki URL as copied from the browser.
    const bitable = stack.data.bitable(TENANT);
    const view = bitable.table(bitable.refs.wiki.appToken, bitable.refs.wiki.tasks).views[0]!.view_id;
    const wikiUrl = `https://acme.feishu.cn/wiki/${bitable.refs.wiki.nodeToken}?table=${bitable.refs.wiki.tasks}&view=${view}`;
    await page.click('#base details.settings summary');
    await page.$eval('#base textarea[name="tables"]', (t) => ((t as unknown as { value: string }).value = ''));
    await page.type('#base textarea[name="tables"]', wikiUrl);
    await page.$eval('#base input[name="intervalMinutes"]', (i) => ((i as unknown as { value: string }).value = ''));
    await page.type('#base input[name="intervalMinutes"]', '30');
    expect(await page.$eval('#base input[name="enabled"]', (c) => (c as unknown as { checked: boolean }).checked)).toBe(true);
    await Promise.all([page.waitForNavigation(), page.click('#base form.settings button[type="submit"]')]);
    expect(await text(page, '.notice')).toBe('Base settings saved.');
    expect(await text(page, '#base .badge')).toBe('enabled');
    // The notice is not repeated by a reload: the script took it out of the address.
    expect(new URL(page.url()).search).toBe('');
    expect(await stack.larksync.services.connectors.get(TENANT, 'base', 'store')).toMatchObject({
      enabled: true,
      intervalMinutes: 30,
      config: { tables: [{ url: wikiUrl }] },
    });

    // Slow pages, so the live line has something to show.
    const search = `/open-apis/bitable/v1/apps/${bitable.refs.wiki.appToken}/tables/${bitable.refs.wiki.tasks}/records/search`;
    stack.sim.injectFault({ path: search, delayMs: 1_200, count: 4 });
    await Promise.all([page.waitForNavigation(), page.click('#base form.sync button[type="submit"]')]);
    expect(await text(page, '.notice')).toBe('Base sync started.');
    const [run] = await stack.larksync.services.sync.list(TENANT, { limit: 1, module: 'base' });
    expect(await page.$eval('#base .live', (e) => e.getAttribute('data-run'))).toBe(run!.id);
    // The live line moves while the run goes: rows counted, then the page comes back finished.
    const seen = new Set<string>();
    let shotLive = false;
    await waitFor(
      async () => {
        const live = await page.$('#base .live-text');
        const line = live ? await live.evaluate((e) => e.textContent ?? '') : '';
        if (line) seen.add(line);
        if (SCREENSHOTS && !shotLive && /^running · .*base_records [1-9]/.test(line)) {
          // Mid-run, for the README; the page may reload under it, then the next round tries again.
          shotLive = await page.$('#base').then((card) => card?.screenshot({ path: path.join(SHOTS_DIR, 'admin-live-run.png') })).then(() => true, () => false);
        }
        const latest = await page.$('#base .runs .run .badge');
        const status = latest ? await latest.evaluate((e) => e.textContent) : null;
        return status !== null && !['queued', 'running'].includes(status ?? '') && (await page.$('#base .live')) === null;
      },
      60_000,
      'the run to finish on the page',
    );
    const lines = [...seen];
    expect(lines.some((l) => /^running · \d[\d,]* rows \(.*base_records [\d,]+/.test(l)), lines.join('\n')).toBe(true);
    expect(lines.length).toBeGreaterThan(1);
    expect(await page.$('#base .live')).toBeNull();
    const lastRun = await text(page, '#base .runs .run');
    expect(lastRun).toContain('succeeded');
    expect(lastRun).toContain(`base_records ${TASKS.toLocaleString('en-US')}`);
    expect(errors).toEqual([]);

    if (SCREENSHOTS) await screenshots(page);

    // Signing out ends the session.
    await Promise.all([page.waitForNavigation(), page.click('form.sign-out button')]);
    expect(await text(page, 'main')).toContain('You are signed out.');
    await page.goto(`${stack.larksync.url}/admin`);
    expect(await text(page, 'main')).not.toContain(TENANT);

    // The second tenant's admin, in a browser profile of their own: their tenant only.
    const context = await browser.createBrowserContext();
    const other = await context.newPage();
    await other.setViewport({ width: 1280, height: 900 });
    await signIn(other, adminB);
    const body = await text(other, 'body');
    expect(body).toContain(OTHER);
    expect(body).toContain('Globex');
    expect(body).not.toContain(TENANT);
    expect(body).not.toContain('Acme');
    expect(await text(other, '#base .badge')).toBe('not configured');
    // Neither the URL nor the JSON endpoint reach the first tenant.
    await other.goto(`${stack.larksync.url}/admin?tenant=${TENANT}&tenantKey=${TENANT}`);
    expect(await text(other, 'body')).not.toContain(TENANT);
    const probe = await other.evaluate(async (id) => {
      const res = await fetch(`/admin/runs/${id}.json`);
      return { status: res.status, body: await res.text() };
    }, run!.id);
    expect(probe.status).toBe(404);
    expect(probe.body).not.toContain(TENANT);
    await context.close();
  }, 120_000);

  /** The README's pictures: the page with more going on (a partial run with its fix hint, Contact). */
  async function screenshots(page: Page): Promise<void> {
    const services = stack.larksync.services;
    const bitable = stack.data.bitable(TENANT);
    const { main, wiki } = bitable.refs;
    bitable.table(main.appToken, main.ledger).denied = true;
    await services.connectors.put(
      TENANT,
      'base',
      {
        enabled: true,
        intervalMinutes: 30,
        config: {
          tables: [
            { url: `https://acme.feishu.cn/wiki/${wiki.nodeToken}?table=${wiki.tasks}` },
            { url: `https://acme.feishu.cn/base/${main.appToken}?table=${main.projects}` },
            { url: `https://acme.feishu.cn/base/${main.appToken}?table=${main.ledger}` },
          ],
        },
      },
      'store',
    );
    await services.connectors.put(TENANT, 'contact', { enabled: true, intervalMinutes: 60, config: {} }, 'store');
    for (const module of ['base', 'contact'] as const) {
      const { run } = await services.sync.trigger(TENANT, module, 'full', 'api');
      await waitFor(async () => !['queued', 'running'].includes((await services.sync.get(run.id))!.status), 60_000, `${module} run`);
    }
    const user = stack.sim.addUser(TENANT, { name: 'Linus Reader' });
    const grant = await fetch(`${stack.larksync.url}/api/v1/auth/lark/login-url?tenantKey=${TENANT}`, {
      headers: { authorization: `Bearer ${stack.env.API_TOKEN}` },
    }).then((r) => r.json() as Promise<{ url: string }>);
    const q = Object.fromEntries(new URL(grant.url).searchParams) as Record<string, string>;
    await fetch(stack.sim.authorizeAs(STORE_APP.appId, user, { ...q, code_challenge_method: 'S256' } as never), { redirect: 'manual' });

    await page.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
    await page.goto(`${stack.larksync.url}/admin`);
    await page.click('#base details.settings summary');
    await page.screenshot({ path: path.join(SHOTS_DIR, 'admin-desktop.png'), fullPage: true });
    await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await page.goto(`${stack.larksync.url}/admin`);
    await page.screenshot({ path: path.join(SHOTS_DIR, 'admin-phone.png') });
    await page.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
  }
});

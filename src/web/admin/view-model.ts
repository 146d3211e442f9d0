import { MODULE_NAMES } from '../../connectors/index.js';
import type { GrantView } from '../../grants/grants.service.js';
import type { Services } from '../../services.js';
import type { ConnectorView } from '../../sync/connectors.service.js';
import { toRunView, type SyncRunView } from '../../sync/sync.service.js';
import type { ItemError, SyncModuleName } from '../../sync/sync.tables.js';
import type { TenantRow } from '../../tenants/tenants.table.js';
import type { WebUser } from '../web-user.js';
import { MODULE_FORMS, valuesFromConnector, type FieldSpec, type FormValues } from './forms.js';

/** What the admin page shows, all of it the signed-in user's own tenant. Plain data for the template. */

const RUNS_SHOWN = 5;
const ACTIVE = new Set(['queued', 'running']);

export interface RunLine {
  id: string;
  status: string;
  mode: string;
  active: boolean;
  createdAt: string;
  /** "12 s", "3 min 4 s"; so far, for a run still going */
  duration: string;
  counts: Array<{ stream: string; rows: number }>;
  /** One line: status, rows so far, pages, time (what the live line shows). */
  progress: string;
  error: { class: string; message: string } | null;
  itemErrors: ItemError[];
}

export interface ModuleCard {
  module: SyncModuleName;
  title: string;
  blurb: string;
  state: 'enabled' | 'disabled' | 'not_configured';
  intervalMinutes: number | null;
  warnings: string[];
  /** One line on the module's change events and polling, and its tone; null for a module without events. */
  events: { text: string; healthy: boolean } | null;
  fields: FieldSpec[];
  values: FormValues;
  /** The connectors service's message for what was just posted, shown by the form. */
  error: string | null;
  /** Read-only view of the settings (for viewers): label and the values. */
  settings: Array<{ label: string; values: string[] }>;
  runs: RunLine[];
  active: RunLine | null;
}

export interface TenantPanel {
  tenantKey: string;
  name: string | null;
  status: string;
  statusReason: string | null;
  appKind: 'store' | 'custom';
  /**
   * A custom app's change events: the Request URL to set in its console (PUBLIC_URL and the path,
   * or the path alone without PUBLIC_URL), or null while its Verification Token is not registered.
   */
  eventsUrl: string | null;
  installedAt: string;
  tokenStatus: string;
  tokenError: string | null;
}

export interface GrantLine {
  name: string;
  openId: string;
  status: string;
  statusReason: string | null;
  scopes: string[];
  authorizedAt: string;
  refreshExpiresAt: string | null;
  you: boolean;
}

export interface AdminPage {
  user: WebUser;
  canConfigure: boolean;
  tenant: TenantPanel;
  modules: ModuleCard[];
  grants: GrantLine[];
  notice: string | null;
  problem: string | null;
}

const two = (n: number) => String(n).padStart(2, '0');
/** A UTC time as text; the page's script shows it in the browser's zone. */
export const whenText = (iso: string) => {
  const d = new Date(iso);
  return `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())} UTC`;
};

export function durationText(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const rowsText = (n: number) => n.toLocaleString('en-US');

export function runLine(run: SyncRunView, now = Date.now()): RunLine {
  const active = ACTIVE.has(run.status);
  const start = run.startedAt ? Date.parse(run.startedAt) : null;
  const end = run.finishedAt ? Date.parse(run.finishedAt) : active ? now : null;
  const duration = start !== null && end !== null ? durationText(end - start) : '';
  const counts = Object.entries(run.counts)
    .map(([stream, rows]) => ({ stream, rows }))
    .sort((a, b) => a.stream.localeCompare(b.stream));
  const total = counts.reduce((sum, c) => sum + c.rows, 0);
  const parts = [run.status === 'queued' ? 'queued, waiting for a worker' : run.status];
  if (run.status !== 'queued' || total > 0) {
    parts.push(`${rowsText(total)} rows${counts.length > 0 ? ` (${counts.map((c) => `${c.stream} ${rowsText(c.rows)}`).join(', ')})` : ''}`);
    parts.push(`${run.pages} ${run.pages === 1 ? 'page' : 'pages'}`);
  }
  if (duration) parts.push(duration);
  if (run.itemErrors.length > 0) parts.push(`${run.itemErrors.length} item ${run.itemErrors.length === 1 ? 'error' : 'errors'}`);
  return {
    id: run.id,
    status: run.status,
    mode: run.mode,
    active,
    createdAt: run.createdAt,
    duration,
    counts,
    progress: parts.join(' · '),
    error: run.error,
    itemErrors: run.itemErrors,
  };
}

function settingsOf(module: SyncModuleName, values: FormValues): ModuleCard['settings'] {
  return MODULE_FORMS[module]!.fields.map((f) => ({
    label: f.label,
    values: f.kind === 'lines' ? (values[f.name] ?? '').split('\n').filter(Boolean) : [values[f.name] ?? ''],
  }));
}

function tenantPanel(
  tenant: TenantRow,
  appKind: 'store' | 'custom',
  eventsUrl: string | null,
  token: { status: string; lastError: { class: string } | null },
): TenantPanel {
  return {
    tenantKey: tenant.tenant_key,
    name: tenant.name,
    status: tenant.status,
    statusReason: tenant.status_reason,
    appKind,
    eventsUrl,
    installedAt: tenant.installed_at.toISOString(),
    tokenStatus: token.status,
    tokenError: token.lastError?.class ?? null,
  };
}

function grantLine(g: GrantView, user: WebUser): GrantLine {
  return {
    name: g.name ?? g.openId,
    openId: g.openId,
    status: g.status,
    statusReason: g.statusReason,
    scopes: g.scopes,
    authorizedAt: g.authorizedAt,
    refreshExpiresAt: g.refreshExpiresAt,
    you: g.openId === user.openId,
  };
}

export interface PageOptions {
  /** What was posted to a module's form and the service's message, to show again as typed. */
  posted?: { module: SyncModuleName; values: FormValues; error: string };
  notice?: string | null;
  problem?: string | null;
}

/** Reads everything the page shows for the user's tenant (and nothing of any other). */
export async function adminPage(services: Services, user: WebUser, tenant: TenantRow, opts: PageOptions = {}): Promise<AdminPage> {
  const tenantKey = user.tenantKey;
  const app = await services.apps.pushSetup(tenant.app_id);
  const appKind = app?.kind ?? 'store';
  // The store app's pushes are the operator's business; a custom app's go where its admin sets them.
  const eventsUrl = app?.eventsPath ? `${services.config.publicUrl ?? ''}${app.eventsPath}` : null;
  const [token, grants, perModule] = await Promise.all([
    services.tokens.health('tenant', tenant.app_id, tenantKey),
    services.grants.list(tenantKey),
    Promise.all(
      MODULE_NAMES.map(async (module) => {
        const [connector, runs] = await Promise.all([
          services.connectors.get(tenantKey, module, appKind),
          services.sync.list(tenantKey, { limit: RUNS_SHOWN, module }),
        ]);
        return { module, connector, runs: runs.map((r) => runLine(toRunView(r))) };
      }),
    ),
  ]);
  const modules = perModule.map(({ module, connector, runs }): ModuleCard => {
    const stored = valuesFromConnector(module, connector);
    const posted = opts.posted?.module === module ? opts.posted : undefined;
    return {
      module,
      title: MODULE_FORMS[module]!.title,
      blurb: MODULE_FORMS[module]!.blurb,
      state: stateOf(connector),
      intervalMinutes: connector?.intervalMinutes ?? null,
      warnings: connector?.warnings ?? [],
      events: eventsLine(connector),
      fields: MODULE_FORMS[module]!.fields,
      values: posted?.values ?? stored,
      error: posted?.error ?? null,
      settings: connector ? settingsOf(module, stored) : [],
      runs,
      active: runs.find((r) => r.active) ?? null,
    };
  });
  return {
    user,
    canConfigure: user.role === 'admin',
    tenant: tenantPanel(tenant, appKind, eventsUrl, token),
    modules,
    grants: grants.map((g) => grantLine(g, user)),
    notice: opts.notice ?? null,
    problem: opts.problem ?? null,
  };
}

function stateOf(connector: ConnectorView | undefined): ModuleCard['state'] {
  if (!connector) return 'not_configured';
  return connector.enabled ? 'enabled' : 'disabled';
}

/** "Change events: healthy …" or "Change events: gap … lag 42 min"; what the REST answer's `events` says, in words. */
export function eventsLine(connector: ConnectorView | undefined): ModuleCard['events'] {
  const e = connector?.events;
  if (!connector?.enabled || !e || e.status === 'unknown') return null;
  if (e.status === 'healthy') return { healthy: true, text: `Change events: ${e.detail ?? 'healthy'}.` };
  const lag = e.lagSeconds !== null ? ` Lag: ${durationText(e.lagSeconds * 1000)}.` : '';
  return { healthy: false, text: `Change events: ${e.detail ?? e.reason ?? 'gap'} (every ${e.pollingIntervalMinutes} min).${lag}` };
}

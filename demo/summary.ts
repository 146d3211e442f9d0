import type { DemoSummary, SummaryRow } from './scenario.js';
import { fmt } from './progress.js';
import { UNAVAILABLE_TO_STORE_APPS } from './tenants.js';

const seconds = (s: number | null | undefined) => (s === null || s === undefined ? '' : `${s.toFixed(1)} s`);

/** Left-aligned text columns, right-aligned numbers; a rule under the header and above totals. */
function table(header: string[], body: string[][], rightAligned: Set<number>, ruleBefore: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const render = (r: string[]) =>
    r
      .map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '─'.repeat(w)).join('  ');
  const lines = [render(header), rule];
  body.forEach((r, i) => {
    if (ruleBefore.has(i)) lines.push(rule);
    lines.push(render(r));
  });
  return lines.join('\n');
}

/**
 * Rows per stream per tenant, each module's run time and rate, a subtotal per tenant (first run
 * started to last finished: modules run side by side) and the grand total.
 */
export function formatSummary(summary: DemoSummary): string {
  const body: string[][] = [];
  const rules = new Set<number>();
  const byTenant = new Map<string, SummaryRow[]>();
  for (const r of summary.rows) byTenant.set(r.tenantKey, [...(byTenant.get(r.tenantKey) ?? []), r]);

  for (const [key, rows] of byTenant) {
    const first = rows[0];
    if (!first) continue;
    if (body.length > 0) rules.add(body.length);
    let lastModule = '';
    for (const r of rows) {
      const newModule = r.module !== lastModule;
      lastModule = r.module;
      const rate = r.rows && r.seconds ? `${fmt(r.rows / r.seconds)}/s` : '';
      body.push([
        newModule && r === first ? `${r.tenantName} (${r.app === 'store' ? 'store app' : 'own custom app'})` : '',
        newModule ? r.module : '',
        r.stream,
        r.rows === null ? '--' : fmt(r.rows),
        newModule && r.status !== 'unavailable' ? seconds(r.seconds) : '',
        rate,
        r.note,
      ]);
    }
    const synced = rows.reduce((n, r) => n + (r.rows ?? 0), 0);
    const took = summary.tenantSeconds[key];
    body.push(['', 'tenant total', '', fmt(synced), seconds(took), took ? `${fmt(synced / took)}/s` : '', '']);
  }
  rules.add(body.length);
  const totalRate = summary.syncSeconds > 0 ? `${fmt(summary.totalRows / summary.syncSeconds)}/s` : '';
  body.push([`all ${byTenant.size} tenants`, '', '', fmt(summary.totalRows), seconds(summary.syncSeconds), totalRate, '']);
  return table(['tenant', 'module', 'stream', 'rows read', 'time', 'rate', ''], body, new Set([3, 4, 5]), rules);
}

/** The one-line explanation of the attendance rows, or nothing when no store tenant asked for it. */
export function attendanceNote(summary: DemoSummary): string | undefined {
  const unavailable = summary.rows.some((r) => r.status === 'unavailable');
  if (!unavailable) return undefined;
  const flows = summary.rows.find((r) => r.stream === 'attendance_flows' && r.app === 'custom');
  const custom = flows
    ? `; ${flows.tenantName} registered its own app (POST /api/v1/apps)${flows.rows === null ? '' : ` and synced ${fmt(flows.rows)} attendance flows`}`
    : '';
  return `Attendance: ${UNAVAILABLE_TO_STORE_APPS}, so store-app tenants' runs end with unsupported_for_store_app${custom}.`;
}

/** The write-API part of the summary: what was written, and that it came back. */
export function formatWrites(summary: DemoSummary): string | undefined {
  const w = summary.writes;
  if (!w) return undefined;
  return [
    `Written through the write API: ${fmt(w.ok)} of ${fmt(w.records)} orders into ${w.tenantName}'s ${w.table} table, ${w.status} in ${seconds(w.seconds)} ` +
      `(${w.upstreamCalls} call${w.upstreamCalls === 1 ? '' : 's'} to Lark, one at a time on the Base, each with its client_token).`,
    `Synced back: ${fmt(w.inBaseRecords)} in base_records as soon as the write succeeded (read back from Lark); an incremental Base sync afterwards ` +
      `(${w.sync.status}, ${fmt(w.sync.baseRecords)} records read) left ${fmt(w.afterSync)}, one row per order.`,
  ].join('\n');
}

/**
 * The Lark simulator for the realtime benchmark, in its own process: one store app (encrypt key
 * set, so pushes are signed and encrypted as Lark sends them) installed in BENCH_SIM_TENANTS
 * tenants (`tenant-rt-<i>`, small contact, approval and Base data each) and in one more tenant
 * whose "Events" table holds BENCH_SIM_RECORDS records (the large sync running meanwhile).
 *
 * The parent starts `sim.events.generate()` (changes at a rate, each emitting its change events)
 * and collects what was pushed: every event's first attempt is timed here (Lark's push) and
 * turned into the changes it announces (which row of which stream must show what), so the parent
 * can time each change until larksync's records API and webhook show it. Upstream calls are
 * counted by kind from the simulator's own call log. Started by bench/realtime.ts.
 */
import { LarkSimulator } from '../simulator/lark-simulator.js';
import { SimData } from '../simulator/data/index.js';
import type { ChangeGenerator, ChangeKind } from '../simulator/events/index.js';
import { serveParent } from './child-ipc.js';

const env = process.env;
const appId = env.BENCH_SIM_APP_ID ?? 'cli_bench_realtime';
const tenantCount = Number(env.BENCH_SIM_TENANTS ?? 100);
const records = Number(env.BENCH_SIM_RECORDS ?? 1_000_000);
const BIG_TENANT = 'tenant-rt-big';

const sim = new LarkSimulator({ events: { historyLimit: 1_000 } });
sim.addApp({
  appId,
  appSecret: env.BENCH_SIM_APP_SECRET ?? 'bench-secret',
  verificationToken: env.BENCH_SIM_VTOK ?? 'vtok-bench',
  encryptKey: env.BENCH_SIM_ENCRYPT_KEY,
  kind: 'store',
});
const data = new SimData(sim, { enforceRateLimits: env.BENCH_SIM_ENFORCE_LIMITS !== '0' });
const tenants = Array.from({ length: tenantCount }, (_, i) => `tenant-rt-${i}`);

export interface RealtimeTenant {
  tenant: string;
  approvalCodes: string[];
  orders: { appToken: string; tableId: string };
}

const setups: RealtimeTenant[] = tenants.map((tenant) => {
  sim.installTenant(appId, tenant);
  data.contact(tenant);
  const approval = data.approval(tenant, { definitions: 2, instancesPerDay: 2, days: 5 });
  const { appToken, orders } = data.bitable(tenant, { projects: 5, ledger: 0, tasks: 0, events: 0, orders: 20 }).refs.main;
  return { tenant, approvalCodes: approval.codes(), orders: { appToken, tableId: orders } };
});
sim.installTenant(appId, BIG_TENANT);
const big = data.bitable(BIG_TENANT, { events: records, projects: 0, ledger: 0, tasks: 0, orders: 0 }).refs.big;
/** Field id -> name of each tenant's Orders table (record events name fields by id). */
const fieldNames = new Map<string, string>();
for (const s of setups) {
  for (const f of data.bitable(s.tenant).table(s.orders.appToken, s.orders.tableId).fields) fieldNames.set(`${s.orders.tableId}:${f.field_id}`, f.field_name);
}

// ---------------------------------------------------------------- what each push announces

/** What a row of the records feed must show once the change is applied. */
export type Expect = { kind: 'present' } | { kind: 'deleted' } | { kind: 'value'; path: string[]; value: unknown };

export interface PushedChange {
  stream: string;
  key: string;
  expect: Expect;
}

export interface Push {
  eventId: string;
  tenant: string;
  type: string;
  /** ms since the epoch when Lark started the first attempt */
  at: number;
  /** HTTP status of the first attempt and how long it took */
  status: number;
  ackMs: number;
  changes: PushedChange[];
}

type Json = Record<string, any>;

function changesOf(body: Json): { tenant: string; type: string; changes: PushedChange[] } {
  if (body.schema === '2.0') {
    const type = String(body.header?.event_type ?? '');
    const tenant = String(body.header?.tenant_key ?? '');
    const ev = body.event as Json;
    switch (type) {
      case 'contact.user.created_v3':
        return { tenant, type, changes: [{ stream: 'contact_users', key: ev.object.open_id, expect: { kind: 'present' } }] };
      case 'contact.user.updated_v3':
        return {
          tenant,
          type,
          changes: [{ stream: 'contact_users', key: ev.object.open_id, expect: { kind: 'value', path: ['raw', 'job_title'], value: ev.object.job_title } }],
        };
      case 'contact.user.deleted_v3':
        return { tenant, type, changes: [{ stream: 'contact_users', key: ev.object.open_id, expect: { kind: 'deleted' } }] };
      case 'drive.file.bitable_record_changed_v1': {
        const changes: PushedChange[] = [];
        for (const a of ev.action_list as Json[]) {
          const key = `${ev.file_token}:${ev.table_id}:${a.record_id}`;
          if (a.action === 'record_deleted') changes.push({ stream: 'base_records', key, expect: { kind: 'deleted' } });
          else if (a.action === 'record_added') changes.push({ stream: 'base_records', key, expect: { kind: 'present' } });
          else {
            for (const v of (a.after_value ?? []) as Json[]) {
              const name = fieldNames.get(`${ev.table_id}:${v.field_id}`);
              if (name !== 'Qty') continue;
              changes.push({ stream: 'base_records', key, expect: { kind: 'value', path: ['fields', name], value: JSON.parse(v.field_value as string) } });
            }
          }
        }
        return { tenant, type, changes };
      }
      default:
        return { tenant, type, changes: [] };
    }
  }
  const ev = body.event as Json;
  const type = String(ev?.type ?? '');
  if (type === 'approval_instance') {
    return {
      tenant: String(ev.tenant_key),
      type,
      changes: [{ stream: 'approval_instances', key: ev.instance_code, expect: { kind: 'value', path: ['status'], value: ev.status } }],
    };
  }
  return { tenant: String(ev?.tenant_key ?? ''), type, changes: [] };
}

let pushes: Push[] = [];
const seen = new Set<string>();
let recording = false;
// Every attempt goes through transmit(): the first one of each event is Lark's push.
const transmit = sim.transmit.bind(sim);
sim.transmit = async (app, id, plaintext, opts) => {
  const at = Date.now();
  const res = await transmit(app, id, plaintext, opts);
  if (recording && !seen.has(id)) {
    seen.add(id);
    pushes.push({ eventId: id, at, status: res.status, ackMs: res.durationMs, ...changesOf(JSON.parse(plaintext) as Json) });
  }
  return res;
};

// ---------------------------------------------------------------- upstream calls

interface CallEntry {
  path: string;
  at: number;
}
/** The simulator's call log (private there; read-only here, as count() reads it). */
const callLog = (sim as unknown as { callLog: CallEntry[] }).callLog;

export interface CallCounts {
  contact: number;
  approval: number;
  /** Base reads of the small tables (the large sync's calls are left out) */
  base: number;
  /** the large table's sync */
  bigSync: number;
  /** subscribe and get_subscribe calls */
  subscribe: number;
  tokens: number;
  other: number;
}

function classify(path: string): keyof CallCounts {
  if (path.includes('/subscribe') || path.endsWith('/get_subscribe') || path.endsWith('/delete_subscribe')) return 'subscribe';
  if (path.startsWith('/open-apis/auth/')) return 'tokens';
  if (path.startsWith('/open-apis/contact/')) return 'contact';
  if (path.startsWith('/open-apis/approval/')) return 'approval';
  if (path.startsWith('/open-apis/bitable/')) return path.includes(big.appToken) ? 'bigSync' : 'base';
  return 'other';
}

let generator: ChangeGenerator | undefined;
const url = await sim.start();

export interface RealtimeSimInfo {
  url: string;
  tenants: RealtimeTenant[];
  big: { tenant: string; appToken: string; tableId: string; records: number };
}

serveParent(
  {
    info: async (): Promise<RealtimeSimInfo> => ({ url, tenants: setups, big: { tenant: BIG_TENANT, appToken: big.appToken, tableId: big.events, records } }),
    ticket: async () => sim.issueTicket(appId),
    setEventUrl: async (u: string) => sim.setEventUrl(appId, u),
    /** Starts the changes; pushes are recorded from here on. */
    generate: async (a: { perSecond: number; seconds: number; kinds: ChangeKind[]; seed: string }) => {
      recording = true;
      generator = sim.events.generate({ perSecond: a.perSecond, tenants, kinds: a.kinds, durationMs: a.seconds * 1000, autoSubscribe: true, seed: a.seed });
      return true;
    },
    generatorDone: async () => {
      await generator?.done;
      return { drawn: generator?.drawn ?? 0, changes: generator?.changes ?? 0, byKind: generator?.byKind, errors: generator?.errors ?? 0, lastError: generator?.lastError ? String(generator.lastError) : null };
    },
    /** Pushes recorded since the last call. */
    takePushes: async (): Promise<Push[]> => {
      const out = pushes;
      pushes = [];
      return out;
    },
    idle: async (timeoutMs: number) => {
      await sim.events.idle({ timeoutMs });
      return { counters: sim.events.counters, gauges: sim.events.gauges() };
    },
    events: async () => ({ counters: sim.events.counters, gauges: sim.events.gauges() }),
    /** Upstream calls by kind between two wall-clock instants (ms). */
    calls: async (a: { from: number; to: number }): Promise<CallCounts> => {
      const out: CallCounts = { contact: 0, approval: 0, base: 0, bigSync: 0, subscribe: 0, tokens: 0, other: 0 };
      for (const c of callLog) if (c.at >= a.from && c.at <= a.to) out[classify(c.path)] += 1;
      return out;
    },
    throttled: async () => data.limiter.throttled,
  },
  () => sim.stop(),
);

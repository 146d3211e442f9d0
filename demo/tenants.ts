import type { LarkSimulator } from '../simulator/lark-simulator.js';
import type { SimData } from '../simulator/data/index.js';
import type { ContactShape } from '../simulator/data/contact.js';
import type { StreamName } from '../src/sync/streams.js';
import type { SyncModuleName } from '../src/sync/sync.tables.js';
import { renameDirectory } from './realistic-names.js';

/** How much data the simulator holds; every knob has an environment variable (see knobs.ts). */
export interface DemoSizes {
  /** Records of the first tenant's big Base table (an event log); the second tenant gets 60 %. */
  baseRecords: number;
  /** Approval instances created per day and approval definition. */
  approvalsPerDay: number;
  /** Days of approval history. */
  approvalDays: number;
  usersPerDepartment: number;
  /** Days of attendance punches read (the custom-app tenant's lookbackDays). */
  attendanceDays: number;
  /** Pages of the docs tenant's wiki space, delivered to the RAGFlow fake (default 300). */
  wikiPages?: number;
}

export const DEFAULT_SIZES: DemoSizes = { baseRecords: 30_000, approvalsPerDay: 16, approvalDays: 7, usersPerDepartment: 8, attendanceDays: 14, wikiPages: 300 };

export interface DemoTenant {
  key: string;
  name: string;
  /** store: installs the demo's store app (app_open); custom: brings its own app (POST /api/v1/apps). */
  app: 'store' | 'custom';
  modules: SyncModuleName[];
  /** Share of the Base and approval sizes. */
  scale: number;
  departments: Omit<ContactShape, 'usersPerDepartment'>;
  approvalDefinitions: number;
}

/**
 * Two companies install the store app and sync every module. Lark offers the attendance API to
 * custom (self-built) apps only (../shared/lark/attendance.md §0), so a third company registers
 * its own app, which is how attendance can be synced at all.
 */
export const TENANTS: DemoTenant[] = [
  {
    key: 'acme',
    name: 'Acme Robotics',
    app: 'store',
    modules: ['contact', 'approval', 'base', 'attendance', 'docs'],
    scale: 1,
    departments: { topLevel: 6, childrenPerDepartment: 3, depth: 2, rootUsers: 3 },
    approvalDefinitions: 3,
  },
  {
    key: 'globex',
    name: 'Globex Foods',
    app: 'store',
    modules: ['contact', 'approval', 'base', 'attendance'],
    scale: 0.6,
    departments: { topLevel: 4, childrenPerDepartment: 3, depth: 2, rootUsers: 2 },
    approvalDefinitions: 2,
  },
  {
    key: 'initech',
    name: 'Initech',
    app: 'custom',
    modules: ['contact', 'attendance'],
    scale: 1,
    departments: { topLevel: 3, childrenPerDepartment: 2, depth: 2, rootUsers: 2 },
    approvalDefinitions: 0,
  },
];

/** The custom app Initech built for itself, as its admin would paste it into POST /api/v1/apps. */
export const CUSTOM_APP = { appId: 'cli_demo_initech_own', appSecret: 'demo-initech-own-app-secret', verificationToken: 'demo-initech-vtok' };

export const UNAVAILABLE_TO_STORE_APPS = 'not available to store apps (Lark: custom apps only)';

export interface ConnectorPut {
  enabled: boolean;
  config: Record<string, unknown>;
}

export interface SeededTenant extends DemoTenant {
  connectors: Partial<Record<SyncModuleName, ConnectorPut>>;
  /** Rows a complete first run reads, worked out from the simulator's data (attendance: within a punch or two). */
  expected: Partial<Record<StreamName, number>>;
  /** A Base table the demo writes into through the write API (the main Base's "Orders"), synced too. */
  writeTarget?: { appToken: string; tableId: string };
}

const DAY_MS = 86_400_000;

/**
 * Generates each tenant's data in the simulator (deterministic per tenant key), adds Initech's
 * custom app, and works out the connector configs an admin would write for that data.
 */
export function seedSimulator(sim: LarkSimulator, data: SimData, sizes: DemoSizes, tenants: DemoTenant[] = TENANTS): SeededTenant[] {
  const custom = tenants.find((t) => t.app === 'custom');
  if (custom) sim.addApp({ ...CUSTOM_APP, kind: 'custom', tenantKey: custom.key, tenantName: custom.name });
  const defaultShape = data.contactShape;
  try {
    return tenants.map((t) => seedTenant(data, t, sizes));
  } finally {
    data.contactShape = defaultShape;
  }
}

function seedTenant(data: SimData, t: DemoTenant, sizes: DemoSizes): SeededTenant {
  const connectors: SeededTenant['connectors'] = {};
  const expected: SeededTenant['expected'] = {};
  const now = Date.now();

  // The shape is read when a tenant's directory is first generated, which is here.
  data.contactShape = { ...t.departments, usersPerDepartment: sizes.usersPerDepartment };
  const dir = data.contact(t.key);
  renameDirectory(t.key, dir);
  if (t.modules.includes('contact')) {
    connectors.contact = { enabled: true, config: {} };
    expected.contact_departments = dir.departments.size;
    // A run lists each department's members, so someone in two departments is read twice (stored once).
    expected.contact_users = [...dir.users.values()].reduce((n, u) => n + u.department_ids.length, 0);
  }

  if (t.modules.includes('approval')) {
    const approvals = data.approval(t.key, {
      definitions: t.approvalDefinitions,
      instancesPerDay: Math.max(1, Math.round(sizes.approvalsPerDay * t.scale)),
      days: sizes.approvalDays,
    });
    const codes = approvals.codes();
    // One day more than the history, so the first run's window covers all of it.
    connectors.approval = { enabled: true, config: { approvalCodes: codes, backfillDays: sizes.approvalDays + 1 } };
    expected.approval_instances = approvals.codesBetween(0, now + DAY_MS).length;
  }

  if (t.modules.includes('base')) {
    const base = data.bitable(t.key, { events: Math.max(1, Math.round(sizes.baseRecords * t.scale)) });
    const { main, wiki, big } = base.refs;
    const tables = [
      { appToken: main.appToken, tableId: main.projects },
      { appToken: main.appToken, tableId: main.ledger },
      { appToken: wiki.appToken, tableId: wiki.tasks },
      { appToken: big.appToken, tableId: big.events },
      { appToken: main.appToken, tableId: main.orders },
    ].map((ref) => base.table(ref.appToken, ref.tableId));
    connectors.base = {
      enabled: true,
      config: {
        // The three ways an admin can name a table: ids, and a wiki page's URL (resolved through wiki get_node).
        tables: [
          { appToken: main.appToken, tableId: main.projects },
          { appToken: main.appToken, tableId: main.ledger },
          { url: `https://${t.key}.feishu.cn/wiki/${wiki.nodeToken}?table=${wiki.tasks}` },
          { appToken: big.appToken, tableId: big.events },
          // The table the demo writes into through the write API, then reads back.
          { appToken: main.appToken, tableId: main.orders },
        ],
      },
    };
    expected.base_records = tables.reduce((n, table) => n + table.count, 0);
    expected.base_fields = tables.reduce((n, table) => n + table.fields.length, 0);
  }

  if (t.modules.includes('attendance')) {
    if (t.app === 'store') {
      // Configured as an admin might, but not scheduled: every run would fail the same way.
      connectors.attendance = { enabled: false, config: {} };
    } else {
      connectors.attendance = { enabled: true, config: { employeeType: 'employee_id', lookbackDays: sizes.attendanceDays } };
      const book = data.attendance(t.key);
      const from = Math.floor(now / 1000) - sizes.attendanceDays * 86_400;
      const to = Math.floor(now / 1000);
      expected.attendance_flows = [...dir.users.values()].reduce((n, u) => n + book.punches(u, from, to, to).length, 0);
    }
  }
  if (t.modules.includes('docs')) {
    // A wiki of a few hundred pages, 4 levels deep, and a team Drive; fed to the RAGFlow sink "kb".
    const docs = data.docs(t.key, {
      wikiDocuments: sizes.wikiPages ?? 300,
      wikiDepth: 4,
      largePages: 2,
      oversizePages: 0,
      teamFolders: 3,
      driveDepth: 2,
      driveDocuments: 30,
      archiveDocuments: 40,
      personalDocuments: 1,
    });
    connectors.docs = {
      enabled: true,
      config: {
        // A space by id and a folder by the URL an admin copies from the browser; the archive left out by its path.
        sources: [{ wikiSpaceId: docs.refs.space }, { url: `https://${t.key}.feishu.cn/drive/folder/${docs.refs.teamFolder}` }],
        exclude: ['^Team drive / Archive( /|$)'],
        sinks: ['kb'],
      },
    };
  }
  const writeTarget = t.modules.includes('base') ? { appToken: data.bitable(t.key).refs.main.appToken, tableId: data.bitable(t.key).refs.main.orders } : undefined;
  return { ...t, connectors, expected, ...(writeTarget ? { writeTarget } : {}) };
}

import { DEFAULT_SIZES, type DemoSizes } from './tenants.js';

export interface DemoKnobs {
  sizes: DemoSizes;
  /** preferred ports; a busy one is replaced by a free one */
  port: number;
  simPort: number;
  pgPort: number;
  /** the RAGFlow fake's */
  kbPort: number;
  dataDir: string;
}

/** Every knob, its variable and its default, for the error message and the README. */
const VARIABLES: Array<{ name: string; key: keyof DemoSizes | 'port' | 'simPort' | 'pgPort' | 'kbPort'; min: number; max: number; fallback: number }> = [
  { name: 'DEMO_BASE_RECORDS', key: 'baseRecords', min: 1, max: 1_000_000, fallback: DEFAULT_SIZES.baseRecords },
  { name: 'DEMO_APPROVALS_PER_DAY', key: 'approvalsPerDay', min: 1, max: 500, fallback: DEFAULT_SIZES.approvalsPerDay },
  { name: 'DEMO_APPROVAL_DAYS', key: 'approvalDays', min: 1, max: 365, fallback: DEFAULT_SIZES.approvalDays },
  { name: 'DEMO_USERS_PER_DEPARTMENT', key: 'usersPerDepartment', min: 1, max: 500, fallback: DEFAULT_SIZES.usersPerDepartment },
  { name: 'DEMO_ATTENDANCE_DAYS', key: 'attendanceDays', min: 1, max: 90, fallback: DEFAULT_SIZES.attendanceDays },
  { name: 'DEMO_WIKI_PAGES', key: 'wikiPages', min: 1, max: 5_000, fallback: DEFAULT_SIZES.wikiPages ?? 300 },
  { name: 'DEMO_PORT', key: 'port', min: 1, max: 65535, fallback: 3000 },
  { name: 'DEMO_SIM_PORT', key: 'simPort', min: 1, max: 65535, fallback: 3900 },
  { name: 'DEMO_PG_PORT', key: 'pgPort', min: 1, max: 65535, fallback: 54339 },
  { name: 'DEMO_KB_PORT', key: 'kbPort', min: 1, max: 65535, fallback: 3950 },
];

export class KnobError extends Error {}

export function readKnobs(env: NodeJS.ProcessEnv): DemoKnobs {
  const values: Record<string, number> = {};
  for (const v of VARIABLES) {
    const raw = env[v.name]?.trim();
    const n = raw ? Number(raw.replace(/_/g, '')) : v.fallback;
    if (!Number.isInteger(n) || n < v.min || n > v.max) {
      throw new KnobError(`${v.name}: expected an integer from ${v.min} to ${v.max} (default ${v.fallback})`);
    }
    values[v.key] = n;
  }
  const sizes: DemoSizes = {
    baseRecords: values.baseRecords ?? DEFAULT_SIZES.baseRecords,
    approvalsPerDay: values.approvalsPerDay ?? DEFAULT_SIZES.approvalsPerDay,
    approvalDays: values.approvalDays ?? DEFAULT_SIZES.approvalDays,
    usersPerDepartment: values.usersPerDepartment ?? DEFAULT_SIZES.usersPerDepartment,
    attendanceDays: values.attendanceDays ?? DEFAULT_SIZES.attendanceDays,
    wikiPages: values.wikiPages ?? DEFAULT_SIZES.wikiPages,
  };
  return {
    sizes,
    port: values.port ?? 3000,
    simPort: values.simPort ?? 3900,
    pgPort: values.pgPort ?? 54339,
    kbPort: values.kbPort ?? 3950,
    dataDir: env.DEMO_DATA_DIR?.trim() || 'data/demo',
  };
}

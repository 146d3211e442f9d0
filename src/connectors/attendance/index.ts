import { perSecond } from '../../sync/pacer.js';
import { defineModule } from '../../sync/sync-module.js';
import { CONTACT_LIMITS } from '../contact/limits.js';
import { SyncError } from '../../sync/sync-errors.js';
import { AttendanceConfig, type AttendanceConfigType } from './config.js';
import { flowsPhase } from './flows.phase.js';
import { attendanceForm } from './form.js';

export const CUSTOM_APP_ONLY =
  'attendance needs a custom (self-built) app: Lark offers the attendance APIs to custom apps only, ' +
  'and this tenant is served by a store app. Register a custom app for the tenant (POST /api/v1/apps) to sync attendance';

/**
 * Clock-in flows over a moving window. Every run, incremental or full, re-reads the last
 * lookbackDays (and back to the last complete run if that is older): corrections add records to
 * past days, and the content hash makes re-reading unchanged flows free. A full pass has nothing
 * more to offer, as nothing is swept: a flow is an immutable record (a correction is a new one),
 * and a sweep would also soft-delete the history of every user who merely left the listing (a
 * departure, a changed employeeIds). The cost: a punch Lark later invalidates stays stored.
 */
export const attendanceModule = defineModule<AttendanceConfigType>({
  name: 'attendance',
  streams: {
    attendance_flows: {
      columns: ['record_id', 'user_id', 'creator_id', 'check_time', 'location_name', 'type', 'is_field', 'is_wifi'],
      types: { check_time: 'timestamptz', type: 'integer', is_field: 'boolean', is_wifi: 'boolean' },
    },
  },
  // Employees are found through the directory (employees.ts): Contact's APIs and budget.
  limits: { 'attendance.user_flows.query': perSecond(50), ...CONTACT_LIMITS },
  form: attendanceForm,
  configSchema: AttendanceConfig,
  warnings: (config, appKind) => {
    const out: string[] = [];
    if (appKind === 'store') out.push(`${CUSTOM_APP_ONLY}; runs of this connector fail with unsupported_for_store_app`);
    if (config.employeeType === 'employee_no' && !config.employeeIds) {
      out.push('employeeType "employee_no" without employeeIds reads job numbers from Contact, which needs the scope contact:user.employee_number:read; users without a job number are skipped');
    }
    return out;
  },
  precheck(ctx) {
    if (ctx.appKind === 'store') throw new SyncError('unsupported_for_store_app', CUSTOM_APP_ONLY);
  },
  phases: [flowsPhase],
});

import type { ModuleForm } from '../../sync/module-form.js';

/** The module's settings on the tenant admin page. */
export const attendanceForm: ModuleForm = {
  title: 'Attendance',
  blurb: 'Clock-in flows. Lark offers these to custom apps only.',
  fields: [
    {
      kind: 'lines',
      name: 'employeeIds',
      label: 'Employees',
      hint: 'One id per line; leave empty for everyone the app can see in Contact.',
      optional: true,
    },
    { kind: 'choice', name: 'employeeType', label: 'Employee id type', options: ['employee_id', 'employee_no'] },
    { kind: 'integer', name: 'lookbackDays', label: 'Lookback days', hint: 'Corrections add flows to past days; every run re-reads these.', min: 1, max: 90, defaultValue: 7 },
  ],
};

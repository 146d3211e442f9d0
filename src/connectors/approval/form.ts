import type { ModuleForm } from '../../sync/module-form.js';

/** The module's settings on the tenant admin page. */
export const approvalForm: ModuleForm = {
  title: 'Approval',
  blurb: 'Approval instances, their form fields, tasks and timeline, for the approval definitions named here.',
  fields: [
    {
      kind: 'lines',
      name: 'approvalCodes',
      label: 'Approval codes',
      hint: 'One approval definition code per line (in the approval admin: the definition\'s URL or its "approval code").',
      optional: false,
      placeholder: '7C468A54-8745-2245-9675-08B7C63E7A85',
    },
    { kind: 'integer', name: 'backfillDays', label: 'Backfill days', hint: 'How far back the first and every full run reach.', min: 1, max: 3650, defaultValue: 365 },
    { kind: 'integer', name: 'lookbackDays', label: 'Lookback days', hint: 'Re-read by every run, to pick up status changes.', min: 0, max: 365, defaultValue: 7 },
  ],
};

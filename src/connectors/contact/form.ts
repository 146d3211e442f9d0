import type { ModuleForm } from '../../sync/module-form.js';

/** The module's settings on the tenant admin page. */
export const contactForm: ModuleForm = {
  title: 'Contact',
  blurb: 'The department tree and its users.',
  fields: [
    {
      kind: 'lines',
      name: 'departmentIds',
      label: 'Departments',
      hint: 'One department id per line (each is walked with its sub-departments); leave empty for the whole company.',
      optional: true,
    },
    { kind: 'choice', name: 'departmentIdType', label: 'Department id type', options: ['open_department_id', 'department_id'] },
    { kind: 'choice', name: 'userIdType', label: 'User id type', options: ['open_id', 'union_id', 'user_id'] },
  ],
};

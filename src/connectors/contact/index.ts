import { defineModule } from '../../sync/sync-module.js';
import { ContactConfig, type ContactConfigType } from './config.js';
import { departmentsPhase } from './departments.phase.js';
import { CONTACT_LIMITS } from './limits.js';
import { usersPhase } from './users.phase.js';
import { contactForm } from './form.js';
import { CONTACT_EVENTS } from './events.js';
import { perMinute } from '../../sync/pacer.js';

/** Contact has no change feed to poll, so every run is a full pass with deletion sweeps. */
export const contactModule = defineModule<ContactConfigType>({
  name: 'contact',
  streams: {
    contact_departments: {
      columns: ['open_department_id', 'department_id', 'parent_department_id', 'name', 'is_deleted'],
      types: { is_deleted: 'boolean' },
    },
    contact_users: {
      columns: ['open_id', 'union_id', 'user_id', 'name', 'department_ids', 'is_frozen', 'is_resigned', 'is_activated', 'is_exited', 'is_unjoin'],
      types: { department_ids: 'jsonb', is_frozen: 'boolean', is_resigned: 'boolean', is_activated: 'boolean', is_exited: 'boolean', is_unjoin: 'boolean' },
    },
  },
  limits: {
    ...CONTACT_LIMITS,
    // Change events read one user or department; the listings' tier is assumed (unconfirmed).
    'contact.users.get': perMinute(1000, 20),
    'contact.departments.get': perMinute(1000, 20),
  },
  form: contactForm,
  configSchema: ContactConfig,
  warnings: (config, appKind) =>
    appKind === 'store' && config.userIdType === 'user_id'
      ? ['userIdType "user_id" needs the custom-app-only scope contact:user.employee_id:readonly; a store app gets open_id/union_id']
      : [],
  phases: [departmentsPhase, usersPhase],
  events: CONTACT_EVENTS,
});

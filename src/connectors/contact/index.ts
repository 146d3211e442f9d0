import type { SyncModuleDef } from '../../sync/sync-module.js';
import { ContactConfig, type ContactConfigType } from './config.js';
import { departmentsPhase } from './departments.phase.js';
import { usersPhase } from './users.phase.js';

/** Contact has no change feed to poll, so every run is a full pass with deletion sweeps. */
export const contactModule: SyncModuleDef<ContactConfigType> = {
  name: 'contact',
  streams: ['contact_departments', 'contact_users'],
  configSchema: ContactConfig,
  warnings: (config, appKind) =>
    appKind === 'store' && config.userIdType === 'user_id'
      ? ['userIdType "user_id" needs the custom-app-only scope contact:user.employee_id:readonly; a store app gets open_id/union_id']
      : [],
  phases: [departmentsPhase, usersPhase],
};

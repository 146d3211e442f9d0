import type { SyncModuleDef } from '../sync/sync-module.js';
import type { SyncModuleName } from '../sync/sync.tables.js';
import { approvalModule } from './approval/index.js';
import { attendanceModule } from './attendance/index.js';
import { baseModule } from './base/index.js';
import { contactModule } from './contact/index.js';

/** The modules larksync can sync, by their public name. */
export const SYNC_MODULES: Readonly<Record<SyncModuleName, SyncModuleDef>> = {
  approval: approvalModule as SyncModuleDef,
  attendance: attendanceModule as SyncModuleDef,
  base: baseModule as SyncModuleDef,
  contact: contactModule as SyncModuleDef,
};

export const MODULE_NAMES: SyncModuleName[] = ['approval', 'base', 'attendance', 'contact'];

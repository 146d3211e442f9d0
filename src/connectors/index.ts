import type { SyncModuleDef } from '../sync/sync-module.js';
import { mergeLimits } from '../sync/pacer.js';
import { streamCatalog } from '../sync/streams.js';
import { approvalModule } from './approval/index.js';
import { attendanceModule } from './attendance/index.js';
import { baseModule } from './base/index.js';
import { contactModule } from './contact/index.js';
import { docsModule } from './docs/index.js';

/**
 * The modules larksync can sync, by their public name: the one list to add a module to. Every
 * other list (stream tables, their columns, rate limits, config schemas, module names in the API)
 * is derived from what each module declares about itself.
 */
export const SYNC_MODULES = {
  approval: approvalModule,
  base: baseModule,
  attendance: attendanceModule,
  contact: contactModule,
  docs: docsModule,
} as const satisfies Record<string, SyncModuleDef<never>>;

export type SyncModuleName = keyof typeof SYNC_MODULES;

/** The modules as the engine sees them (config types erased; configs are validated against their schema). */
export const MODULES: Readonly<Record<string, SyncModuleDef>> = SYNC_MODULES as unknown as Record<string, SyncModuleDef>;

export const MODULE_NAMES = Object.keys(SYNC_MODULES) as SyncModuleName[];

export function isModuleName(name: string): name is SyncModuleName {
  return Object.prototype.hasOwnProperty.call(SYNC_MODULES, name);
}

for (const [key, m] of Object.entries(MODULES)) {
  if (m.name !== key) throw new Error(`module ${m.name} is registered as ${key}`);
}

/** Every stream of every module. */
export const STREAM_CATALOG = streamCatalog(Object.values(MODULES));

/** Every Lark API the modules call, with its limit (declarations must agree). */
export const MODULE_RATE_LIMITS = mergeLimits(Object.values(MODULES).map((m) => [m.name, m.limits]));

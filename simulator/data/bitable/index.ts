/**
 * Base (bitable v1) for the simulator (../shared/lark/bitable.md); its two wiki nodes are answered
 * by get_node in ../docs/routes.ts through bitableWikiNode (docs-wiki.md §2.3):
 * - table.ts   SimTable, a row store of virtual records with cached scans and offset paging;
 * - seed.ts    BitableTenant, one tenant's generated bases, tables, records and wiki nodes;
 * - filter.ts  the records/search filter compiler (Lark's day-granular date semantics);
 * - routes.ts  the HTTP routes (reads), and bitableWikiNode;
 * - writes.ts / write-routes.ts  record writes: one write call per Base at a time, client_token,
 *   counters, injected faults; values.ts  write value shapes and their error codes;
 * - media.ts   drive media upload_all into a Base (attachment file tokens).
 */
export {
  BASE_UTC_OFFSET_MS,
  FieldType,
  GENERATED_BEFORE_MS,
  READ_ONLY_FIELD_TYPES,
  SimTable,
  baseDay,
  type SimBitableField,
  type SimBitablePerson,
  type SimBitableRecord,
  type SimBitableView,
  type SortSpec,
  type RecordChange,
  type FieldChange,
  type TableChangeSet,
} from './table.js';
export {
  BitableTenant,
  createBitableTenant,
  defaultBitableShape,
  type BitableRefs,
  type BitableRequest,
  type BitableShape,
  type SimBase,
  type SimWikiNode,
} from './seed.js';
export { FilterError, compileCondition, compileGroup, dayOf, type Condition, type FilterGroup, type Predicate } from './filter.js';
export { bitableWikiNode, locateTable, registerBitableRoutes } from './routes.js';
export { registerBitableWriteRoutes } from './write-routes.js';
export { UPLOAD_ALL_PATH, registerMediaRoutes } from './media.js';
export { PendingOptions, WriteError, convertFields, type SimMedia, type ValueContext } from './values.js';
export {
  BitableWriteState,
  WRITE_APIS,
  defaultBitableWriteOptions,
  emptyWriteStats,
  sumWriteStats,
  type BaseWriteStats,
  type BitableWriteOptions,
  type InFlightCall,
  type WriteApi,
  type WriteFault,
} from './writes.js';

/**
 * Base (bitable v1) and wiki get_node for the simulator (../shared/lark/bitable.md, docs-wiki.md §2.3):
 * - table.ts   SimTable, a row store of virtual records with cached scans and offset paging;
 * - seed.ts    BitableTenant, one tenant's generated bases, tables, records and wiki nodes;
 * - filter.ts  the records/search filter compiler (Lark's day-granular date semantics);
 * - routes.ts  the HTTP routes.
 */
export {
  BASE_UTC_OFFSET_MS,
  FieldType,
  GENERATED_BEFORE_MS,
  SimTable,
  baseDay,
  type SimBitableField,
  type SimBitablePerson,
  type SimBitableRecord,
  type SimBitableView,
  type SortSpec,
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
export { registerBitableRoutes } from './routes.js';

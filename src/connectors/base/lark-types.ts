/** The parts of bitable v1 / wiki v2 answers that larksync reads; everything else stays in `raw`. */

export interface LarkBaseField {
  field_id?: string;
  field_name?: string;
  type?: number;
  ui_type?: string;
  is_primary?: boolean;
}

export interface LarkBasePerson {
  id?: string;
  name?: string;
}

export interface LarkBaseRecord {
  record_id?: string;
  /** field name -> value; empty cells are absent */
  fields?: Record<string, unknown>;
  created_by?: LarkBasePerson;
  created_time?: number;
  last_modified_by?: LarkBasePerson;
  last_modified_time?: number;
}

export interface LarkBasePage<T> {
  items?: T[] | null;
  has_more?: boolean;
  page_token?: string;
  total?: number;
}

/** records/batch_get (bitable.md §2.6): an id is known gone only when listed in absent_record_ids. */
export interface LarkBatchGet {
  records?: LarkBaseRecord[] | null;
  absent_record_ids?: string[] | null;
  forbidden_record_ids?: string[] | null;
}

export interface LarkWikiNode {
  node_token?: string;
  obj_token?: string;
  obj_type?: string;
  title?: string;
}

/** Field type codes (bitable.md §3) the module acts on. */
export const FIELD_TYPE_MODIFIED_TIME = 1002;

/** The fields of contact/v3 items that larksync reads; everything else stays in `raw`. */
export interface LarkDepartment {
  open_department_id?: string;
  department_id?: string;
  parent_department_id?: string;
  name?: string;
  status?: { is_deleted?: boolean };
}

export interface LarkUser {
  open_id?: string;
  union_id?: string;
  user_id?: string;
  name?: string;
  department_ids?: string[];
  status?: { is_frozen?: boolean; is_resigned?: boolean; is_activated?: boolean; is_exited?: boolean; is_unjoin?: boolean };
}

export interface LarkPage<T> {
  items?: T[];
  has_more?: boolean;
  page_token?: string;
}

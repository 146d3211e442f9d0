/** The fields of a `user_flow_results[]` item larksync reads (attendance.md §1); the rest stays in `raw`. */
export interface LarkUserFlow {
  record_id?: string;
  user_id?: string;
  creator_id?: string;
  check_time?: string;
  location_name?: string;
  type?: number;
  is_field?: boolean;
  is_wifi?: boolean;
}

export interface LarkUserFlowPage {
  user_flow_results?: LarkUserFlow[];
}

/** The contact user fields the enumeration needs. */
export interface LarkContactUser {
  open_id?: string;
  user_id?: string;
  employee_no?: string;
}

export interface LarkContactPage<T> {
  items?: T[];
  has_more?: boolean;
  page_token?: string;
}

/** The fields of approval/v4 payloads that larksync reads; everything else stays in `raw`. */
export interface LarkInstanceList {
  instance_code_list?: string[];
  has_more?: boolean;
  page_token?: string;
}

export interface LarkWidget {
  id?: string;
  custom_id?: string;
  name?: string;
  type?: string;
  value?: unknown;
}

export interface LarkTask {
  id?: string;
  user_id?: string;
  open_id?: string;
  status?: string;
  node_id?: string;
  node_name?: string;
  type?: string;
  start_time?: string;
  end_time?: string;
}

export interface LarkTimelineEntry {
  type?: string;
  create_time?: string;
  user_id?: string;
  open_id?: string;
  task_id?: string;
  comment?: string;
}

export interface LarkInstance {
  approval_code?: string;
  approval_name?: string;
  instance_code?: string;
  start_time?: string;
  end_time?: string;
  user_id?: string;
  open_id?: string;
  serial_number?: string;
  department_id?: string;
  status?: string;
  /** A JSON string holding an array of widgets. */
  form?: string;
  task_list?: LarkTask[];
  timeline?: LarkTimelineEntry[];
}

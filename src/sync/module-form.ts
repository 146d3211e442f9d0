/**
 * How a module's settings appear on the tenant admin page (web/admin): friendly inputs (one value
 * per line, a number, a choice) mapped to the module's config and back. Plain data, declared by
 * each module next to its config schema, so the page needs no edit when a module is added.
 * Validation is not done by the form: the mapped input goes to the connectors service, as a REST
 * PUT does, and its message is what the admin sees.
 */

export interface BaseField {
  name: string;
  label: string;
  hint?: string;
}
/** A textarea, one entry per line. */
export interface LinesField extends BaseField {
  kind: 'lines';
  /** Empty means "leave the setting out" (its default) rather than an empty list. */
  optional: boolean;
  placeholder?: string;
  toEntry?: (line: string) => unknown;
  fromEntry?: (entry: unknown) => string;
}
export interface IntegerField extends BaseField {
  kind: 'integer';
  min: number;
  max: number;
  /** What an empty box means. */
  defaultValue: number;
}
export interface ChoiceField extends BaseField {
  kind: 'choice';
  options: readonly string[];
}
export type FieldSpec = LinesField | IntegerField | ChoiceField;

export interface ModuleForm {
  title: string;
  /** One sentence: what the module reads. */
  blurb: string;
  fields: FieldSpec[];
}

/**
 * What the engine knows about a stream: its table's own columns and their types. Each module
 * declares its streams (connectors/<module>/index.ts, `defineModule`); the composition root merges
 * them into one StreamCatalog (connectors/index.ts) and hands it to whoever reads or writes stream
 * tables. Nothing in sync/ names a module or a stream.
 */

/**
 * Members that Lark changes on every read without a change of content: in any object of the row
 * that has the member `objectsWith`, the members `keys` do not count toward the content hash. They
 * are still stored (with the value of the row's last real change).
 */
export interface VolatileValues {
  objectsWith: string;
  keys: readonly string[];
}

/** SQL type of a stream's own column; columns a stream does not list in `types` are text. */
export type ColumnType = 'text' | 'integer' | 'boolean' | 'timestamptz' | 'jsonb';

/**
 * A stream as its module declares it. The table has the same name as the stream, the shared
 * columns of every stream table (StreamTableBase) and these `columns`, created by a migration.
 */
export interface StreamDef {
  columns: readonly string[];
  /** SQL types of columns that are not text, as the module's migration made them */
  types?: Readonly<Partial<Record<string, ColumnType>>>;
  volatile?: VolatileValues;
}

/** A stream with its public name (the table's name, part of the API contract) and module. */
export interface StreamSpec extends StreamDef {
  name: string;
  module: string;
}

/** Stream names are plain strings inside sync/: the catalog says which exist. */
export type StreamName = string;

/** Every stream of every module, by name. */
export interface StreamCatalog {
  names(): string[];
  has(name: string): boolean;
  /** The stream's spec; throws for a name no module declares (a programming error). */
  spec(name: string): StreamSpec;
}

/** Table names are identifiers spliced into SQL: only these are allowed. */
const STREAM_NAME = /^[a-z][a-z0-9_]{0,62}$/;

/** Merges modules' streams; a name declared twice, or not a plain identifier, is refused. */
export function streamCatalog(modules: Iterable<{ name: string; streams: Readonly<Record<string, StreamDef>> }>): StreamCatalog {
  const specs = new Map<string, StreamSpec>();
  for (const m of modules) {
    for (const [name, def] of Object.entries(m.streams)) {
      if (!STREAM_NAME.test(name)) throw new Error(`stream name ${JSON.stringify(name)} of module ${m.name} is not a lower-case identifier`);
      const other = specs.get(name);
      if (other) throw new Error(`stream ${name} is declared by modules ${other.module} and ${m.name}`);
      specs.set(name, { ...def, name, module: m.name });
    }
  }
  return {
    names: () => [...specs.keys()],
    has: (name) => specs.has(name),
    spec(name) {
      const s = specs.get(name);
      if (!s) throw new Error(`no module declares a stream named ${name}`);
      return s;
    },
  };
}

/** The SQL type of one of a stream's own columns. */
export function columnType(stream: StreamDef, column: string): ColumnType {
  return stream.types?.[column] ?? 'text';
}

/** One row for a stream table: the natural key as text, a partition for deletion sweeps, the raw payload. */
export interface StreamRow {
  recordKey: string;
  partition?: string;
  raw: unknown;
  columns: Record<string, unknown>;
}

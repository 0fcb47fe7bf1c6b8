/**
 * The one small interface every database driver of auth-sql implements
 * (drivers/*.ts); load-driver.ts imports a driver only when a config names it.
 */

export type DriverName = 'sqlite3' | 'better-sqlite3' | 'pg' | 'mysql2';
export type Dialect = 'sqlite' | 'postgres' | 'mysql';

export type Row = Record<string, unknown>;

export interface SqlDriver {
  readonly name: DriverName;
  readonly dialect: Dialect;
  /** The positional placeholder for the i-th value (0-based). */
  placeholder(index: number): string;
  /** Runs a query and resolves with its rows. */
  all(sql: string, params: readonly unknown[]): Promise<Row[]>;
  /** Runs a statement and resolves with the number of rows it changed. */
  run(sql: string, params: readonly unknown[]): Promise<number>;
  /** Releases the connection or pool; the driver may not be used afterwards. */
  close(): Promise<void>;
}

/** Where the database is, as the plugin's options give it (AuthSqlOptions extends this). */
export interface ConnectionOptions {
  /** SQLite drivers: the database file (relative paths: to the working directory). */
  filename: string;
  /** pg / mysql2: a connection URL (postgres://…, mysql://…), instead of or besides host, port, … */
  url?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  ssl?: boolean | Record<string, unknown>;
  /** pg / mysql2: connections in the pool. */
  poolSize: number;
}

/** What the drivers need from the plugin's options. */
export interface DriverOptions extends ConnectionOptions {
  /** SQLite: create the file and its folder when missing. */
  create: boolean;
  connectTimeoutMs: number;
  queryTimeoutMs: number;
}

/** The default export of an imported package (ES module or CommonJS). */
export function defaultExport<T>(pkg: unknown): T {
  const m = pkg as { default?: unknown };
  return (m.default ?? m) as T;
}

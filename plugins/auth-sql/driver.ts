/**
 * The one small interface every database driver of auth-sql implements, and
 * the loader that imports a driver only when a config names it. `sqlite3` is a
 * dependency of msrprelay; `better-sqlite3`, `pg` and `mysql2` are optional peer
 * dependencies, so a missing one is reported with the command that installs it.
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

/** What the drivers need from the plugin's options. */
export interface DriverOptions {
  /** SQLite: the database file. */
  filename: string;
  /** SQLite: create the file and its folder when missing. */
  create: boolean;
  url?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  ssl?: boolean | Record<string, unknown>;
  poolSize: number;
  connectTimeoutMs: number;
  queryTimeoutMs: number;
}

/** A driver's npm package is not installed. */
export class MissingDriverError extends Error {
  readonly packageName: string;
  constructor(driver: DriverName, cause: unknown) {
    super(`auth-sql: driver "${driver}" needs the npm package "${driver}", which is not installed: run "npm install ${driver}"`, { cause });
    this.name = 'MissingDriverError';
    this.packageName = driver;
  }
}

/** Imports the package of `driver`; a missing package becomes a MissingDriverError. */
export async function importDriverPackage(driver: DriverName): Promise<unknown> {
  try {
    return await import(driver);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      if (String((e as Error).message).includes(`'${driver}'`)) throw new MissingDriverError(driver, e);
    }
    throw e;
  }
}

/** Imports the driver module and its package, and makes a driver (no connection is opened yet). */
export async function createDriver(driver: DriverName, options: DriverOptions): Promise<SqlDriver> {
  const pkg = await importDriverPackage(driver);
  switch (driver) {
    case 'sqlite3':
      return new (await import('./drivers/sqlite3.ts')).Sqlite3Driver(pkg, options);
    case 'better-sqlite3':
      return new (await import('./drivers/better-sqlite3.ts')).BetterSqlite3Driver(pkg, options);
    case 'pg':
      return new (await import('./drivers/pg.ts')).PgDriver(pkg, options);
    case 'mysql2':
      return new (await import('./drivers/mysql2.ts')).Mysql2Driver(pkg, options);
  }
}

/** The default export of an imported package (ES module or CommonJS). */
export function defaultExport<T>(pkg: unknown): T {
  const m = pkg as { default?: unknown };
  return (m.default ?? m) as T;
}

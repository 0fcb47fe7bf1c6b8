/**
 * Imports a driver of auth-sql only when a config names it. `sqlite3` is a
 * dependency of msrprelay; `better-sqlite3`, `pg` and `mysql2` are optional peer
 * dependencies, so a missing one is reported with the command that installs it.
 */

import type { DriverName, DriverOptions, SqlDriver } from './driver.ts';

/** A driver's npm package is not installed. */
export class MissingDriverError extends Error {
  readonly packageName: string;
  constructor(driver: DriverName, cause: unknown, owner = 'auth-sql') {
    super(`${owner}: driver "${driver}" needs the npm package "${driver}", which is not installed: run "npm install ${driver}"`, { cause });
    this.name = 'MissingDriverError';
    this.packageName = driver;
  }
}

/** Imports the package of `driver`; a missing package becomes a MissingDriverError. */
export async function importDriverPackage(driver: DriverName, owner = 'auth-sql'): Promise<unknown> {
  try {
    return await import(driver);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      if (String((e as Error).message).includes(`'${driver}'`)) throw new MissingDriverError(driver, e, owner);
    }
    throw e;
  }
}

/**
 * Imports the driver module and its package, and makes a driver (no connection is opened yet).
 * `owner` names the plugin in a missing-package message (the chat plugin's store uses these
 * drivers too).
 */
export async function createDriver(driver: DriverName, options: DriverOptions, owner = 'auth-sql'): Promise<SqlDriver> {
  const pkg = await importDriverPackage(driver, owner);
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

/**
 * The embedded default: the `sqlite3` package (asynchronous, the queries run on
 * libuv's thread pool). One connection, opened on first use and opened again
 * after an error that means the file went bad, so a replaced or restored file is
 * picked up without a restart.
 */

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { defaultExport, type DriverOptions, type Row, type SqlDriver } from '../driver.ts';

interface Sqlite3Database {
  all(sql: string, params: unknown[], cb: (err: Error | null, rows: Row[]) => void): void;
  run(sql: string, params: unknown[], cb: (this: { changes: number }, err: Error | null) => void): void;
  configure(option: 'busyTimeout', ms: number): void;
  interrupt(): void;
  close(cb: (err: Error | null) => void): void;
}
interface Sqlite3Module {
  Database: new (filename: string, mode: number, cb: (err: Error | null) => void) => Sqlite3Database;
  OPEN_READWRITE: number;
  OPEN_CREATE: number;
}

/** Errors after which the connection is dropped and the file opened afresh. */
const REOPEN = /SQLITE_(CANTOPEN|NOTADB|CORRUPT|IOERR|READONLY)/;

export class Sqlite3Driver implements SqlDriver {
  readonly name = 'sqlite3';
  readonly dialect = 'sqlite';
  private readonly sqlite: Sqlite3Module;
  private readonly o: DriverOptions;
  private db: Promise<Sqlite3Database> | undefined;
  private closed = false;

  constructor(pkg: unknown, options: DriverOptions) {
    this.sqlite = defaultExport<Sqlite3Module>(pkg);
    this.o = options;
  }

  placeholder(): string {
    return '?';
  }

  all(sql: string, params: readonly unknown[]): Promise<Row[]> {
    return this.use((db, done) => db.all(sql, [...params], (err, rows) => done(err, rows)));
  }

  run(sql: string, params: readonly unknown[]): Promise<number> {
    return this.use((db, done) =>
      db.run(sql, [...params], function (err) {
        done(err, err === null ? this.changes : 0);
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const db = this.db;
    this.db = undefined;
    if (db === undefined) return;
    const handle = await db.catch(() => undefined);
    if (handle !== undefined) await new Promise<void>((resolve) => handle.close(() => resolve()));
  }

  private open(): Promise<Sqlite3Database> {
    if (this.closed) return Promise.reject(new Error('the database is closed'));
    this.db ??= new Promise<Sqlite3Database>((resolve, reject) => {
      const { filename, create } = this.o;
      if (create && filename !== ':memory:') mkdirSync(dirname(filename), { recursive: true });
      const mode = this.sqlite.OPEN_READWRITE | (create ? this.sqlite.OPEN_CREATE : 0);
      const db = new this.sqlite.Database(filename, mode, (err) => {
        if (err !== null) {
          this.db = undefined;
          reject(err);
          return;
        }
        // A locked file is waited on, but no longer than a query may take.
        db.configure('busyTimeout', this.o.queryTimeoutMs);
        resolve(db);
      });
    });
    return this.db;
  }

  private async use<T>(op: (db: Sqlite3Database, done: (err: Error | null, v: T) => void) => void): Promise<T> {
    const pending = this.open();
    const db = await pending;
    try {
      return await new Promise<T>((resolve, reject) => {
        // A statement still running at the query timeout is interrupted (it then fails with SQLITE_INTERRUPT).
        const timer = setTimeout(() => db.interrupt(), this.o.queryTimeoutMs);
        op(db, (err, v) => {
          clearTimeout(timer);
          if (err !== null) reject(err);
          else resolve(v);
        });
      });
    } catch (e) {
      if (REOPEN.test(String((e as Error).message)) && this.db === pending) {
        this.db = undefined;
        db.close(() => {});
      }
      throw e;
    }
  }
}

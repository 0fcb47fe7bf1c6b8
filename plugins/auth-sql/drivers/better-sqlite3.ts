/**
 * `better-sqlite3` (optional peer dependency): synchronous calls, fastest for
 * small lookups. While it waits on a locked file it blocks the event loop, so
 * its busy timeout is kept short whatever the query timeout is.
 */

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { defaultExport, type DriverOptions, type Row, type SqlDriver } from '../driver.ts';

interface BetterStatement {
  reader: boolean;
  all(...params: unknown[]): Row[];
  run(...params: unknown[]): { changes: number };
}
interface BetterDatabase {
  prepare(sql: string): BetterStatement;
  close(): void;
}
type BetterDatabaseClass = new (filename: string, options: { fileMustExist?: boolean; timeout?: number }) => BetterDatabase;

/** Longest the event loop may stall on a locked file, in ms. */
export const BETTER_SQLITE3_MAX_BUSY_MS = 250;

const REOPEN = /SQLITE_(CANTOPEN|NOTADB|CORRUPT|IOERR|READONLY)|unable to open|not a database|malformed/i;

export class BetterSqlite3Driver implements SqlDriver {
  readonly name = 'better-sqlite3';
  readonly dialect = 'sqlite';
  private readonly Database: BetterDatabaseClass;
  private readonly o: DriverOptions;
  private db: BetterDatabase | undefined;
  private readonly statements = new Map<string, BetterStatement>();
  private closed = false;

  constructor(pkg: unknown, options: DriverOptions) {
    this.Database = defaultExport<BetterDatabaseClass>(pkg);
    this.o = options;
  }

  placeholder(): string {
    return '?';
  }

  async all(sql: string, params: readonly unknown[]): Promise<Row[]> {
    return this.use(() => this.statement(sql).all(...params));
  }

  async run(sql: string, params: readonly unknown[]): Promise<number> {
    return this.use(() => this.statement(sql).run(...params).changes);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.drop();
  }

  private statement(sql: string): BetterStatement {
    let s = this.statements.get(sql);
    if (s === undefined) {
      s = this.handle().prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private handle(): BetterDatabase {
    if (this.closed) throw new Error('the database is closed');
    if (this.db === undefined) {
      const { filename, create } = this.o;
      if (create && filename !== ':memory:') mkdirSync(dirname(filename), { recursive: true });
      this.db = new this.Database(filename, {
        fileMustExist: !create,
        timeout: Math.min(this.o.queryTimeoutMs, BETTER_SQLITE3_MAX_BUSY_MS),
      });
    }
    return this.db;
  }

  private use<T>(op: () => T): T {
    try {
      return op();
    } catch (e) {
      if (REOPEN.test(`${(e as { code?: string }).code ?? ''} ${(e as Error).message}`)) this.drop();
      throw e;
    }
  }

  private drop(): void {
    this.statements.clear();
    const db = this.db;
    this.db = undefined;
    try {
      db?.close();
    } catch {
      // Already unusable: nothing to release.
    }
  }
}

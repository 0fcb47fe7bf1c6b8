/**
 * The embedded default: one SQLite file through the `sqlite3` package (a dependency of
 * msrprelay; queries run on libuv's thread pool, off the event loop). WAL mode, so reading the
 * history for a joiner does not wait for a message being written.
 */

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ChatOptions } from '../options.ts';
import { SqlStore, type Row, type SqlConnection } from './sql.ts';

interface Sqlite3Database {
  all(sql: string, params: unknown[], cb: (err: Error | null, rows: Row[]) => void): void;
  run(sql: string, params: unknown[], cb: (err: Error | null) => void): void;
  configure(option: 'busyTimeout', ms: number): void;
  close(cb: (err: Error | null) => void): void;
}
interface Sqlite3Module {
  Database: new (filename: string, mode: number, cb: (err: Error | null) => void) => Sqlite3Database;
  OPEN_READWRITE: number;
  OPEN_CREATE: number;
}

class Sqlite3Connection implements SqlConnection {
  readonly dialect = 'sqlite';
  private db: Promise<Sqlite3Database> | undefined;

  constructor(private readonly o: ChatOptions['store']) {}

  private open(): Promise<Sqlite3Database> {
    this.db ??= (async () => {
      const pkg = (await import('sqlite3')) as unknown as { default?: Sqlite3Module } & Sqlite3Module;
      const sqlite = pkg.default ?? pkg;
      const file = this.o.filename;
      if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
      const db = await new Promise<Sqlite3Database>((resolve, reject) => {
        const d = new sqlite.Database(file, sqlite.OPEN_READWRITE | sqlite.OPEN_CREATE, (err) => (err !== null ? reject(err) : resolve(d)));
      });
      db.configure('busyTimeout', this.o.queryTimeout * 1000);
      await new Promise<void>((resolve, reject) => db.run('PRAGMA journal_mode=WAL', [], (err) => (err !== null ? reject(err) : resolve())));
      return db;
    })();
    return this.db;
  }

  async all(sql: string, params: readonly unknown[]): Promise<Row[]> {
    const db = await this.open();
    return new Promise((resolve, reject) => db.all(sql, [...params], (err, rows) => (err !== null ? reject(err) : resolve(rows))));
  }

  async run(sql: string, params: readonly unknown[]): Promise<void> {
    const db = await this.open();
    return new Promise((resolve, reject) => db.run(sql, [...params], (err) => (err !== null ? reject(err) : resolve())));
  }

  async close(): Promise<void> {
    const db = await this.db?.catch(() => undefined);
    this.db = undefined;
    if (db !== undefined) await new Promise<void>((resolve) => db.close(() => resolve()));
  }
}

export class Sqlite3Store extends SqlStore {
  constructor(o: ChatOptions['store']) {
    super(new Sqlite3Connection(o), o.tablePrefix);
  }
}

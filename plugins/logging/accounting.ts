/**
 * Access and accounting records: one per AUTH (success or failure), one when a
 * session starts and one when it ends, written as JSON lines to a file and,
 * optionally, as rows of an SQLite table this module creates.
 *
 * Records never hold a secret: the session-id is masked and free texts
 * (reasons) go through the same masking as log lines.
 */

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import pino from 'pino';

type Destination = ReturnType<typeof pino.destination>;

export interface AuthRecord {
  type: 'auth';
  time: string;
  result: 'success' | 'failure';
  /** The MSRP status of the answer (200, 401, 403…). */
  status: number;
  reason: string;
  user: string | null;
  domain: string | null;
  remoteAddress: string;
  remotePort: number;
  transport: string;
  connection: string;
  /** The session issued (masked), on success. */
  session: string | null;
}

/** What the session start and end records both say: the session and its owning client. */
export interface SessionFields {
  /** The session-id, masked. */
  session: string;
  user: string;
  domain: string;
  connection: string;
  clientAddress: string;
  clientPort: number;
  transport: string;
}

export interface SessionStartRecord extends SessionFields {
  type: 'session-start';
  time: string;
  expiresAt: string;
}

export interface SessionEndRecord extends SessionFields {
  type: 'session-end';
  time: string;
  /** The far end's leg, when one was seen (a connection, or the other client of a local hand-over). */
  farAddress: string | null;
  farPort: number | null;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  /** Body bytes and complete messages from the owning client outward, and toward it. */
  bytesOut: number;
  messagesOut: number;
  bytesIn: number;
  messagesIn: number;
  closeReason: string;
  closeMessage: string | null;
}

export type AccountingRecord = AuthRecord | SessionStartRecord | SessionEndRecord;

export interface SqlAccountingOptions {
  /** `sqlite3` (a dependency of msrprelay) or `better-sqlite3` (install it yourself). */
  driver: 'sqlite3' | 'better-sqlite3';
  filename: string;
  table: string;
}

export interface AccountingOptions {
  file?: string;
  sql?: SqlAccountingOptions;
}

/** The columns of the SQL table, in insert order. */
const COLUMNS = [
  'time',
  'type',
  'result',
  'status',
  'reason',
  'username',
  'domain',
  'session',
  'connection',
  'client_address',
  'client_port',
  'far_address',
  'far_port',
  'transport',
  'bytes_out',
  'messages_out',
  'bytes_in',
  'messages_in',
  'duration_ms',
  'close_reason',
] as const;

function createTableSql(table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${table} (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time TEXT NOT NULL,
  type TEXT NOT NULL,
  result TEXT,
  status INTEGER,
  reason TEXT,
  username TEXT,
  domain TEXT,
  session TEXT,
  connection TEXT,
  client_address TEXT,
  client_port INTEGER,
  far_address TEXT,
  far_port INTEGER,
  transport TEXT,
  bytes_out INTEGER,
  messages_out INTEGER,
  bytes_in INTEGER,
  messages_in INTEGER,
  duration_ms INTEGER,
  close_reason TEXT
)`;
}

function row(r: AccountingRecord): Array<string | number | null> {
  switch (r.type) {
    case 'auth':
      return [r.time, r.type, r.result, r.status, r.reason, r.user, r.domain, r.session, r.connection, r.remoteAddress, r.remotePort, null, null, r.transport, null, null, null, null, null, null];
    case 'session-start':
      return [r.time, r.type, null, null, null, r.user, r.domain, r.session, r.connection, r.clientAddress, r.clientPort, null, null, r.transport, null, null, null, null, null, null];
    case 'session-end':
      return [
        r.time,
        r.type,
        null,
        null,
        r.closeMessage,
        r.user,
        r.domain,
        r.session,
        r.connection,
        r.clientAddress,
        r.clientPort,
        r.farAddress,
        r.farPort,
        r.transport,
        r.bytesOut,
        r.messagesOut,
        r.bytesIn,
        r.messagesIn,
        r.durationMs,
        r.closeReason,
      ];
  }
}

/** One SQLite connection with an insert statement, whatever the driver. */
interface SqlSink {
  insert(values: Array<string | number | null>): void;
  close(): Promise<void>;
}

/** What this module uses of better-sqlite3 (it ships no types of its own). */
interface BetterSqliteDb {
  exec(sql: string): unknown;
  pragma(sql: string): unknown;
  prepare(sql: string): { run(...params: unknown[]): unknown };
  close(): void;
}

async function openSql(o: SqlAccountingOptions, onError: (e: Error) => void): Promise<SqlSink> {
  const filename = o.filename === ':memory:' ? o.filename : resolve(o.filename);
  if (filename !== ':memory:') mkdirSync(dirname(filename), { recursive: true });
  const insertSql = `INSERT INTO ${o.table} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`;
  if (o.driver === 'better-sqlite3') {
    // Imported by name at run time: better-sqlite3 is an optional peer dependency.
    const specifier = 'better-sqlite3';
    const mod = (await import(specifier)) as { default: new (file: string) => BetterSqliteDb };
    const db = new mod.default(filename);
    db.pragma('journal_mode = WAL');
    db.exec(createTableSql(o.table));
    const stmt = db.prepare(insertSql);
    return {
      insert(values) {
        try {
          stmt.run(...values);
        } catch (e) {
          onError(e as Error);
        }
      },
      async close() {
        db.close();
      },
    };
  }
  const sqlite3 = (await import('sqlite3')).default;
  const db = await new Promise<InstanceType<typeof sqlite3.Database>>((ok, fail) => {
    const d = new sqlite3.Database(filename, (err) => (err === null ? ok(d) : fail(err)));
  });
  await new Promise<void>((ok, fail) => db.exec(createTableSql(o.table), (err) => (err === null ? ok() : fail(err))));
  let pending = Promise.resolve();
  return {
    insert(values) {
      // Rows are written in order; the relay never waits for them.
      pending = pending.then(
        () =>
          new Promise<void>((ok) =>
            db.run(insertSql, values, (err) => {
              if (err !== null) onError(err);
              ok();
            }),
          ),
      );
    },
    async close() {
      await pending;
      await new Promise<void>((ok) => db.close(() => ok()));
    },
  };
}

/** Writes accounting records to the configured sinks; a failing sink is reported, never thrown. */
export class AccountingWriter {
  private readonly file: Destination | undefined;
  private sql: SqlSink | undefined;
  private closed = false;

  private constructor(file: Destination | undefined, private readonly onError: (e: Error) => void) {
    this.file = file;
  }

  static async open(o: AccountingOptions, onError: (e: Error) => void): Promise<AccountingWriter> {
    let file: Destination | undefined;
    if (o.file !== undefined) {
      file = pino.destination({ dest: resolve(o.file), sync: false, mkdir: true, append: true });
      file.on('error', (e: Error) => onError(e));
    }
    const w = new AccountingWriter(file, onError);
    if (o.sql !== undefined) {
      try {
        w.sql = await openSql(o.sql, onError);
      } catch (e) {
        await w.close();
        throw e;
      }
    }
    return w;
  }

  write(record: AccountingRecord): void {
    if (this.closed) return;
    try {
      this.file?.write(`${JSON.stringify(record)}\n`);
    } catch (e) {
      this.onError(e as Error);
    }
    this.sql?.insert(row(record));
  }

  /** Flushes and closes every sink. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const f = this.file;
    if (f !== undefined) await endDestination(f);
    await this.sql?.close();
  }
}

/** Ends a pino destination once what was written is on disk. */
export function endDestination(d: Destination): Promise<void> {
  return new Promise<void>((ok) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      ok();
    };
    d.once('close', finish);
    d.once('error', finish);
    try {
      d.end();
    } catch {
      finish();
    }
  });
}

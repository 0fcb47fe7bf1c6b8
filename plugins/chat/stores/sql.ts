/**
 * The chat history in SQL: two tables, `<prefix>rooms` and `<prefix>messages`, written
 * through the project's SQL drivers (the ones auth-sql reads accounts with: SQLite by
 * default, PostgreSQL), so SQLite and PostgreSQL differ only in placeholders and column types.
 */

import type { DriverName, SqlDriver } from '../../auth-sql/driver.ts';
import { createDriver } from '../../auth-sql/load-driver.ts';
import type { ChatOptions } from '../options.ts';
import type { ChatStore, FileRecord, HistoryQuery, HistoryRecord, Role, RoomRecord } from '../store.ts';

/** A store on the configured driver: no connection is opened until the first query. */
export async function openSqlStore(driver: DriverName, o: ChatOptions['store']): Promise<SqlStore> {
  const ms = o.queryTimeout * 1000;
  const db = await createDriver(
    driver,
    {
      filename: o.filename,
      ...(o.url !== undefined ? { url: o.url } : {}),
      ...(o.host !== undefined ? { host: o.host } : {}),
      ...(o.port !== undefined ? { port: o.port } : {}),
      ...(o.user !== undefined ? { user: o.user } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...(o.database !== undefined ? { database: o.database } : {}),
      poolSize: o.poolSize,
      create: true,
      connectTimeoutMs: ms,
      queryTimeoutMs: ms,
    },
    'chat',
  );
  return new SqlStore(db, o.tablePrefix);
}

/** A table prefix: letters, digits and `_`, so it can be written into SQL. */
export function checkPrefix(prefix: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,40}$/.test(prefix)) throw new Error(`chat: store.tablePrefix ${JSON.stringify(prefix)} is not letters, digits and _`);
  return prefix;
}

export class SqlStore implements ChatStore {
  private readonly rooms: string;
  private readonly messages: string;
  private readonly filesTable: string;

  constructor(
    private readonly db: SqlDriver,
    prefix: string,
  ) {
    this.rooms = `${checkPrefix(prefix)}rooms`;
    this.messages = `${prefix}messages`;
    this.filesTable = `${prefix}files`;
  }

  /** `?` placeholders become the driver's (`$1, $2, …` for PostgreSQL). */
  private q(sql: string): string {
    if (this.db.dialect === 'sqlite') return sql;
    let i = 0;
    return sql.replace(/\?/g, () => this.db.placeholder(i++));
  }

  async open(): Promise<void> {
    const pg = this.db.dialect === 'postgres';
    // SQLite: readers (a joiner's history) do not wait behind the writer of the room's messages.
    if (!pg) await this.db.all('PRAGMA journal_mode=WAL', []);
    const json = pg ? 'JSONB' : 'TEXT';
    await this.db.run(
      `CREATE TABLE IF NOT EXISTS ${this.rooms} (room_key TEXT PRIMARY KEY, uri TEXT NOT NULL, subject TEXT NOT NULL, settings ${json} NOT NULL, roles ${json} NOT NULL, muted ${json} NOT NULL, created_at BIGINT NOT NULL)`,
      [],
    );
    await this.db.run(
      `CREATE TABLE IF NOT EXISTS ${this.messages} (id ${pg ? 'BIGSERIAL PRIMARY KEY' : 'INTEGER PRIMARY KEY AUTOINCREMENT'}, room_key TEXT NOT NULL, message_id TEXT NOT NULL, sender TEXT NOT NULL, nickname TEXT, received_at BIGINT NOT NULL, content_type TEXT NOT NULL, body ${pg ? 'BYTEA' : 'BLOB'} NOT NULL)`,
      [],
    );
    await this.db.run(`CREATE INDEX IF NOT EXISTS ${this.messages}_by_room ON ${this.messages} (room_key, id)`, []);
    // Files kept in rooms (files.ts): added by CREATE IF NOT EXISTS, so an older database gains the table at open.
    await this.db.run(
      `CREATE TABLE IF NOT EXISTS ${this.filesTable} (id TEXT NOT NULL, owner TEXT NOT NULL, room_key TEXT NOT NULL, message_id TEXT NOT NULL, sender TEXT NOT NULL, nickname TEXT, name TEXT, content_type TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, sha1 TEXT NOT NULL, header_bytes INTEGER NOT NULL, received_at BIGINT NOT NULL, PRIMARY KEY (id, owner))`,
      [],
    );
    await this.db.run(`CREATE INDEX IF NOT EXISTS ${this.filesTable}_by_room ON ${this.filesTable} (owner, room_key, received_at)`, []);
  }

  async loadRooms(): Promise<RoomRecord[]> {
    const rows = await this.db.all(`SELECT room_key, uri, subject, settings, roles, muted, created_at FROM ${this.rooms}`, []);
    return rows.map((r) => ({
      key: String(r.room_key),
      uri: String(r.uri),
      subject: String(r.subject),
      settings: parseJson(r.settings) as Record<string, unknown>,
      roles: parseJson(r.roles) as Record<string, Role>,
      muted: parseJson(r.muted) as string[],
      createdAt: new Date(Number(r.created_at)),
    }));
  }

  async saveRoom(room: RoomRecord): Promise<void> {
    const values = [room.key, room.uri, room.subject, JSON.stringify(room.settings), JSON.stringify(room.roles), JSON.stringify(room.muted), room.createdAt.getTime()];
    await this.db.run(
      this.q(
        `INSERT INTO ${this.rooms} (room_key, uri, subject, settings, roles, muted, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ` +
          'ON CONFLICT (room_key) DO UPDATE SET uri = excluded.uri, subject = excluded.subject, settings = excluded.settings, roles = excluded.roles, muted = excluded.muted',
      ),
      values,
    );
  }

  async deleteRoom(key: string): Promise<void> {
    await this.db.run(this.q(`DELETE FROM ${this.messages} WHERE room_key = ?`), [key]);
    await this.db.run(this.q(`DELETE FROM ${this.rooms} WHERE room_key = ?`), [key]);
  }

  async appendMessage(m: HistoryRecord): Promise<void> {
    await this.db.run(
      this.q(`INSERT INTO ${this.messages} (room_key, message_id, sender, nickname, received_at, content_type, body) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      [m.room, m.messageId, m.sender, m.nickname ?? null, m.receivedAt.getTime(), m.contentType, m.body],
    );
  }

  async history(room: string, q: HistoryQuery): Promise<HistoryRecord[]> {
    if (q.limit <= 0) return [];
    const since = q.since !== undefined ? ' AND received_at > ?' : '';
    const params: unknown[] = [room, ...(q.since !== undefined ? [q.since.getTime()] : []), q.limit];
    const rows = await this.db.all(
      this.q(`SELECT message_id, sender, nickname, received_at, content_type, body FROM ${this.messages} WHERE room_key = ?${since} ORDER BY id DESC LIMIT ?`),
      params,
    );
    return rows.reverse().map((r) => ({
      room,
      messageId: String(r.message_id),
      sender: String(r.sender),
      nickname: r.nickname === null || r.nickname === undefined ? undefined : String(r.nickname),
      receivedAt: new Date(Number(r.received_at)),
      contentType: String(r.content_type),
      body: Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body as Uint8Array),
    }));
  }

  async prune(room: string, keep: number): Promise<void> {
    await this.db.run(
      this.q(`DELETE FROM ${this.messages} WHERE room_key = ? AND id <= (SELECT id FROM ${this.messages} WHERE room_key = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`),
      [room, room, keep],
    );
  }

  async addFile(f: FileRecord): Promise<void> {
    await this.db.run(
      this.q(
        `INSERT INTO ${this.filesTable} (id, owner, room_key, message_id, sender, nickname, name, content_type, size, sha256, sha1, header_bytes, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      [f.id, f.owner, f.room, f.messageId, f.sender, f.nickname ?? null, f.name ?? null, f.contentType, f.size, f.sha256, f.sha1, f.headerBytes, f.receivedAt.getTime()],
    );
  }

  async files(room: string, owner: string): Promise<FileRecord[]> {
    const rows = await this.db.all(this.q(`SELECT * FROM ${this.filesTable} WHERE owner = ? AND room_key = ? ORDER BY received_at, id`), [owner, room]);
    return rows.map(fileRow);
  }

  async filesBefore(owner: string, before: Date): Promise<FileRecord[]> {
    const rows = await this.db.all(this.q(`SELECT * FROM ${this.filesTable} WHERE owner = ? AND received_at < ? ORDER BY received_at, id`), [owner, before.getTime()]);
    return rows.map(fileRow);
  }

  async deleteFile(id: string, owner: string): Promise<void> {
    await this.db.run(this.q(`DELETE FROM ${this.filesTable} WHERE id = ? AND owner = ?`), [id, owner]);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

function fileRow(r: Record<string, unknown>): FileRecord {
  const opt = (v: unknown) => (v === null || v === undefined ? undefined : String(v));
  return {
    id: String(r.id),
    owner: String(r.owner),
    room: String(r.room_key),
    messageId: String(r.message_id),
    sender: String(r.sender),
    nickname: opt(r.nickname),
    name: opt(r.name),
    contentType: String(r.content_type),
    size: Number(r.size),
    sha256: String(r.sha256),
    sha1: String(r.sha1),
    headerBytes: Number(r.header_bytes),
    receivedAt: new Date(Number(r.received_at)),
  };
}

function parseJson(v: unknown): unknown {
  // PostgreSQL hands JSONB over parsed; SQLite keeps text.
  return typeof v === 'string' ? JSON.parse(v) : v;
}

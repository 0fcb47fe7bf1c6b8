/**
 * Where rooms and their history survive a restart: a small interface, three drivers
 * (stores/memory.ts for tests and throw-away rooms, stores/sql.ts on the project's SQL drivers:
 * SQLite, the embedded default, or PostgreSQL). A driver's package is imported only when it is configured.
 */

import type { ChatOptions } from './options.ts';

export type Role = 'owner' | 'moderator' | 'member' | 'banned';

/** The room as it is kept: what survives a restart. */
export interface RoomRecord {
  /** The room's key (user-uri.ts userKey of its URI). */
  readonly key: string;
  readonly uri: string;
  readonly subject: string;
  /** The room's own settings (RoomSettings, as JSON). */
  readonly settings: Readonly<Record<string, unknown>>;
  /** User key → role; members are not listed. */
  readonly roles: Readonly<Record<string, Role>>;
  /** User keys that may not send regular messages. */
  readonly muted: readonly string[];
  readonly createdAt: Date;
}

/** A regular message of a room, as it arrived (C-6: its CPIM bytes unchanged). */
export interface HistoryRecord {
  readonly room: string;
  /** The sender's Message-ID. */
  readonly messageId: string;
  /** The sender's URI (its identity in the room). */
  readonly sender: string;
  /** The sender's nickname when it was sent. */
  readonly nickname: string | undefined;
  /** When the focus received it (its timestamp header). */
  readonly receivedAt: Date;
  /** The wrapped content's media type. */
  readonly contentType: string;
  /** The Message/CPIM body as received. */
  readonly body: Buffer;
}

export interface HistoryQuery {
  /** At most this many, the most recent ones. */
  readonly limit: number;
  /** Only those received after this. */
  readonly since?: Date;
}

export interface ChatStore {
  /** Opens the database and creates its tables when missing. */
  open(): Promise<void>;
  loadRooms(): Promise<RoomRecord[]>;
  /** Writes the whole record (insert or replace). */
  saveRoom(room: RoomRecord): Promise<void>;
  /** Removes the room and its history. */
  deleteRoom(key: string): Promise<void>;
  appendMessage(m: HistoryRecord): Promise<void>;
  /** The most recent messages, oldest first. */
  history(room: string, q: HistoryQuery): Promise<HistoryRecord[]>;
  /** Keeps the `keep` most recent messages of a room. */
  prune(room: string, keep: number): Promise<void>;
  close(): Promise<void>;
}

/** A store for the configured driver (no connection is opened until open()). */
export async function createStore(o: ChatOptions['store']): Promise<ChatStore> {
  switch (o.driver) {
    case 'memory':
      return new (await import('./stores/memory.ts')).MemoryStore();
    case 'sqlite3':
    case 'pg':
      return (await import('./stores/sql.ts')).openSqlStore(o.driver, o);
  }
}

/**
 * Where rooms and their history survive a restart: a small interface, three drivers
 * (stores/memory.ts for tests and throw-away rooms, stores/sql.ts on the project's SQL drivers:
 * SQLite, the embedded default, or PostgreSQL); stores/index.ts picks one for the configured
 * driver, importing a driver's package only when it is configured.
 */

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

/** A file sent to a room and kept on disk (files.ts): what /files lists and /get and RFC 5547 pulls find. */
export interface FileRecord {
  /** The focus's id of the file (random; never a name a client gave). */
  readonly id: string;
  readonly room: string;
  /** Which node's folder holds it (files.ts: host and folder), so nodes sharing a store keep apart. */
  readonly owner: string;
  /** The sender's Message-ID. */
  readonly messageId: string;
  /** The sender's URI (its identity in the room). */
  readonly sender: string;
  /** The sender's nickname when it was sent. */
  readonly nickname: string | undefined;
  /** The Content-Disposition filename, made safe to show (never used for a path). */
  readonly name: string | undefined;
  /** The wrapped Content-Type as sent (parameters included). */
  readonly contentType: string;
  /** Content octets (the file itself). */
  readonly size: number;
  /** sha-256 and sha-1 of the content, upper-case hex (RFC 5547 §6 hash selectors). */
  readonly sha256: string;
  readonly sha1: string;
  /** Octets of the sender's CPIM and MIME headers before the content, in the kept body. */
  readonly headerBytes: number;
  readonly receivedAt: Date;
}

export interface ChatStore {
  /** Opens the database and creates its tables when missing. */
  open(): Promise<void>;
  loadRooms(): Promise<RoomRecord[]>;
  /** Writes the whole record (insert or replace). */
  saveRoom(room: RoomRecord): Promise<void>;
  /** Removes the room and its history (its files are removed by files.ts, disk and records together). */
  deleteRoom(key: string): Promise<void>;
  appendMessage(m: HistoryRecord): Promise<void>;
  /** The most recent messages, oldest first. */
  history(room: string, q: HistoryQuery): Promise<HistoryRecord[]>;
  /** Keeps the `keep` most recent messages of a room. */
  prune(room: string, keep: number): Promise<void>;
  addFile(f: FileRecord): Promise<void>;
  /** The owner's files of a room, oldest first. */
  files(room: string, owner: string): Promise<FileRecord[]>;
  /** The owner's files of every room received before `before`, oldest first. */
  filesBefore(owner: string, before: Date): Promise<FileRecord[]>;
  deleteFile(id: string, owner: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Files kept in rooms (the `files` option): a file sent to a room is fanned out like any
 * message (C-6, C-8) and, as its bytes arrive, written to a file of its own in `files.dir`, so
 * that a late joiner can list it (`/files`), fetch it (`/get <id>`) or pull it with an RFC 5547
 * offer (a=file-selector, a=recvonly: §8.2).
 *
 * What counts as a file (isFileMessage): a regular message to the room (not private, not a
 * typing notice, not a command) whose wrapped content has a Content-Disposition of
 * `attachment`, or one with a `filename` parameter, or a media type outside text/* and
 * message/* and the chat-control types (is-composing, conference-info). What of those is kept:
 * a type that `files.types` allows, at most `files.maxFileSize` content octets, ended with `$`.
 * A file aborted (`#`, C-9 timeout, sender gone) or over a limit is not kept: its partial file
 * is deleted at once.
 *
 * On disk: `<dir>/<id>.part` while it arrives, `<dir>/<id>.file` once whole, holding the
 * sender's Message/CPIM body as it arrived (C-6: headers and content unchanged). The id is 64
 * random bits in hex; a client-supplied name never becomes part of a path. The metadata
 * (store.ts FileRecord) is kept in the chat store; `owner` (host and folder) keeps apart the
 * records of nodes that share one store.
 */

import { createHash, randomBytes, type Hash } from 'node:crypto';
import type { LocalReceiver, LocalResponse } from '../../core/index.ts';
import type { ByteRange, MsrpRequestHead } from '../../core/protocol/index.ts';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { Delivery } from './delivery.ts';
import { ChatError } from './errors.ts';
import { formatDateTime, focusHeaderLines, focusPrefix, insertHeaderLines, quoteCpimString, scanCpim, type CpimMessage } from './cpim.ts';
import { InboundMessage, MAX_IN_PROGRESS } from './inbound.ts';
import type { FileKeeper, FileKeeping, FileOrigin, FocusCore, JoinOptions, JoinResult, RoomCore } from './focus-core.ts';
import type { ChatOptions } from './options.ts';
import { Participant } from './participant.ts';
import { buildAnswer, mediaTypeMatches, type FileSelector, type MsrpMedia, type Sdp } from './sdp.ts';
import { Spool } from './spool.ts';
import type { FileRecord } from './store.ts';

export type FilesOptions = ChatOptions['files'];

/** Types that steer the chat and are never files. */
const CONTROL_TYPES = new Set(['application/im-iscomposing+xml', 'application/conference-info+xml']);
/** `/get` files on their way to one session at once, at most. */
const MAX_GETS = 2;

/** A Content-Disposition (RFC 6266 / RFC 2183): its type and parameters, names lower case. */
export interface Disposition {
  readonly type: string;
  readonly params: ReadonlyMap<string, string>;
}

/** Reads a Content-Disposition value; undefined when it is not one. */
export function parseDisposition(value: string): Disposition | undefined {
  const s = value.trim();
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*/.exec(s);
  if (m === null) return undefined;
  const params = new Map<string, string>();
  let i = m[0].length;
  while (i < s.length) {
    if (s[i] !== ';') return { type: m[1]!.toLowerCase(), params };
    i++;
    while (s[i] === ' ' || s[i] === '\t') i++;
    const k = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*/.exec(s.slice(i));
    if (k === null) break;
    i += k[0].length;
    let v = '';
    if (s[i] === '"') {
      i++;
      for (; i < s.length && s[i] !== '"'; i++) v += s[i] === '\\' && i + 1 < s.length ? s[++i] : s[i];
      i++;
    } else {
      const t = /^[^;\s]*/.exec(s.slice(i))![0];
      v = t;
      i += t.length;
    }
    while (s[i] === ' ' || s[i] === '\t') i++;
    params.set(k[1]!.toLowerCase(), v);
  }
  return { type: m[1]!.toLowerCase(), params };
}

/** The wrapped content's Content-Disposition, if it has one. */
export function dispositionOf(m: Pick<CpimMessage, 'contentHeaders'>): Disposition | undefined {
  const h = m.contentHeaders.find(([n]) => n.toLowerCase() === 'content-disposition');
  return h === undefined ? undefined : parseDisposition(h[1]);
}

/** Whether a message to the room is a file (the rule in the file's comment and the docs). */
export function isFileMessage(m: Pick<CpimMessage, 'contentHeaders' | 'mediaType'>): boolean {
  const type = m.mediaType.toLowerCase();
  if (CONTROL_TYPES.has(type)) return false;
  const d = dispositionOf(m);
  if (d !== undefined && (d.type === 'attachment' || d.params.has('filename') || d.params.has('filename*'))) return true;
  return !type.startsWith('text/') && !type.startsWith('message/');
}

/**
 * The name a file is listed under: the Content-Disposition filename (filename* of RFC 5987
 * first), its last path segment, without control characters, at most 200 characters. It is
 * shown and matched (RFC 5547 name selector), never used for a path.
 */
export function fileNameOf(m: Pick<CpimMessage, 'contentHeaders'>): string | undefined {
  const d = dispositionOf(m);
  if (d === undefined) return undefined;
  let name = d.params.get('filename');
  const ext = d.params.get('filename*');
  if (ext !== undefined) {
    const x = /^([A-Za-z0-9_-]+)'[^']*'(.*)$/.exec(ext);
    if (x !== null) {
      try {
        name = x[1]!.toLowerCase() === 'utf-8' ? decodeURIComponent(x[2]!) : x[2]!.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
      } catch {
        // keep the plain filename
      }
    }
  }
  return safeFileName(name);
}

/** A name safe to show: the last segment after `/` or `\`, no controls, not `.` or `..`, at most 200 characters. */
export function safeFileName(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  const base = name.split(/[/\\]/).pop()!.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 200);
  return base === '' || base === '.' || base === '..' ? undefined : base;
}

/** RFC 5547 §6 hash values: colon-separated upper-case hex pairs. */
export function formatHash(hex: string): string {
  return hex.toUpperCase().match(/../g)!.join(':');
}

/**
 * RFC 5547 §5, §6: a selector matches a file when every selector attribute it has matches
 * (name exactly, type by media type, size exactly, hash by sha-1 or sha-256). A selector
 * with no attribute matches nothing: a pull names the file it wants.
 */
export function selectorMatches(sel: FileSelector, f: Pick<FileRecord, 'name' | 'contentType' | 'size' | 'sha1' | 'sha256'>): boolean {
  if (sel.name === undefined && sel.type === undefined && sel.size === undefined && sel.hash === undefined) return false;
  if (sel.name !== undefined && sel.name !== f.name) return false;
  if (sel.type !== undefined && sel.type.split(';')[0]!.trim().toLowerCase() !== f.contentType.split(';')[0]!.trim().toLowerCase()) return false;
  if (sel.size !== undefined && sel.size !== f.size) return false;
  if (sel.hash !== undefined) {
    const want = sel.hash.value.replace(/:/g, '').toUpperCase();
    const have = sel.hash.algorithm === 'sha-1' ? f.sha1 : sel.hash.algorithm === 'sha-256' ? f.sha256 : undefined;
    if (have === undefined || have.toUpperCase() !== want) return false;
  }
  return true;
}

/** The a=file-selector value that describes a kept file (RFC 5547 §6). */
export function formatSelector(f: Pick<FileRecord, 'name' | 'contentType' | 'size' | 'sha1'>): string {
  const parts: string[] = [];
  if (f.name !== undefined) parts.push(`name:"${f.name.replace(/[%"\r\n]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)}"`);
  parts.push(`type:${f.contentType.replace(/\s*;\s*/g, ';').replace(/\s/g, '')}`);
  parts.push(`size:${f.size}`);
  parts.push(`hash:sha-1:${formatHash(f.sha1)}`);
  return parts.join(' ');
}

/** Octets as people read them. */
export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 2 ** 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 2 ** 30) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

/** Counts of what the keeper did. */
export interface FileStats {
  kept: number;
  /** Files not kept: over maxFileSize or maxRoomBytes, a type files.types refuses, or a disk error. */
  refused: number;
  /** Files aborted before their end (`#`, C-9, the sender gone): their partial file deleted. */
  aborted: number;
  /** Files removed for the quota (maxFiles, maxRoomBytes) or the retention. */
  removed: number;
  /** Files sent by /get or an RFC 5547 pull. */
  sent: number;
}

/**
 * One file on its way to disk, fed the sender's CPIM bytes as they arrive (never the whole
 * file in memory: a write stream with back-pressure, write() false until onDrain).
 */
export class FileSink implements FileKeeper {
  private readonly stream: WriteStream;
  private readonly sha256: Hash = createHash('sha256');
  private readonly sha1: Hash = createHash('sha1');
  private bytes = 0;
  private state: 'open' | 'finishing' | 'done' = 'open';
  private failed = false;

  constructor(
    private readonly files: ChatFiles,
    readonly room: RoomCore,
    readonly id: string,
    private readonly m: CpimMessage,
    private readonly origin: FileOrigin,
  ) {
    // 1 MiB of writes may wait before the sender is paused: the disk's pace, without a pause per chunk.
    this.stream = createWriteStream(files.partPath(id), { flags: 'wx', mode: 0o600, highWaterMark: 2 ** 20 });
    this.stream.on('error', (e) => {
      if (this.failed) return;
      this.failed = true;
      this.files.log('chat: a file could not be written', { room: room.uri, error: e.message });
      this.stream.emit('drain');
      if (this.state === 'open') this.discard('refused');
    });
  }

  /** Content octets so far. */
  get contentBytes(): number {
    return Math.max(0, this.bytes - this.m.contentStart);
  }

  /** The sender's bytes, from the first; false asks the sender to pause until onDrain. */
  write(data: Buffer): boolean {
    if (this.state !== 'open' || this.failed) return true;
    const before = this.bytes;
    this.bytes += data.length;
    const from = Math.max(0, this.m.contentStart - before);
    if (from < data.length) {
      const content = data.subarray(from);
      this.sha256.update(content);
      this.sha1.update(content);
    }
    if (this.contentBytes > this.files.options.maxFileSize) {
      // Fanned out, not kept: the partial file goes at once.
      this.discard('refused');
      return true;
    }
    return this.stream.write(data);
  }

  onDrain(fn: () => void): void {
    if (this.state !== 'open' || this.failed || !this.stream.writableNeedDrain) fn();
    else this.stream.once('drain', fn);
  }

  /** The message ended `$`: the file is closed, renamed, recorded and the quota applied. */
  finish(): Promise<FileRecord | undefined> {
    if (this.state !== 'open') return Promise.resolve(undefined);
    return this.files.track(this.finishNow());
  }

  private async finishNow(): Promise<FileRecord | undefined> {
    this.state = 'finishing';
    await new Promise<void>((r) => this.stream.end(() => r()));
    if (this.failed || this.contentBytes > this.files.options.maxRoomBytes || this.bytes < this.m.contentStart) {
      this.state = 'open';
      this.discard('refused');
      return undefined;
    }
    this.state = 'done';
    const rec: FileRecord = {
      id: this.id,
      room: this.room.key,
      owner: this.files.owner,
      messageId: this.origin.messageId,
      sender: this.origin.sender,
      nickname: this.origin.nickname,
      name: fileNameOf(this.m),
      contentType: this.m.contentType,
      size: this.contentBytes,
      sha256: this.sha256.digest('hex').toUpperCase(),
      sha1: this.sha1.digest('hex').toUpperCase(),
      headerBytes: this.m.contentStart,
      receivedAt: this.origin.receivedAt,
    };
    try {
      await rename(this.files.partPath(this.id), this.files.filePath(this.id));
      await this.files.added(this.room, rec);
    } catch (e) {
      this.files.log('chat: a file could not be kept', { room: this.room.uri, error: (e as Error).message });
      this.files.stats.refused++;
      await unlink(this.files.filePath(this.id)).catch(() => undefined);
      return undefined;
    }
    return rec;
  }

  /** Not kept: the partial file is deleted. */
  discard(why: 'aborted' | 'refused' = 'aborted'): void {
    if (this.state !== 'open') return;
    this.state = 'done';
    this.files.stats[why]++;
    this.stream.destroy();
    const path = this.files.partPath(this.id);
    this.stream.once('close', () => void unlink(path).catch(() => undefined));
    if (this.stream.closed) void unlink(path).catch(() => undefined);
  }
}

/**
 * A spool whose bytes are a head in memory and then a range of a kept file, read from disk
 * as the delivery's cursor asks (relay.originate's back-pressure paces the reads).
 */
class DiskSpool extends Spool {
  private closed = false;
  constructor(
    private readonly head: Buffer,
    private readonly fh: FileHandle,
    private readonly offset: number,
    size: number,
    private readonly onClose?: () => void,
  ) {
    super({ memoryBytes: 1024, dir: '.' });
    this.length = head.length + size;
    this.ended = '$';
  }

  override readAt(pos: number): Buffer | Promise<Buffer> | null {
    if (pos >= this.length) return null;
    if (pos < this.head.length) return this.head.subarray(pos);
    const n = Math.min(64 * 1024, this.length - pos);
    const buf = Buffer.allocUnsafe(n);
    return this.fh.read(buf, 0, n, this.offset + pos - this.head.length).then(({ bytesRead }) => {
      if (bytesRead === 0) throw new Error('the kept file is shorter than its record');
      return buf.subarray(0, bytesRead);
    });
  }

  override destroy(): void {
    super.destroy();
    if (this.closed) return;
    this.closed = true;
    void this.fh.close().catch(() => undefined);
    this.onClose?.();
  }
}

/** The files of a focus: keeping, listing, sending, expiring. */
export class ChatFiles implements FileKeeping {
  readonly stats: FileStats = { kept: 0, refused: 0, aborted: 0, removed: 0, sent: 0 };
  /** Which records are this node's: its host and folder. */
  readonly owner: string;
  private readonly dir: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly finishing = new Set<Promise<unknown>>();
  /** Push sessions and the name their selector gave. */
  private readonly pushes = new WeakMap<Participant, string | undefined>();
  /** /get files on their way to each session. */
  private readonly getting = new WeakMap<Participant, number>();
  /** Push sessions and the Message-ID of the file each carries (RFC 5547 §8.7: one per session). */
  private readonly pushed = new WeakMap<Participant, string>();

  constructor(
    private readonly focus: FocusCore,
    readonly options: FilesOptions,
  ) {
    // Under `msrprelay --workers` every worker keeps its files in a folder of its own: a worker
    // that starts clears the files of its folder it has no record of.
    const worker = process.env['MSRPRELAY_WORKER_ID'];
    this.dir = worker !== undefined ? resolve(options.dir, `w${worker}`) : resolve(options.dir);
    this.owner = `${hostname()}:${this.dir}`;
  }

  partPath(id: string): string {
    return join(this.dir, `${checkId(id)}.part`);
  }

  filePath(id: string): string {
    return join(this.dir, `${checkId(id)}.file`);
  }

  log(msg: string, fields: Record<string, unknown>): void {
    this.focus.log.warn(msg, fields);
  }

  /** Creates the folder, removes what a crash left (partial files, files without a record) and expired files. */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const known = new Set((await this.focus.store.filesBefore(this.owner, new Date(8.64e15))).map((f) => f.id));
    for (const name of await readdir(this.dir)) {
      const m = /^([0-9a-f]{16})\.(part|file)$/.exec(name);
      if (m !== null && (m[2] === 'part' || !known.has(m[1]!))) await unlink(join(this.dir, name)).catch(() => undefined);
    }
    await this.sweep();
    const every = Math.min(3600, Math.max(1, this.options.retention > 0 ? this.options.retention / 4 : 3600));
    this.timer = setInterval(() => void this.sweep().catch(() => undefined), every * 1000).unref();
  }

  /** Stops the sweep and waits for the files being recorded. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.finishing, ...this.chains.values()].map((p) => p.catch(() => undefined)));
  }

  /** @internal a finish() under way, waited for at close. */
  track<T>(p: Promise<T>): Promise<T> {
    this.finishing.add(p);
    void p.finally(() => this.finishing.delete(p)).catch(() => undefined);
    return p;
  }

  /**
   * A sink for a regular message to the room whose headers are in, when it is a file that may
   * be kept; undefined otherwise. `total` is the sender's CPIM octets when announced (-1: `*`).
   */
  begin(room: RoomCore, m: CpimMessage, total: number, origin: FileOrigin): FileSink | undefined {
    if (!isFileMessage(m)) return undefined;
    if (!mediaTypeMatches(this.options.types, m.mediaType) || (total >= 0 && total - m.contentStart > Math.min(this.options.maxFileSize, this.options.maxRoomBytes))) {
      this.stats.refused++;
      return undefined;
    }
    return new FileSink(this, room, randomBytes(8).toString('hex'), m, origin);
  }

  /** @internal a whole file: recorded, then the room's quota applied (oldest first). */
  added(room: RoomCore, rec: FileRecord): Promise<void> {
    return this.serial(room.key, async () => {
      await this.focus.store.addFile(rec);
      this.stats.kept++;
      const all = await this.focus.store.files(room.key, this.owner);
      let bytes = all.reduce((n, f) => n + f.size, 0);
      let count = all.length;
      for (const f of all) {
        if (count <= this.options.maxFiles && bytes <= this.options.maxRoomBytes) break;
        await this.remove(f);
        count--;
        bytes -= f.size;
      }
      room.emit('file', rec);
    });
  }

  /** The room's files still kept (not expired), newest first. */
  async list(room: RoomCore): Promise<FileRecord[]> {
    const all = await this.focus.store.files(room.key, this.owner);
    const cutoff = this.cutoff();
    return all.filter((f) => cutoff === undefined || f.receivedAt >= cutoff).reverse();
  }

  /** The text `/files` answers with. */
  async listText(room: RoomCore): Promise<string> {
    const files = await this.list(room);
    if (files.length === 0) return 'No files are kept in this room.';
    const shown = files.slice(0, this.options.list);
    const lines = shown.map((f) => `${f.id}  ${f.name ?? '(no name)'}  ${formatSize(f.size)}  ${f.contentType.split(';')[0]}  from ${f.nickname !== undefined ? `${f.nickname} ` : ''}<${f.sender}>  ${f.receivedAt.toISOString()}`);
    return [`Files (${files.length}${files.length > shown.length ? `, the newest ${shown.length}` : ''}):`, ...lines, 'Fetch one with /get <id>.'].join('\n');
  }

  /**
   * `/get <id>`: the file to the session that asked, as the sender's CPIM with History and File
   * marks. At most MAX_GETS at once per session: each holds an open file until it is written,
   * and a session that asks without reading must not take the process's descriptors (C-17).
   */
  async get(room: RoomCore, p: Participant, id: string): Promise<string | undefined> {
    const n = this.getting.get(p) ?? 0;
    if (n >= MAX_GETS) return `${n} files are on their way to you already; ask again once they are in.`;
    this.getting.set(p, n + 1);
    let closed = false;
    const done = (): void => {
      if (closed) return;
      closed = true;
      this.getting.set(p, (this.getting.get(p) ?? 1) - 1);
    };
    // Until the file is open, the count is this call's; then its spool's, which ends it when it closes.
    let opened: Spool | undefined;
    try {
      const f = (await this.list(room)).find((x) => x.id === id.trim().toLowerCase());
      if (f === undefined) return `No file ${id} here; /files lists them.`;
      opened = await this.openWrapped(f, done);
      if (opened === undefined) return `The file ${id} is gone.`;
    } finally {
      if (opened === undefined) done();
    }
    this.stats.sent++;
    p.deliver(new Delivery(p, opened, 'private', opened.length));
    return undefined;
  }

  /**
   * RFC 5547 §8.2: a pull offer (a=file-selector, a=recvonly) gets the newest kept file the
   * selector matches, sent on this session (Content-Type the file's when the offer takes it
   * bare, else Message/CPIM as /get sends it) once the route is known; the answer is
   * sendonly with the file's selector. No match: ChatError `no-such-file` (SIP 404) whose
   * sdpAnswer declines the stream with port 0 (RFC 3264 §6), for a front that answers so.
   */
  async pull(room: RoomCore, o: JoinOptions, offer: Sdp, media: MsrpMedia, user: string): Promise<JoinResult> {
    const matches = (await this.list(room)).filter((f) => selectorMatches(media.fileSelector!, f));
    const f = matches[0];
    const declined = (): string => declineAnswer(offer, media);
    if (f === undefined) throw Object.assign(new ChatError('no-such-file', 'no kept file matches the file-selector (RFC 5547 §8.2)'), { sdpAnswer: declined() });
    const bare = mediaTypeMatches(media.acceptTypes, f.contentType);
    if (!bare && !media.acceptTypes.includes('message/cpim')) throw Object.assign(new ChatError('not-acceptable', `the pull offer takes neither ${f.contentType.split(';')[0]} nor message/cpim`), { sdpAnswer: declined() });
    const way = this.focus.openSession(media);
    const opened = bare ? await this.openBare(f) : await this.openWrapped(f);
    if (opened === undefined) {
      this.focus.abandon(way);
      throw Object.assign(new ChatError('no-such-file', 'the kept file is gone'), { sdpAnswer: declined() });
    }
    const p = new Participant(room, {
      sessionId: way.sessionId,
      uri: way.uri,
      identity: o.identity,
      user,
      path: media.path,
      caps: { chatAware: false, nicknames: false, privateMessages: false, wrappedTypes: ['*'], maxSize: media.maxSize },
    });
    p.fileSession = 'pull';
    const extra = [`file-selector:${formatSelector(f)}`];
    if (media.fileTransferId !== undefined) extra.push(`file-transfer-id:${media.fileTransferId}`);
    const sdpAnswer = buildAnswer({
      offer,
      accept: media.index,
      path: [way.uri],
      address: way.host,
      port: way.port,
      acceptTypes: [bare ? f.contentType.split(';')[0]!.trim() : 'message/cpim'],
      sessionName: f.name ?? 'file',
      extra,
    });
    this.focus.register(p);
    this.focus.connect(p, way);
    this.stats.sent++;
    p.deliver(new Delivery(p, opened, 'private', opened.length, bare ? f.contentType : 'message/cpim'));
    p.release();
    room.emit('file-pull', p, f);
    return { sdpAnswer, participant: p };
  }

  /**
   * RFC 5547 §8.1: a push offer (a=file-selector, a=sendonly) to the room opens a session on which
   * the client sends its file bare. The focus wraps each such message in Message/CPIM as a chat
   * client would (From the joiner's identity, To the room, DateTime, the SEND's Content-Type and a
   * Content-Disposition of attachment with the selector's name) and takes it as a regular message
   * to the room: fanned out (C-6 … C-9, C-16) and kept as any file. The answer is recvonly, with
   * the offer's selector and file-transfer-id.
   */
  async push(room: RoomCore, o: JoinOptions, offer: Sdp, media: MsrpMedia, user: string): Promise<JoinResult> {
    const way = this.focus.openSession(media);
    const p = new Participant(room, {
      sessionId: way.sessionId,
      uri: way.uri,
      identity: o.identity,
      user,
      path: media.path,
      caps: { chatAware: false, nicknames: false, privateMessages: false, wrappedTypes: [], maxSize: media.maxSize },
    });
    p.fileSession = 'push';
    this.pushes.set(p, safeFileName(media.fileSelector?.name));
    const extra: string[] = [];
    const selector = attributeValue(offer, media, 'file-selector');
    if (selector !== undefined) extra.push(`file-selector:${selector}`);
    if (media.fileTransferId !== undefined) extra.push(`file-transfer-id:${media.fileTransferId}`);
    const sdpAnswer = buildAnswer({
      offer,
      accept: media.index,
      path: [way.uri],
      address: way.host,
      port: way.port,
      acceptTypes: media.acceptTypes.length > 0 ? media.acceptTypes : ['*'],
      maxSize: room.maxMessageSize,
      sessionName: room.subject !== '' ? room.subject : 'file',
      extra,
    });
    this.focus.register(p);
    this.focus.connect(p, way);
    p.release();
    room.emit('file-push', p);
    return { sdpAnswer, participant: p };
  }

  /** A request on a push session: its SENDs carry the file bare (see push()). */
  receivePush(room: RoomCore, p: Participant, req: MsrpRequestHead): LocalReceiver | LocalResponse {
    if (req.method === 'REPORT') return { onEnd: () => undefined };
    if (req.method !== 'SEND') return { status: 403, comment: 'Action-not-allowed' };
    if (!req.hasBody) return { onEnd: () => ({ status: 200 }) };
    const id = req.messageId!;
    const refused = p.refused(id);
    if (refused !== undefined) return refused;
    const ongoing = p.inbound.get(id);
    if (ongoing !== undefined) return ongoing.chunk(shifted(req, ongoing.reportOffset, false));
    if ((req.byteRange?.start ?? 1) !== 1) {
      // As in a room (room.ts receiveSend): the chunks of it that come later get 413 too (R-72).
      p.refuse(id, { status: 413, comment: 'Stop-sending-message' });
      return { status: 413, comment: 'Stop-sending-message' };
    }
    const first = this.pushed.get(p);
    if (first !== undefined && first !== id) {
      // RFC 5547 §8.7: a session carries one file; another "MUST NOT" be sent on it. 413 is how a
      // receiver stops a file it does not take (§8.4, RFC 4975 §7.2): the sender stops and says so.
      // Its first chunk is read (and dropped) so that the answer carries the comment; the later
      // chunks get 413 at once.
      const answer = { status: 413, comment: 'One file per session' };
      p.refuse(id, answer);
      return { onEnd: () => answer };
    }
    // The session's file (refused or not): any other Message-ID on it from now on is refused.
    this.pushed.set(p, id);
    const head = this.pushHead(p, req.contentType ?? 'application/octet-stream');
    const total = req.byteRange?.total ?? -1;
    if (total >= 0 && total + head.length > room.maxMessageSize) {
      // C-17: too large for the room (413), like a message in the chat session.
      p.refuse(id, { status: 413, comment: 'Stop-sending-message' });
      return { status: 413, comment: 'Stop-sending-message' };
    }
    if (p.inbound.size >= MAX_IN_PROGRESS) return { status: 403, comment: 'Too many messages in progress' };
    if (!p.takeRateToken()) return { status: 403, comment: 'Too many messages' };
    const shiftedFirst = shifted(req, head.length, true);
    const msg = new InboundMessage(room, p, shiftedFirst);
    msg.reportOffset = head.length;
    const r = msg.chunk(shiftedFirst);
    if (!('onEnd' in r)) return r;
    let fed = false;
    const feedHead = (delivery: { resume(): void; readonly bytes: number }): void => {
      if (fed) return;
      fed = true;
      r.onBody?.(head, delivery);
    };
    return {
      onBody: (data, delivery) => {
        feedHead(delivery);
        return r.onBody?.(data, delivery);
      },
      onEnd: (flag, delivery) => {
        feedHead(delivery);
        return r.onEnd(flag, delivery);
      },
      onAbort: (reason) => r.onAbort?.(reason),
    };
  }

  /** The Message/CPIM and MIME headers the focus puts before a pushed file. */
  private pushHead(p: Participant, contentType: string): Buffer {
    const from = p.identity.displayName !== undefined && p.identity.displayName !== '' ? `${quoteCpimString(p.identity.displayName)} <${p.identity.uri}>` : `<${p.identity.uri}>`;
    const name = this.pushes.get(p);
    const disposition = name !== undefined ? `attachment; filename="${name.replace(/["\\]/g, (c) => `\\${c}`)}"` : 'attachment';
    return Buffer.from(`From: ${from}\r\nTo: <${p.room.uri}>\r\nDateTime: ${formatDateTime(new Date())}\r\n\r\nContent-Type: ${contentType}\r\nContent-Disposition: ${disposition}\r\n\r\n`, 'utf8');
  }

  /** Removes every file of a room (the room was deleted). */
  async removeRoom(roomKey: string): Promise<void> {
    await this.serial(roomKey, async () => {
      for (const f of await this.focus.store.files(roomKey, this.owner)) await this.remove(f);
    });
  }

  /** Removes expired files (retention), and records whose file is gone. */
  async sweep(): Promise<void> {
    const cutoff = this.cutoff();
    if (cutoff === undefined) return;
    for (const f of await this.focus.store.filesBefore(this.owner, cutoff)) await this.serial(f.room, () => this.remove(f));
  }

  private cutoff(): Date | undefined {
    return this.options.retention > 0 ? new Date(Date.now() - this.options.retention * 1000) : undefined;
  }

  private async remove(f: FileRecord): Promise<void> {
    await unlink(this.filePath(f.id)).catch(() => undefined);
    await this.focus.store.deleteFile(f.id, this.owner);
    this.stats.removed++;
  }

  private serial<T>(key: string, op: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(op);
    this.chains.set(key, next);
    void next.finally(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    }).catch(() => undefined);
    return next;
  }

  /** The sender's CPIM with the focus's lines: Timestamp (when it was sent), Nickname, History, File (C-6). */
  private async openWrapped(f: FileRecord, onClose?: () => void): Promise<Spool | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(this.filePath(f.id), 'r');
    } catch {
      return undefined;
    }
    try {
      const head = Buffer.alloc(f.headerBytes);
      const { bytesRead } = await fh.read(head, 0, f.headerBytes, 0);
      const m = scanCpim(head.subarray(0, bytesRead), true);
      if (typeof m === 'symbol') throw new Error('the kept headers do not scan');
      const ns = this.focus.options.namespace;
      const fields: Array<[string, string]> = [['Timestamp', f.receivedAt.toISOString()]];
      if (f.nickname !== undefined) fields.push(['Nickname', quoteCpimString(f.nickname)]);
      fields.push(['History', 'yes'], ['File', f.id]);
      const lines = focusHeaderLines(focusPrefix(m, ns), ns.uri, fields, m.lineEnding);
      return new DiskSpool(insertHeaderLines(head, m, lines), fh, f.headerBytes, f.size, onClose);
    } catch (e) {
      await fh.close().catch(() => undefined);
      this.log('chat: a kept file could not be read', { file: f.id, error: (e as Error).message });
      return undefined;
    }
  }

  /** The content alone (an RFC 5547 file stream that takes the file's type). */
  private async openBare(f: FileRecord): Promise<Spool | undefined> {
    try {
      return new DiskSpool(Buffer.alloc(0), await open(this.filePath(f.id), 'r'), f.headerBytes, f.size);
    } catch {
      return undefined;
    }
  }
}

/** A push chunk as the focus's wrapped message sees it: `by` octets later, Message/CPIM. */
function shifted(req: MsrpRequestHead, by: number, first: boolean): MsrpRequestHead {
  const br = req.byteRange;
  const byteRange: ByteRange | undefined =
    br === undefined ? undefined : { start: first ? 1 : br.start + by, end: br.end >= 0 ? br.end + by : br.end, total: br.total >= 0 ? br.total + by : br.total };
  return { ...req, contentType: 'message/cpim', byteRange };
}

/** An m-line attribute's value as the offer wrote it. */
function attributeValue(offer: Sdp, media: MsrpMedia, name: string): string | undefined {
  return offer.media[media.index]?.attributes.find(([n]) => n.toLowerCase() === name)?.[1]?.trim();
}

/** An answer that declines every stream of the offer (port 0, RFC 3264 §6). */
function declineAnswer(offer: Sdp, media: MsrpMedia): string {
  const a = buildAnswer({ offer, accept: media.index, path: ['msrp://invalid.invalid:9/0;tcp'], address: '0.0.0.0', port: 0, acceptTypes: ['*'] });
  // Only the m-line and the lines an answer needs: the accepted line is written again with port 0 and no attributes.
  return a
    .split('\r\n')
    .filter((l) => !l.startsWith('a=path:') && !l.startsWith('a=accept-types:') && !l.startsWith('a=setup:') && !/^a=(sendrecv|sendonly|recvonly|inactive)$/.test(l))
    .join('\r\n');
}

/** Ids are the focus's own: 16 hex digits (so a path is never built from anything else). */
function checkId(id: string): string {
  if (!/^[0-9a-f]{16}$/.test(id)) throw new Error(`chat: not a file id: ${JSON.stringify(id.slice(0, 40))}`);
  return id;
}

/**
 * Large messages across nodes (the cluster option): a message whose copy outgrows
 * cluster.maxMessageSize (a file sent to the room, typically) does not fit one entry of the
 * room's stream, so it crosses in pieces, as it arrives:
 *
 * - the sender's node appends a small `file` entry to the room's stream (what the message is:
 *   sender, kind, media type, announced size; the key of its pieces), then writes the sender's
 *   CPIM bytes in pieces of 256 KiB to the Redis stream `<prefix>file:<id>` (XADD, the key's
 *   PEXPIRE renewed at each piece to cluster.fileTtl), and a last entry `e` = `$` (whole) or
 *   `#` (aborted, C-9, or over cluster.maxFileSize);
 * - every other node, on the `file` entry, reads the pieces as they come (XRANGE from the last
 *   piece it read) and hands them to its own recipients as one copy each (C-6: its focus's
 *   lines; C-7, C-10, C-11: room.remoteRecipients), and keeps its own copy on disk when the
 *   message is a file it keeps (files.ts); a reader that sees no piece for fileTtl seconds
 *   ends its copies with `#`.
 *
 * The bound on Redis: a message crosses only up to cluster.maxFileSize octets (beyond: `#`,
 * it stays on its node, counted in stats.tooLarge), and its pieces expire fileTtl seconds
 * after the last one was written. The sender is paused while more than four pieces wait for
 * Redis (its pace, never a reader's); a reader reads the next pieces only once its recipients'
 * spool and its kept file have taken the last ones.
 */

import { randomBytes } from 'node:crypto';
import { messageFields, readMessageFields, type ChatCluster, type MessageMeta } from './cluster.ts';
import { CpimError, INCOMPLETE, insertHeaderLines, scanCpim, type CpimMessage } from './cpim.ts';
import { Delivery } from './delivery.ts';
import type { Crossing, Crossings, FileKeeper, FocusCore, RoomCore } from './focus-core.ts';
import { Spool } from './spool.ts';

/** Bytes of one piece in Redis. */
export const PIECE_BYTES = 256 * 1024;
/** Pieces waiting for Redis before the sender is paused. */
const MAX_PENDING = 4;

export interface ClusterFileStats {
  /** Large messages this node sent across whole. */
  sent: number;
  /** Large messages of other nodes received whole here. */
  received: number;
  /** Large messages over cluster.maxFileSize: they stayed on their node (also in cluster.stats.tooLarge). */
  tooLarge: number;
  /** Crossings that failed on the way (Redis away, pieces expired or aborted). */
  failed: number;
}

/** The pieces of one message this node sends across. */
export class CrossUpload implements Crossing {
  private piece: Buffer[] = [];
  private pieceBytes = 0;
  private bytes = 0;
  private pending = 0;
  private chain: Promise<void> = Promise.resolve();
  private ended = false;
  private failed = false;
  private drainers: Array<() => void> = [];

  constructor(
    private readonly owner: ClusterFiles,
    readonly key: string,
    first: readonly Buffer[],
  ) {
    for (const b of first) this.write(b);
  }

  /** The sender's bytes; false asks it to pause until onDrain (Redis lags). */
  write(data: Buffer): boolean {
    if (this.ended) return true;
    this.bytes += data.length;
    if (this.bytes > this.owner.cluster.options.maxFileSize) {
      this.owner.stats.tooLarge++;
      this.owner.cluster.stats.tooLarge++;
      this.end('#');
      return true;
    }
    this.piece.push(Buffer.from(data));
    this.pieceBytes += data.length;
    while (this.pieceBytes >= PIECE_BYTES) this.flush(PIECE_BYTES);
    return this.pending <= MAX_PENDING;
  }

  onDrain(fn: () => void): void {
    if (this.ended || this.pending <= MAX_PENDING) fn();
    else this.drainers.push(fn);
  }

  /** `$`: the rest and the end go out; `#`: the readers end their copies with `#`. */
  end(flag: '$' | '#'): void {
    if (this.ended) return;
    if (flag === '$' && this.pieceBytes > 0) this.flush(this.pieceBytes);
    this.ended = true;
    this.piece = [];
    this.send(['e', flag], () => {
      if (flag === '$' && !this.failed) this.owner.stats.sent++;
    });
    for (const fn of this.drainers.splice(0)) fn();
  }

  private flush(n: number): void {
    const all = Buffer.concat(this.piece);
    const body = all.subarray(0, n);
    const rest = all.subarray(n);
    this.piece = rest.length > 0 ? [rest] : [];
    this.pieceBytes = rest.length;
    this.send(['b', body]);
  }

  private send(fields: Array<string | Buffer>, then?: () => void): void {
    this.pending++;
    const redis = this.owner.cluster.client;
    const ttl = Math.round(this.owner.cluster.options.fileTtl * 1000);
    this.chain = this.chain.then(async () => {
      if (!this.failed) {
        try {
          await redis.multi().xadd(this.key, '*', ...fields).pexpire(this.key, ttl).exec();
        } catch {
          // Redis is away: the readers see no more pieces and end their copies with `#` after fileTtl.
          this.failed = true;
          this.owner.stats.failed++;
        }
      }
      this.pending--;
      then?.();
      if (this.pending <= MAX_PENDING) for (const fn of this.drainers.splice(0)) fn();
    });
  }
}

/** One large message of another node, read piece by piece for this node's recipients. */
class RemoteLarge {
  private head: Buffer[] = [];
  private headBytes = 0;
  private spool: Spool | undefined;
  private keeper: FileKeeper | undefined;
  private started = false;

  constructor(
    private readonly focus: FocusCore,
    private readonly room: RoomCore,
    private readonly id: string,
    private readonly meta: MessageMeta,
    private readonly total: number,
  ) {}

  /** Takes a piece; resolves once the spool and the kept file have room for the next. */
  async piece(b: Buffer): Promise<boolean> {
    if (!this.started) {
      this.head.push(b);
      this.headBytes += b.length;
      return this.tryStart(false);
    }
    return this.feed(b);
  }

  private async feed(b: Buffer): Promise<boolean> {
    const kept = this.keeper?.write(b) ?? true;
    const spooled = this.spool?.append(b) ?? true;
    if (!kept) await new Promise<void>((r) => this.keeper!.onDrain(r));
    if (!spooled) await new Promise<void>((r) => this.spool!.onRoom(r));
    return true;
  }

  private tryStart(complete: boolean): boolean {
    const buf = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head);
    let m: CpimMessage | typeof INCOMPLETE;
    try {
      m = scanCpim(buf, complete, { maxHeaderBytes: this.focus.options.limits.maxHeaderBytes });
    } catch (e) {
      if (!(e instanceof CpimError)) throw e;
      return false;
    }
    if (m === INCOMPLETE) return this.headBytes <= this.focus.options.limits.maxHeaderBytes * 2;
    this.started = true;
    this.head = [];
    const meta = this.meta;
    const recipients = this.room.remoteRecipients({ id: this.id, kind: meta.kind, mediaType: meta.mediaType, to: meta.to, from: meta.from });
    // C-6: the sender's bytes with this focus's lines (its Timestamp is the sender's node's).
    const lines = this.room.focusLines({ nickname: meta.nickname }, m, meta.receivedAt, false);
    const spool = new Spool(this.focus.options.spool);
    this.spool = spool;
    const total = this.total >= 0 ? this.total + Buffer.byteLength(lines) : -1;
    const copies = recipients.map((r) => ({ r, d: new Delivery(r, spool, meta.kind, total) }));
    // This node keeps its own copy of a file (files.ts), by its own rules.
    if (meta.kind === 'regular' && meta.history) {
      this.keeper = this.focus.files?.begin(this.room, m, this.total, { messageId: meta.messageId, sender: meta.fromUri, nickname: meta.nickname, receivedAt: meta.receivedAt });
      this.keeper?.write(buf);
    }
    spool.append(insertHeaderLines(buf, m, lines));
    for (const { r, d } of copies) r.deliver(d);
    if (copies.length === 0) spool.destroy();
    return true;
  }

  end(flag: '$' | '#'): boolean {
    if (!this.started && flag === '$' && !this.tryStart(true)) flag = '#';
    this.spool?.end(flag);
    const k = this.keeper;
    this.keeper = undefined;
    if (flag === '$') void k?.finish();
    else k?.discard();
    return flag === '$';
  }
}

/** Large messages of the focus across nodes. */
export class ClusterFiles implements Crossings {
  readonly stats: ClusterFileStats = { sent: 0, received: 0, tooLarge: 0, failed: 0 };
  private readonly reading = new Set<Promise<void>>();

  constructor(
    readonly cluster: ChatCluster,
    private readonly focus: FocusCore,
  ) {}

  /**
   * Starts the crossing of a message that outgrew cluster.maxMessageSize, with the bytes so
   * far (the sender's CPIM from its first octet); undefined when it stays on this node (over
   * cluster.maxFileSize, or Redis away).
   */
  begin(room: RoomCore, meta: MessageMeta, first: readonly Buffer[], total: number): CrossUpload | undefined {
    if (total > this.cluster.options.maxFileSize) {
      this.stats.tooLarge++;
      return undefined;
    }
    if (!this.cluster.connected) return undefined;
    const fid = randomBytes(12).toString('hex');
    const key = `${this.cluster.options.redis.keyPrefix}file:${fid}`;
    this.cluster.publishEntry(room, [
      'k', 'file',
      'fk', key,
      'mk', meta.kind,
      ...messageFields(meta),
      'tot', String(total),
    ]);
    return new CrossUpload(this, key, first);
  }

  /** A `file` entry of another node's room stream: read its pieces for this node's sessions. */
  receive(room: RoomCore, id: string, f: ReadonlyMap<string, Buffer>): void {
    const s = (k: string): string => f.get(k)?.toString() ?? '';
    const meta = readMessageFields(f, s('mk'));
    const key = s('fk');
    if (meta === undefined || !key.startsWith(`${this.cluster.options.redis.keyPrefix}file:`)) return;
    const total = Number(s('tot'));
    const task = this.read(room, key, new RemoteLarge(this.focus, room, id, meta, Number.isInteger(total) ? total : -1)).catch((e: unknown) => {
      this.focus.log.warn('chat: a large message of another node could not be read', { room: room.uri, error: (e as Error).message });
    });
    this.reading.add(task);
    void task.finally(() => this.reading.delete(task));
  }

  /** Waits for the readings under way (at close). */
  async close(): Promise<void> {
    await Promise.all([...this.reading]);
  }

  private async read(room: RoomCore, key: string, large: RemoteLarge): Promise<void> {
    const redis = this.cluster.client;
    const ttl = this.cluster.options.fileTtl * 1000;
    let last: string | undefined;
    let heard = Date.now();
    for (;;) {
      if (room.isClosed || !this.cluster.active) {
        large.end('#');
        return;
      }
      let entries: Array<[Buffer, Buffer[]]> = [];
      try {
        entries = await redis.xrangeBuffer(key, last === undefined ? '-' : `(${last}`, '+', 'COUNT', 4);
      } catch {
        // Redis away: wait, as for a piece that has not come yet.
      }
      if (entries.length === 0) {
        if (Date.now() - heard > ttl) {
          this.stats.failed++;
          large.end('#');
          return;
        }
        await new Promise((r) => setTimeout(r, 50).unref());
        continue;
      }
      heard = Date.now();
      for (const [eid, raw] of entries) {
        last = eid.toString();
        for (let i = 0; i + 1 < raw.length; i += 2) {
          const name = raw[i]!.toString();
          if (name === 'b') {
            if (!(await large.piece(raw[i + 1]!))) {
              large.end('#');
              return;
            }
          } else if (name === 'e') {
            const flag = raw[i + 1]!.toString() === '$' ? '$' : '#';
            if (large.end(flag)) this.stats.received++;
            else this.stats.failed++;
            return;
          }
        }
      }
    }
  }
}

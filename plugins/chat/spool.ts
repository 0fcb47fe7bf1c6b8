/**
 * The body of one message on its way to its recipients (C-8: forwarded as it arrives), read by
 * one cursor per recipient, each at its own pace, so a slow recipient never holds back the
 * sender or the others (C-16).
 *
 * Bytes are kept in memory while the bytes not yet read by every cursor fit in `memoryBytes`;
 * past that, new bytes go to a file (opened and unlinked at once, so nothing is left behind)
 * and are read back from it by the cursors that are behind. Bytes every cursor has passed are
 * dropped. The sender is paused (append() returns false) only while more than `memoryBytes`
 * wait to be written to the file: the disk's pace, never a recipient's.
 */

import { closeSync, openSync, read, unlinkSync, write } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { EndFlag } from '../../core/protocol/index.ts';

export interface SpoolOptions {
  /** Bytes not yet read by every cursor kept in memory before new ones go to a file. */
  readonly memoryBytes: number;
  /** Where the file goes. */
  readonly dir: string;
}

interface Segment {
  readonly start: number;
  readonly length: number;
  /** In memory (also while its file write is pending); undefined once on disk only. */
  buf: Buffer | undefined;
  /** Offset in the file; -1 for a segment kept in memory. */
  readonly fileOffset: number;
}

/** At most this many bytes per read from the file. */
const READ_BYTES = 64 * 1024;

export class SpoolCursor {
  pos = 0;
  closed = false;
  constructor(private readonly spool: Spool) {}

  /** Bytes at the cursor: now, after a file read, or null when none have arrived yet. */
  read(): Buffer | Promise<Buffer> | null {
    return this.spool.readAt(this.pos);
  }

  /** Moves past `n` bytes just read. */
  advance(n: number): void {
    this.pos += n;
    this.spool.release();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.spool.removeCursor(this);
  }
}

export class Spool {
  /** Bytes appended so far. */
  length = 0;
  /** The flag that ended the message, once it has. */
  ended: EndFlag | undefined;
  private segments: Segment[] = [];
  private memBytes = 0;
  private pendingWrite = 0;
  private fd: number | undefined;
  private fileSize = 0;
  private writes: Promise<void> = Promise.resolve();
  private readonly cursors = new Set<SpoolCursor>();
  private waiters: Array<() => void> = [];
  private roomWaiters: Array<() => void> = [];
  private destroyed = false;

  constructor(private readonly o: SpoolOptions) {}

  /** Bytes held in memory (for stats and tests). */
  get memoryBytes(): number {
    return this.memBytes;
  }

  /** True once some bytes went to a file. */
  get onDisk(): boolean {
    return this.fd !== undefined;
  }

  cursor(): SpoolCursor {
    const c = new SpoolCursor(this);
    this.cursors.add(c);
    return c;
  }

  /** Appends body bytes; false asks the source to pause until onRoom(). */
  append(data: Buffer): boolean {
    if (this.destroyed || this.ended !== undefined || data.length === 0) return true;
    const start = this.length;
    this.length += data.length;
    if (this.cursors.size === 0) {
      // Nobody reads: nothing to keep.
      this.wake();
      return true;
    }
    if (this.memBytes + data.length <= this.o.memoryBytes) {
      const buf = Buffer.from(data);
      this.segments.push({ start, length: buf.length, buf, fileOffset: -1 });
      this.memBytes += buf.length;
    } else {
      this.toFile(start, Buffer.from(data));
    }
    this.wake();
    return this.pendingWrite <= this.o.memoryBytes;
  }

  /** Calls `fn` once the file has caught up (after append() returned false). */
  onRoom(fn: () => void): void {
    if (this.pendingWrite <= this.o.memoryBytes) fn();
    else this.roomWaiters.push(fn);
  }

  end(flag: EndFlag): void {
    if (this.ended !== undefined) return;
    this.ended = flag;
    this.wake();
    // Every reader went away before the end (recipients that left mid-message): nobody will close the file.
    if (this.cursors.size === 0) this.destroy();
  }

  /** Calls `fn` once, at the next append or end. */
  notify(fn: () => void): void {
    this.waiters.push(fn);
  }

  /**
   * The whole body, when the message has ended `$` and is one segment in memory (a message
   * that arrived in one chunk): every recipient's copy is written from this one Buffer.
   */
  whole(): Buffer | undefined {
    if (this.ended !== '$' || this.segments.length !== 1) return undefined;
    const seg = this.segments[0]!;
    return seg.start === 0 && seg.length === this.length && seg.fileOffset === -1 ? seg.buf : undefined;
  }

  /** @internal */
  readAt(pos: number): Buffer | Promise<Buffer> | null {
    if (pos >= this.length) return null;
    const seg = this.find(pos);
    if (seg === undefined) throw new Error(`spool: byte ${pos} was released`);
    const off = pos - seg.start;
    if (seg.buf !== undefined) return seg.buf.subarray(off);
    const n = Math.min(READ_BYTES, seg.length - off);
    const fd = this.fd!;
    return new Promise<Buffer>((resolve, reject) => {
      const buf = Buffer.allocUnsafe(n);
      read(fd, buf, 0, n, seg.fileOffset + off, (err, got) => (err !== null ? reject(err) : resolve(buf.subarray(0, got))));
    });
  }

  /** @internal drops segments every cursor has passed. */
  release(): void {
    let min = this.length;
    for (const c of this.cursors) if (c.pos < min) min = c.pos;
    let drop = 0;
    while (drop < this.segments.length && this.segments[drop]!.start + this.segments[drop]!.length <= min) {
      const s = this.segments[drop]!;
      if (s.buf !== undefined && s.fileOffset === -1) this.memBytes -= s.length;
      drop++;
    }
    if (drop > 0) this.segments.splice(0, drop);
  }

  /** @internal */
  removeCursor(c: SpoolCursor): void {
    this.cursors.delete(c);
    this.release();
    if (this.cursors.size === 0 && this.ended !== undefined) this.destroy();
  }

  /** Frees memory and the file; cursors read nothing more. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.segments = [];
    this.memBytes = 0;
    this.waiters = [];
    const fd = this.fd;
    if (fd !== undefined) {
      void this.writes.finally(() => {
        try {
          closeSync(fd);
        } catch {
          // already closed: nothing to free
        }
      });
    }
    for (const fn of this.roomWaiters.splice(0)) fn();
  }

  private find(pos: number): Segment | undefined {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = segs[mid]!;
      if (pos < s.start) hi = mid - 1;
      else if (pos >= s.start + s.length) lo = mid + 1;
      else return s;
    }
    return undefined;
  }

  private toFile(start: number, buf: Buffer): void {
    if (this.fd === undefined) {
      const path = join(this.o.dir, `msrprelay-chat-${process.pid}-${randomBytes(8).toString('hex')}.spool`);
      this.fd = openSync(path, 'w+', 0o600);
      // Unlinked at once: the file lives as long as its descriptor, and no crash leaves it.
      unlinkSync(path);
    }
    const fd = this.fd;
    const seg: Segment = { start, length: buf.length, buf, fileOffset: this.fileSize };
    this.fileSize += buf.length;
    this.segments.push(seg);
    this.pendingWrite += buf.length;
    this.writes = this.writes.then(
      () =>
        new Promise<void>((resolve) => {
          if (this.destroyed) return resolve();
          write(fd, buf, 0, buf.length, seg.fileOffset, (err) => {
            this.pendingWrite -= buf.length;
            // On a write error the segment stays in memory: slower, never wrong.
            if (err === null) seg.buf = undefined;
            if (this.pendingWrite <= this.o.memoryBytes) for (const fn of this.roomWaiters.splice(0)) fn();
            resolve();
          });
        }),
    );
  }

  private wake(): void {
    const w = this.waiters;
    if (w.length === 0) return;
    this.waiters = [];
    for (const fn of w) fn();
  }
}

/**
 * One Writer per connection: it serialises what the relay sends on that socket.
 *
 * Two kinds of output share the socket:
 * - control frames: complete responses and REPORTs (small, written at once);
 * - streams: forwarded requests whose body arrives slice by slice from another
 *   connection and is written as it comes (R-71: stream, don't store).
 *
 * One stream is active at a time; others wait (their sources are paused, so a
 * waiting stream holds at most one slice). A control frame never waits behind a
 * SEND body: the active SEND chunk is interrupted at the current byte with `+`
 * and resumed later with a new transaction id and a continuing Byte-Range
 * (R-67, RFC 4975 §7.1.1). Streams of different sessions take turns every
 * FAIRNESS_BYTES by the same mechanism.
 *
 * On a message-oriented transport (MsrpStream.messageMode, W-3) every frame leaves in
 * one write(): a piece's head, body and end-line are gathered and written together, and a
 * piece is ended with `+` (the same interruption, W-4) before it would pass the transport's
 * maximum message size, so a long chunk reaches the peer cut into pieces it can take.
 */

import { formatEndLine, newTransactionId } from '../protocol/message.ts';
import type { EndFlag } from '../protocol/framer.ts';
import type { MsrpStream } from '../transport/stream.ts';

/** a SEND stream yields to a waiting one after this many body bytes. */
export const FAIRNESS_BYTES = 256 * 1024;

/** The empty queue every writer and stream shares until something is queued (never written to). */
const NONE: never[] = Object.freeze([]) as unknown as never[];

/** Writes shorter than this are gathered into one writev per tick (see Writer.out). */
const GATHER_LIMIT = 4096;

export interface OutStreamEvents {
  /** A piece with this tid starts on the wire (register the transaction before any response can come). */
  onPieceStart(tid: string, bodyOffset: number): void;
  /** A piece ended with this flag after `bytes` body bytes (start the per-hop timer, R-62). */
  onPieceEnd(tid: string, flag: EndFlag, bodyOffset: number, bytes: number): void;
  /** The stream can take body again (it became active, or the socket drained). */
  onWritable(): void;
  /** The stream's last end-line is written. */
  onFinished(flag: EndFlag, totalBytes: number): void;
  /** The connection closed under the stream before it finished. */
  onDropped?(): void;
}

/** Renders the start line and headers of a piece starting `bodyOffset` bytes into the chunk's body. */
export interface HeadRenderer {
  head(tid: string, bodyOffset: number): string;
}

/**
 * A forwarded request on its way out. `head(tid, bodyOffset)` renders the start line
 * and headers for a piece starting `bodyOffset` bytes into this chunk's body, so an
 * interrupted SEND resumes with a Byte-Range that continues where it stopped.
 */
export class OutStream {
  readonly interruptible: boolean;
  readonly hasBody: boolean;
  readonly events: OutStreamEvents;
  private readonly render: HeadRenderer;

  /** @internal writer state */
  state: 'new' | 'queued' | 'active' | 'done' = 'new';
  /** @internal tid of the piece on the wire (or next to go). */
  tid: string;
  /** @internal body bytes written so far (all pieces). */
  sent = 0;
  /** @internal body bytes in the current piece. */
  pieceBytes = 0;
  /** @internal head of the current piece written? */
  headWritten = false;
  /** @internal bytes since this stream became active (fairness). */
  sinceActive = 0;
  /** @internal slices that arrived while not active (at most one, as the source pauses). */
  held: Buffer[] = NONE;
  /** @internal the end flag, when it arrived while not active. */
  heldEnd: EndFlag | undefined;
  /** @internal its source said it has nothing to write for now (Writer.idle), and wrote nothing since. */
  sourceIdle = false;

  constructor(o: { tid: string; interruptible: boolean; hasBody: boolean; render: HeadRenderer; events: OutStreamEvents }) {
    this.tid = o.tid;
    this.interruptible = o.interruptible;
    this.hasBody = o.hasBody;
    this.render = o.render;
    this.events = o.events;
  }

  /** @internal */
  renderHead(): string {
    return this.render.head(this.tid, this.sent);
  }
}

/** The Writer of a stream, for the one 'drain' listener all writers share. */
const kWriter = Symbol('msrprelay.writer');
type WrittenSocket = MsrpStream & { [kWriter]: Writer };

/** Room kept in a message for the end-line of a piece (`\r\n-------` + a 32-character tid + flag + CRLF). */
const END_LINE_ROOM = 2 + 7 + 32 + 1 + 2;

function onDrain(this: WrittenSocket): void {
  const w = this[kWriter];
  const a = w.activeStream;
  if (a !== undefined) a.events.onWritable();
  w.drained();
}

function flushWriter(w: Writer): void {
  w.flush();
}

export class Writer {
  private readonly socket: MsrpStream;
  /** Message mode (W-3): the largest frame one write() may carry; 0 for a byte stream. */
  private readonly maxMessage: number;
  /** Message mode: the parts of the piece being gathered, and their size. */
  private parts: Array<Buffer | string> = NONE;
  private partsSize = 0;
  private active: OutStream | undefined;
  /** Streams queued behind the active one; the shared empty array until the first one. */
  private waiting: OutStream[] = NONE;
  /** Control frames held while a non-interruptible stream is active; likewise. */
  private heldControl: Buffer[] = NONE;
  private closed = false;
  /** True while writes of this tick are gathered (see out()). */
  private corked = false;
  /** Called at the next 'drain' (whenDrained); the shared empty array until the first one. */
  private drainWaiters: Array<() => void> = NONE;

  constructor(socket: MsrpStream) {
    this.socket = socket;
    this.maxMessage = socket.messageMode?.maxMessageSize ?? 0;
    (socket as WrittenSocket)[kWriter] = this;
    socket.on('drain', onDrain);
  }

  /** @internal for the shared drain listener */
  get activeStream(): OutStream | undefined {
    return this.active;
  }

  /** @internal ends the writes gathered this tick (see out()) */
  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork?.();
  }

  /** Calls `fn` once at the socket's next 'drain' (never when it closes first). */
  whenDrained(fn: () => void): void {
    if (this.closed) return;
    if (this.drainWaiters === NONE) this.drainWaiters = [];
    this.drainWaiters.push(fn);
  }

  /** @internal for the shared drain listener */
  drained(): void {
    if (this.drainWaiters.length === 0) return;
    const ws = this.drainWaiters;
    this.drainWaiters = NONE;
    for (const fn of ws) fn();
  }

  /** True when the socket has room (below its high-water mark). */
  get writable(): boolean {
    return !this.closed && !this.socket.writableNeedDrain;
  }

  get isIdle(): boolean {
    return this.active === undefined && this.waiting.length === 0;
  }

  /**
   * Writes a complete frame (a response or a REPORT) as soon as possible: now, or right
   * after interrupting the active SEND chunk. Returns false when the socket is gone.
   */
  control(frame: Buffer): boolean {
    if (this.closed) return false;
    const a = this.active;
    if (a !== undefined && a.headWritten && a.hasBody) {
      if (!a.interruptible) {
        if (this.heldControl === NONE) this.heldControl = [];
        this.heldControl.push(frame);
        return true;
      }
      this.interrupt(a);
    }
    this.out(frame);
    return true;
  }

  /**
   * A complete request that may not be cut (a bodiless one, or a chunk announced as 2048
   * octets or less: R-67), written at once when no stream holds the socket or waits for it.
   * False when one does: the request must then queue as a stream, behind them, in order.
   * On a message-oriented transport it leaves as one message (W-3), as its stream would.
   */
  whole(frame: Buffer): boolean {
    if (this.closed || this.active !== undefined || this.waiting.length > 0) return false;
    this.out(frame);
    return true;
  }

  /** Queues a stream; it becomes active when the writer is free. */
  open(s: OutStream): void {
    if (this.closed) return;
    if (this.active === undefined) this.activate(s);
    else {
      s.state = 'queued';
      if (this.waiting === NONE) this.waiting = [];
      this.waiting.push(s);
      if (this.active.sourceIdle) this.yieldActive();
    }
  }

  /**
   * The source of a stream has no body bytes for now (a sender that is slow, or stalled,
   * mid-message). While it writes nothing, an interruptible stream gives the socket to the
   * streams that wait: its piece ends with `+` and it goes on later, so one
   * stalled source never holds back the others on the connection.
   */
  idle(s: OutStream): void {
    if (this.closed || s.state === 'done') return;
    s.sourceIdle = true;
    if (s === this.active && this.waiting.length > 0) this.yieldActive();
  }

  /** The active stream, idle, makes way for the waiting ones (when it may be interrupted). */
  private yieldActive(): void {
    const a = this.active;
    if (a === undefined || !a.interruptible || this.waiting.length === 0) return;
    if (a.headWritten) this.interrupt(a);
    a.state = 'queued';
    this.waiting.push(a);
    this.active = undefined;
    this.next();
  }

  /** Body bytes of a stream. Returns false when the source should pause until onWritable. */
  body(s: OutStream, slice: Buffer): boolean {
    if (this.closed || s.state === 'done') return true;
    s.sourceIdle = false;
    if (s !== this.active) {
      if (s.held === NONE) s.held = [];
      s.held.push(slice);
      if (this.active?.sourceIdle === true) this.yieldActive();
      return s === this.active && !this.socket.writableNeedDrain;
    }
    if (this.maxMessage > 0) this.gatherBody(s, slice);
    else this.writeBody(s, slice);
    if (this.waiting.length > 0 && s.interruptible && s.sinceActive >= FAIRNESS_BYTES) {
      // take turns with the streams of other sessions.
      this.interrupt(s);
      s.state = 'queued';
      this.waiting.push(s);
      this.active = undefined;
      this.next();
      return false;
    }
    return !this.socket.writableNeedDrain;
  }

  /** The stream's end-line. */
  end(s: OutStream, flag: EndFlag): void {
    if (this.closed || s.state === 'done') return;
    s.sourceIdle = false;
    if (s !== this.active) {
      s.heldEnd = flag;
      if (this.active?.sourceIdle === true) this.yieldActive();
      return;
    }
    this.finish(s, flag);
    this.active = undefined;
    this.next();
  }

  /**
   * The source of a stream is gone mid-chunk: end what is on the wire with `#` (R-69:
   * never a `$` the sender did not send), or drop it if it never started.
   */
  abort(s: OutStream): void {
    if (s.state === 'done') return;
    if (s === this.active) {
      if (this.closed) {
        s.state = 'done';
        return;
      }
      this.finish(s, '#');
      this.active = undefined;
      this.next();
      return;
    }
    const i = this.waiting.indexOf(s);
    if (i >= 0) this.waiting.splice(i, 1);
    if (s.sent > 0 && !this.closed) {
      // It was interrupted earlier: its message must still be ended.
      s.held = NONE;
      s.heldEnd = '#';
      s.sourceIdle = false;
      if (this.waiting === NONE) this.waiting = [];
      this.waiting.unshift(s);
      if (this.active === undefined) this.next();
      return;
    }
    s.state = 'done';
  }

  /** The socket closed: nothing more is written; streams are dropped. */
  close(): OutStream[] {
    this.closed = true;
    this.parts = NONE;
    const dropped: OutStream[] = [];
    if (this.active !== undefined) dropped.push(this.active);
    dropped.push(...this.waiting);
    for (const s of dropped) s.state = 'done';
    this.active = undefined;
    this.waiting = NONE;
    this.heldControl = NONE;
    this.drainWaiters = NONE;
    return dropped;
  }

  // ------------------------------------------------------------------ internal

  /**
   * Every write goes through here. A forwarded chunk is a head, one or more body
   * slices and an end-line, usually all within one read of the source: the socket
   * is corked on the first write of a tick and uncorked on the next tick, so they
   * leave in one writev instead of one system call each (as Node's http does).
   * Back-pressure is unchanged: write() still answers false past the high-water mark.
   * A large body slice is not gathered: what is pending goes first, then the slice
   * straight to the socket (gathering it would only defer it and pause the source).
   */
  private out(data: Buffer | string): boolean {
    if (this.maxMessage > 0) return this.socket.write(data);
    if (data.length >= GATHER_LIMIT) {
      if (this.corked) this.flush();
      return this.socket.write(data);
    }
    if (!this.corked && this.socket.cork !== undefined) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(flushWriter, this);
    }
    return this.socket.write(data);
  }

  private activate(s: OutStream): void {
    this.active = s;
    s.state = 'active';
    s.sinceActive = 0;
    // An idle stream with nothing to write writes its head with its next byte (writeBody, finish).
    if (!s.headWritten && !(s.sourceIdle && s.held.length === 0 && s.heldEnd === undefined)) this.writeHead(s);
    if (s.held.length > 0) {
      const held = s.held;
      s.held = NONE;
      for (const h of held) {
        if (this.maxMessage > 0) this.gatherBody(s, h);
        else this.writeBody(s, h);
      }
    }
    if (s.heldEnd !== undefined) {
      const flag = s.heldEnd;
      s.heldEnd = undefined;
      this.finish(s, flag);
      this.active = undefined;
      this.next();
      return;
    }
    s.events.onWritable();
  }

  private next(): void {
    while (this.active === undefined && !this.closed) {
      if (this.heldControl.length > 0) {
        for (const f of this.heldControl.splice(0)) this.out(f);
      }
      if (this.waiting.length === 0) return;
      // Streams with something to write go before those whose source is idle.
      const i = this.waiting.findIndex((w) => !w.sourceIdle);
      const s = this.waiting.splice(i === -1 ? 0 : i, 1)[0]!;
      this.activate(s);
    }
  }

  private writeHead(s: OutStream): void {
    s.events.onPieceStart(s.tid, s.sent);
    s.pieceBytes = 0;
    s.headWritten = true;
    if (this.maxMessage > 0) this.gather(s.renderHead());
    else this.out(s.renderHead());
  }

  /** Message mode: a part of the current piece, written with the rest at its end-line. */
  private gather(part: Buffer | string): void {
    if (this.parts === NONE) this.parts = [];
    this.parts.push(part);
    this.partsSize += typeof part === 'string' ? Buffer.byteLength(part) : part.length;
  }

  /** Message mode: the gathered piece leaves as one transport message. */
  private writeGathered(): void {
    const parts = this.parts;
    this.parts = NONE;
    this.partsSize = 0;
    if (parts.length === 0) return;
    const bufs = parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p));
    this.socket.write(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs));
  }

  /**
   * Message mode: body bytes of a piece; an interruptible piece that would not fit in one
   * transport message is ended with `+` where it fills one (W-4), and the rest goes on in
   * new pieces. A piece that may not be cut (announced at 2048 octets or less) is kept whole.
   */
  private gatherBody(s: OutStream, slice: Buffer): void {
    let rest = slice;
    for (;;) {
      if (!s.headWritten) this.writeHead(s);
      const room = this.maxMessage - this.partsSize - END_LINE_ROOM;
      if (!s.interruptible || rest.length <= room) {
        this.addBody(s, rest);
        return;
      }
      if (room > 0) this.addBody(s, rest.subarray(0, room));
      rest = rest.subarray(Math.max(room, 0));
      this.interrupt(s);
    }
  }

  private addBody(s: OutStream, slice: Buffer): void {
    if (slice.length === 0) return;
    this.gather(slice);
    s.sent += slice.length;
    s.pieceBytes += slice.length;
    s.sinceActive += slice.length;
  }

  private writeBody(s: OutStream, slice: Buffer): void {
    if (!s.headWritten) this.writeHead(s);
    this.out(slice);
    s.sent += slice.length;
    s.pieceBytes += slice.length;
    s.sinceActive += slice.length;
  }

  /** end the current piece with `+`; the next body byte opens a new piece with a new tid. */
  private interrupt(s: OutStream): void {
    if (this.maxMessage > 0) {
      this.gather(formatEndLine(s.tid, '+', true));
      this.writeGathered();
    } else {
      this.out(formatEndLine(s.tid, '+', true));
    }
    s.events.onPieceEnd(s.tid, '+', s.sent - s.pieceBytes, s.pieceBytes);
    s.tid = newTransactionId();
    s.headWritten = false;
  }

  private finish(s: OutStream, flag: EndFlag): void {
    if (!s.headWritten) {
      // Interrupted right before its end: the rest of the message is an empty piece
      // (a continuation chunk with no body bytes still carries the real flag).
      this.writeHead(s);
    }
    if (this.maxMessage > 0) {
      this.gather(formatEndLine(s.tid, flag, s.hasBody));
      this.writeGathered();
    } else {
      this.out(formatEndLine(s.tid, flag, s.hasBody));
    }
    s.state = 'done';
    s.events.onPieceEnd(s.tid, flag, s.sent - s.pieceBytes, s.pieceBytes);
    s.events.onFinished(flag, s.sent);
  }
}

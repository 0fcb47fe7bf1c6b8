/**
 * Incremental, binary-safe MSRP framer (RFC 4975 §7.1, §9; RFC.md §1.1–1.4).
 *
 * Feed it Buffers of any size and split. Per message it calls, in order:
 *   onHead(head)   once the start line and header block are complete,
 *   onBody(slice)  zero or more times, as body bytes arrive (never waiting for a whole chunk),
 *   onEnd(flag)    at the end-line `-------<tid>` + `$`, `+` or `#`.
 *
 * Body slices are views into the Buffers passed to push(); nothing is copied on the
 * body path except a tail of at most (end-line length + 2) bytes that might be the
 * start of the end-line and must wait for the next read.
 *
 * Framing errors that make the stream unusable (an unparsable start line, a line or
 * header section over its limit) throw a FramerError; the framer is then dead and the
 * caller answers 400 when it can (the error carries the tid and the headers read so
 * far) and closes. Header-level defects that do not desynchronise the stream (a
 * malformed line, a control character, folding) are reported on the head as
 * `problem`, so the caller can answer 400 and keep the connection.
 */

import { isUtf8 } from 'node:buffer';

export type EndFlag = '$' | '+' | '#';

/** R-88 limits on the header part of a message (the body is the caller's to limit). */
export interface FramerLimits {
  /** Longest start line, CRLF excluded. */
  maxStartLine: number;
  /** Longest header line, CRLF excluded. */
  maxHeaderLine: number;
  /** Largest header section, from the first header to the blank line or end-line. */
  maxHeaderSection: number;
  /** Most header lines in one message. */
  maxHeaders: number;
}

export const DEFAULT_FRAMER_LIMITS: Readonly<FramerLimits> = Object.freeze({
  maxStartLine: 1024,
  maxHeaderLine: 8192,
  maxHeaderSection: 16384,
  maxHeaders: 64,
});

/** A header as received: the name as written and the value with surrounding blanks removed. */
export type RawHeader = [name: string, value: string];

/** The start line and header block of one message. */
export interface FrameHead {
  readonly kind: 'request' | 'response';
  /** The transaction id exactly as received (its grammar is checked by the message layer, R-19). */
  readonly tid: string;
  /** The method token for a request (its grammar is checked by the message layer, R-18); '' for a response. */
  readonly method: string;
  /** The status code for a response; 0 for a request. */
  readonly status: number;
  /** The comment after the status code ('' when absent). */
  readonly comment: string;
  /** Every header line in order of arrival. */
  readonly headers: RawHeader[];
  /** True when a blank line ended the headers, so content (possibly empty) follows. */
  readonly hasBody: boolean;
  /** The first header-level defect found, if any; the stream is still in sync. */
  readonly problem: string | undefined;
}

export interface FrameHandler {
  onHead(head: FrameHead): void;
  onBody(data: Buffer): void;
  onEnd(flag: EndFlag): void;
}

export type FramerErrorKind =
  | 'bad-start-line'
  | 'start-line-too-long'
  | 'header-line-too-long'
  | 'header-section-too-long'
  | 'too-many-headers'
  /** A start or header line ended in a bare LF (R-23, RFC.md §1.1: lines end in CRLF). */
  | 'bare-lf'
  /** A message-oriented transport's message did not hold exactly one frame (W-3). */
  | 'not-one-frame'
  | 'dead';

/** A framing error: the stream cannot be followed any further. */
export class FramerError extends Error {
  readonly kind: FramerErrorKind;
  /** The limit that was exceeded, for the *-too-long / too-many kinds. */
  readonly limit: number | undefined;
  /** The transaction id, when the start line was read. */
  readonly tid: string | undefined;
  /** The kind of message, when the start line was read. */
  readonly messageKind: 'request' | 'response' | undefined;
  /** Headers read before the error (To-Path/From-Path let the caller answer 400). */
  readonly headers: RawHeader[];

  constructor(
    kind: FramerErrorKind,
    message: string,
    extra: { limit?: number; tid?: string; messageKind?: 'request' | 'response'; headers?: RawHeader[] } = {},
  ) {
    super(message);
    this.name = 'FramerError';
    this.kind = kind;
    this.limit = extra.limit;
    this.tid = extra.tid;
    this.messageKind = extra.messageKind;
    this.headers = extra.headers ?? [];
  }
}

const CR = 0x0d;
const LF = 0x0a;
const HTAB = 0x09;
const SP = 0x20;
const COLON = 0x3a;
const DASH = 0x2d;
const DOLLAR = 0x24;
const PLUS = 0x2b;
const HASH = 0x23;
const MSRP_SP = Buffer.from('MSRP ', 'latin1');
/** Blank lines tolerated between messages before the start line is called garbage. */
const MAX_LEADING_CRLF = 4;

const enum State {
  StartLine,
  Headers,
  Body,
  Dead,
}

const EMPTY = Buffer.alloc(0);
/** The headers between messages: never written to (parseStartLine gives each message its own array). */
const NO_HEADERS = Object.freeze([]) as unknown as RawHeader[];
/** No chunks queued: shared until a chunk arrives while paused. */
const NO_CHUNKS = Object.freeze([]) as unknown as Buffer[];

/** True when `b` (0x00–0xFF) is a valid `token` character of a header name (RFC 4975 §9). */
function isTokenByte(b: number): boolean {
  // ALPHA / DIGIT / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
  return (
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x2d ||
    b === 0x2e ||
    b === 0x21 ||
    b === 0x25 ||
    b === 0x2a ||
    b === 0x5f ||
    b === 0x2b ||
    b === 0x60 ||
    b === 0x27 ||
    b === 0x7e
  );
}

function isEndFlag(b: number): boolean {
  return b === DOLLAR || b === PLUS || b === HASH;
}

export class Framer {
  private readonly handler: FrameHandler;
  private readonly limits: FramerLimits;
  private state: State = State.StartLine;
  /** Unconsumed input and the read position in it. */
  private buf: Buffer = EMPTY;
  private off = 0;
  /** Chunks pushed while paused, joined on resume. */
  private queued: Buffer[] = NO_CHUNKS;
  private paused = false;
  private driving = false;

  // Current message.
  private tid = '';
  private kind: 'request' | 'response' = 'request';
  private method = '';
  private status = 0;
  private comment = '';
  private headers: RawHeader[] = NO_HEADERS;
  private headerBytes = 0;
  /** Header lines read, well-formed or not: maxHeaders counts lines, not parsed headers. */
  private headerLines = 0;
  private problem: string | undefined;
  /**
   * The end flag of a bodiless message whose onHead paused the framer: pause() stops events
   * "after the current one", so its onEnd waits for resume() (a caller that pauses in onHead to
   * run an async check must not see onEnd before it resumes).
   */
  private pendingEnd: EndFlag | undefined;
  private leadingCrlf = 0;
  /** `\r\n-------<tid>`: what ends the body. */
  private needle: Buffer = EMPTY;
  /** The first bytes of the end-line without the leading CRLF, to spot a bodiless end. */
  private endLine = '';

  constructor(handler: FrameHandler, limits: Partial<FramerLimits> = {}) {
    this.handler = handler;
    this.limits = { ...DEFAULT_FRAMER_LIMITS, ...limits };
  }

  /** Bytes held by the framer (unconsumed input plus queued chunks): bounded by one read plus a line. */
  get bufferedBytes(): number {
    let n = this.buf.length - this.off;
    for (const q of this.queued) n += q.length;
    return n;
  }

  /**
   * Messages ended so far (each onEnd). With atBoundary, a message-oriented transport checks
   * that one transport message held exactly one MSRP frame (W-3).
   */
  frameEnds = 0;

  /** True when no part of a message is held: the last input ended exactly at an end-line. */
  get atBoundary(): boolean {
    return this.state === State.StartLine && this.off >= this.buf.length && this.queued.length === 0 && this.pendingEnd === undefined && this.pendingChunk === undefined;
  }

  /** True between a head and its end-line. */
  get inBody(): boolean {
    return this.state === State.Body;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Stops delivering events after the current one. Input already pushed is kept;
   * the caller should stop reading its socket until it calls resume().
   */
  pause(): void {
    this.paused = true;
  }

  /** Delivers what was kept while paused, then continues with new input. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    // Called from inside a callback (pause, push, resume in one event): the running drive()
    // loop goes on and joins the queued input when it runs out. Joining here would move
    // `buf` under a reader that still holds offsets into the old one (readBody's end-line).
    if (this.driving) return;
    if (this.queued.length > 0) this.takeQueued();
    this.drive();
  }

  /** Feeds bytes in. Throws FramerError when the stream cannot be framed. */
  push(chunk: Buffer): void {
    if (this.state === State.Dead) throw new FramerError('dead', 'the framer failed earlier; close the connection');
    if (chunk.length === 0) return;
    if (this.paused || this.driving) {
      if (this.queued === NO_CHUNKS) this.queued = [];
      this.queued.push(chunk);
      return;
    }
    const rest = this.buf.length - this.off;
    if (rest === 0) {
      this.buf = chunk;
      this.off = 0;
    } else if (this.state === State.Body) {
      this.joinBodyTail(chunk);
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.off), chunk]);
      this.off = 0;
    }
    this.drive();
  }

  /** Joins the unconsumed input (including a pending joint) with the chunks queued meanwhile. */
  private takeQueued(): void {
    const parts: Buffer[] = [];
    if (this.pendingChunk !== undefined) {
      if (this.off < this.jointTailLen) parts.push(this.buf.subarray(this.off, this.jointTailLen));
      parts.push(this.pendingChunk.subarray(Math.max(0, this.off - this.jointTailLen)));
      this.pendingChunk = undefined;
    } else if (this.off < this.buf.length) {
      parts.push(this.buf.subarray(this.off));
    }
    for (const q of this.queued) parts.push(q);
    this.queued = NO_CHUNKS;
    this.buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    this.off = 0;
  }

  private drive(): void {
    if (this.driving) return;
    this.driving = true;
    try {
      while (!this.paused) {
        if (this.pendingEnd !== undefined) {
          const flag = this.pendingEnd;
          this.pendingEnd = undefined;
          this.frameEnds++;
          this.handler.onEnd(flag);
          continue;
        }
        let progressed: boolean;
        if (this.state === State.StartLine) progressed = this.readStartLine();
        else if (this.state === State.Headers) progressed = this.readHeaderLine();
        else if (this.state === State.Body) progressed = this.readBody();
        else return;
        if (!progressed) {
          if (this.queued.length === 0 || this.paused) break;
          // Input arrived from inside a callback: join it and go on.
          this.takeQueued();
        }
      }
    } catch (e) {
      this.state = State.Dead;
      this.buf = EMPTY;
      this.off = 0;
      this.queued = NO_CHUNKS;
      throw e;
    } finally {
      this.driving = false;
    }
    if (this.off >= this.buf.length) {
      this.buf = EMPTY;
      this.off = 0;
    }
  }

  private fail(kind: FramerErrorKind, message: string, limit?: number): never {
    const started = this.state !== State.StartLine;
    throw new FramerError(kind, message, {
      ...(limit !== undefined ? { limit } : {}),
      ...(started ? { tid: this.tid, messageKind: this.kind, headers: this.headers } : {}),
    });
  }

  // ---------------------------------------------------------------- start line

  private readStartLine(): boolean {
    const b = this.buf;
    let off = this.off;
    // Tolerate a few stray CRLFs between messages.
    while (off + 1 < b.length && b[off] === CR && b[off + 1] === LF) {
      off += 2;
      this.off = off;
      if (++this.leadingCrlf > MAX_LEADING_CRLF) this.fail('bad-start-line', 'too many blank lines before a start line');
    }
    const avail = b.length - off;
    if (avail === 0) return false;
    // A stray CRLF split across two reads: its CR alone is not garbage yet.
    if (avail === 1 && b[off] === CR) return false;
    // Garbage is recognised from its first bytes, without waiting for a full line.
    const probe = Math.min(avail, MSRP_SP.length);
    for (let i = 0; i < probe; i++) {
      if (b[off + i] !== MSRP_SP[i]) this.fail('bad-start-line', 'the start line does not begin with "MSRP "');
    }
    const eol = findCrlf(b, off);
    // R-23, §1.1: lines end in CRLF: waiting for a CRLF that never comes after a bare LF would
    // leave the connection to the header timer. (With no CRLF after `off`, any LF is bare; an
    // LF inside a CRLF-ended start line is a control octet parseStartLine refuses.)
    if (eol === -1 && b.indexOf(LF, off) !== -1) this.fail('bad-start-line', 'the start line has a bare LF (lines end in CRLF)');
    if (eol === -1) {
      // A trailing CR may be the first half of this line's CRLF: it does not count (else a
      // line of exactly the limit would fail or pass depending on where the read split it).
      if (avail - (b[b.length - 1] === CR ? 1 : 0) > this.limits.maxStartLine) {
        this.fail('start-line-too-long', `the start line is longer than ${this.limits.maxStartLine} octets`, this.limits.maxStartLine);
      }
      return false;
    }
    if (eol - off > this.limits.maxStartLine) {
      this.fail('start-line-too-long', `the start line is longer than ${this.limits.maxStartLine} octets`, this.limits.maxStartLine);
    }
    this.parseStartLine(b, off + MSRP_SP.length, eol);
    this.off = eol + 2;
    this.leadingCrlf = 0;
    this.state = State.Headers;
    return true;
  }

  private parseStartLine(b: Buffer, from: number, eol: number): void {
    // transact-id: printable ASCII up to the next SP; its exact grammar is the message layer's.
    let i = from;
    while (i < eol && b[i] !== SP) {
      const c = b[i]!;
      if (c <= SP || c >= 0x7f) this.fail('bad-start-line', 'the transaction id has a control or non-ASCII octet');
      i++;
    }
    if (i === from || i >= eol) this.fail('bad-start-line', 'the start line has no transaction id and method or status');
    const tid = b.toString('latin1', from, i);
    const restStart = i + 1;
    if (restStart >= eol) this.fail('bad-start-line', 'the start line has no method or status');
    // A response: 3DIGIT [SP comment].
    const d0 = b[restStart]!;
    const isDigit = (x: number | undefined) => x !== undefined && x >= 0x30 && x <= 0x39;
    let kind: 'request' | 'response' = 'request';
    if (isDigit(d0) && isDigit(b[restStart + 1]) && isDigit(b[restStart + 2]) && (restStart + 3 === eol || b[restStart + 3] === SP)) {
      kind = 'response';
    }
    this.tid = tid;
    this.kind = kind;
    this.headers = [];
    this.headerBytes = 0;
    this.headerLines = 0;
    this.problem = undefined;
    this.needle = Buffer.from(`\r\n-------${tid}`, 'latin1');
    this.endLine = `-------${tid}`;
    if (kind === 'response') {
      this.status = (d0 - 0x30) * 100 + (b[restStart + 1]! - 0x30) * 10 + (b[restStart + 2]! - 0x30);
      this.method = '';
      this.comment = restStart + 3 < eol ? b.toString('utf8', restStart + 4, eol) : '';
    } else {
      for (let j = restStart; j < eol; j++) {
        const c = b[j]!;
        if (c <= SP || c >= 0x7f) this.fail('bad-start-line', 'the method has a blank, control or non-ASCII octet');
      }
      this.method = b.toString('latin1', restStart, eol);
      this.status = 0;
      this.comment = '';
    }
  }

  // ------------------------------------------------------------------- headers

  private readHeaderLine(): boolean {
    const b = this.buf;
    const off = this.off;
    const eol = findCrlf(b, off);
    const lim = this.limits;
    // R-23, §1.1: a bare LF is not a line end. One inside a value whose line ends in CRLF is
    // a defect of that header (R-22, below); header lines ending in bare LFs would otherwise
    // wait for the header timer: two of them with no CRLF in sight close at once.
    if (eol === -1 && bareLfs(b, off) >= 2) this.fail('bare-lf', 'header lines end in a bare LF, not CRLF');
    if (eol === -1) {
      const avail = b.length - off;
      // As for the start line, a trailing CR is probably half of the CRLF and is not counted.
      if (avail - (b[b.length - 1] === CR ? 1 : 0) > lim.maxHeaderLine) {
        this.fail('header-line-too-long', `a header line is longer than ${lim.maxHeaderLine} octets`, lim.maxHeaderLine);
      }
      if (this.headerBytes + avail > lim.maxHeaderSection) {
        this.fail('header-section-too-long', `the header section is larger than ${lim.maxHeaderSection} octets`, lim.maxHeaderSection);
      }
      return false;
    }
    const len = eol - off;
    if (len > lim.maxHeaderLine) {
      this.fail('header-line-too-long', `a header line is longer than ${lim.maxHeaderLine} octets`, lim.maxHeaderLine);
    }
    this.headerBytes += len + 2;
    if (this.headerBytes > lim.maxHeaderSection) {
      this.fail('header-section-too-long', `the header section is larger than ${lim.maxHeaderSection} octets`, lim.maxHeaderSection);
    }
    this.off = eol + 2;
    if (len === 0) {
      // Blank line: content-stuff follows (RFC 4975 §9).
      this.emitHead(true);
      this.state = State.Body;
      return true;
    }
    // A bodiless message ends with its end-line right after the headers (4975 §7.1).
    if (len === this.endLine.length + 1 && b[off] === DASH && isEndFlag(b[eol - 1]!)) {
      if (b.toString('latin1', off, eol - 1) === this.endLine) {
        const flag = String.fromCharCode(b[eol - 1]!) as EndFlag;
        this.emitHead(false);
        this.state = State.StartLine;
        this.forgetMessage();
        if (this.paused) this.pendingEnd = flag;
        else {
          this.frameEnds++;
          this.handler.onEnd(flag);
        }
        return true;
      }
    }
    // Malformed lines are not kept in `headers` but still count, as the limit is on lines.
    if (this.headerLines >= lim.maxHeaders) {
      this.fail('too-many-headers', `more than ${lim.maxHeaders} header lines`, lim.maxHeaders);
    }
    this.headerLines++;
    this.parseHeaderLine(b, off, eol);
    return true;
  }

  private parseHeaderLine(b: Buffer, off: number, eol: number): void {
    const first = b[off]!;
    if (first === SP || first === HTAB) {
      // no line folding.
      this.problem ??= 'a header line starts with whitespace (folding is not allowed)';
      return;
    }
    let colon = -1;
    let high = false;
    let ctl = false;
    for (let i = off; i < eol; i++) {
      const c = b[i]!;
      if (c === COLON && colon === -1) colon = i;
      if (c >= 0x80) high = true;
      else if ((c < SP && c !== HTAB) || c === 0x7f) ctl = true;
    }
    if (colon <= off) {
      this.problem ??= 'a header line has no "name:"';
      return;
    }
    for (let i = off; i < colon; i++) {
      if (!isTokenByte(b[i]!)) {
        this.problem ??= 'a header name has a character outside the token set';
        return;
      }
    }
    // values are utf8text: no NUL, no control octet but HTAB, valid UTF-8.
    if (ctl) this.problem ??= 'a header has a control character';
    else if (high && !isUtf8(b.subarray(colon + 1, eol))) this.problem ??= 'a header value is not valid UTF-8';
    let vs = colon + 1;
    while (vs < eol && (b[vs] === SP || b[vs] === HTAB)) vs++;
    let ve = eol;
    while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--;
    const name = b.toString('latin1', off, colon);
    const value = high ? b.toString('utf8', vs, ve) : b.toString('latin1', vs, ve);
    this.headers.push([name, value]);
  }

  /**
   * Drops what described the message that just ended: an idle connection must not keep its
   * last head (an AUTH's Authorization value, its paths) nor the end-line needle, which is a
   * slice of a shared 8 KiB allocation pool and would keep the whole pool alive.
   */
  private forgetMessage(): void {
    this.headers = NO_HEADERS;
    this.needle = EMPTY;
    this.endLine = '';
    this.tid = '';
    this.method = '';
    this.comment = '';
    this.problem = undefined;
  }

  private emitHead(hasBody: boolean): void {
    const head: FrameHead = {
      kind: this.kind,
      tid: this.tid,
      method: this.method,
      status: this.status,
      comment: this.comment,
      headers: this.headers,
      hasBody,
      problem: this.problem,
    };
    this.handler.onHead(head);
  }

  // ---------------------------------------------------------------------- body

  /**
   * Joins a body tail kept from the previous read (a possible start of the end-line)
   * with a new chunk without copying the chunk: only the tail and the first
   * end-line-length bytes of the chunk are examined together.
   */
  private joinBodyTail(chunk: Buffer): void {
    const tail = this.buf.subarray(this.off);
    const nlen = this.needle.length;
    if (tail.length + chunk.length <= 4 * (nlen + 3)) {
      this.buf = Buffer.concat([tail, chunk]);
      this.off = 0;
      return;
    }
    // chunk.length >= nlen + 3 here, so any end-line starting inside the tail is complete in `joint`.
    const joint = Buffer.concat([tail, chunk.subarray(0, nlen + 3)]);
    let from = 0;
    for (;;) {
      const idx = joint.indexOf(this.needle, from);
      if (idx === -1 || idx >= tail.length) break;
      const f = joint[idx + nlen]!;
      if (isEndFlag(f) && joint[idx + nlen + 1] === CR && joint[idx + nlen + 2] === LF) {
        // The end-line straddles the two reads: finish this message here, then continue in chunk.
        this.buf = joint;
        this.off = 0;
        this.pendingChunk = chunk;
        this.jointTailLen = tail.length;
        return;
      }
      from = idx + 1;
    }
    // No end-line starts in the tail: the tail is body, and chunk is scanned on its own.
    if (tail.length > 0) this.tailToEmit = Buffer.from(tail);
    this.buf = chunk;
    this.off = 0;
  }

  /**
   * Set by joinBodyTail when an end-line straddles two reads: `buf` is then the joint
   * (tail + the chunk's first bytes) and reading goes on in this chunk once the
   * end-line is consumed; joint offset k >= jointTailLen is chunk offset k - jointTailLen.
   */
  private pendingChunk: Buffer | undefined;
  private jointTailLen = 0;
  /** Set by joinBodyTail: tail bytes known to be body, delivered before the new chunk's bytes. */
  private tailToEmit: Buffer | undefined;

  private readBody(): boolean {
    if (this.tailToEmit !== undefined) {
      const t = this.tailToEmit;
      this.tailToEmit = undefined;
      this.handler.onBody(t);
      return true;
    }
    const b = this.buf;
    const start = this.off;
    const needle = this.needle;
    const nlen = needle.length;
    let from = start;
    for (;;) {
      const idx = b.indexOf(needle, from);
      if (idx === -1) break;
      if (idx + nlen + 3 > b.length) {
        // Possibly the end-line, but its flag has not arrived: keep it for the next read.
        return this.keepTail(start, idx);
      }
      const f = b[idx + nlen]!;
      if (isEndFlag(f) && b[idx + nlen + 1] === CR && b[idx + nlen + 2] === LF) {
        if (idx > start) {
          this.off = idx;
          this.handler.onBody(b.subarray(start, idx));
          if (this.paused) return true;
        }
        this.off = idx + nlen + 3;
        this.state = State.StartLine;
        this.forgetMessage();
        if (this.pendingChunk !== undefined) {
          this.buf = this.pendingChunk;
          this.off -= this.jointTailLen;
          this.pendingChunk = undefined;
        }
        this.frameEnds++;
        this.handler.onEnd(String.fromCharCode(f) as EndFlag);
        return true;
      }
      // A look-alike end-line (another tid, or no valid flag): plain body data (§1.3).
      from = idx + 1;
    }
    // No end-line: hold back only a suffix that could still begin one.
    let hold = b.length;
    const windowStart = Math.max(start, b.length - (nlen + 2));
    let r = b.indexOf(CR, windowStart);
    while (r !== -1) {
      if (this.isNeedlePrefix(b, r)) {
        hold = r;
        break;
      }
      r = b.indexOf(CR, r + 1);
    }
    return this.keepTail(start, hold);
  }

  /** Delivers body bytes [start, hold) and keeps [hold, end) (a small tail) for the next read. */
  private keepTail(start: number, hold: number): boolean {
    const b = this.buf;
    if (hold === start && this.pendingChunk === undefined) {
      // Nothing to deliver; everything left is a possible end-line start.
      return false;
    }
    const body = hold > start ? b.subarray(start, hold) : undefined;
    if (this.pendingChunk !== undefined) {
      // Not expected (joinBodyTail only builds a joint around a valid end-line), but stay exact.
      this.off = hold;
      this.takeQueued();
    } else {
      // Copy the tail so the big read buffer is not retained by it.
      const tail = hold < b.length ? Buffer.from(b.subarray(hold)) : EMPTY;
      this.buf = tail;
      this.off = 0;
    }
    if (body !== undefined) this.handler.onBody(body);
    return body !== undefined;
  }

  /** True when b[r..] is a (possibly complete, up to the flag and CRLF) prefix of the end-line. */
  private isNeedlePrefix(b: Buffer, r: number): boolean {
    const needle = this.needle;
    const n = Math.min(b.length - r, needle.length);
    for (let i = 0; i < n; i++) if (b[r + i] !== needle[i]) return false;
    if (b.length - r <= needle.length) return true;
    // Past the needle: a flag, then CR.
    const f = b[r + needle.length]!;
    if (!isEndFlag(f)) return false;
    if (b.length - r > needle.length + 1 && b[r + needle.length + 1] !== CR) return false;
    return true;
  }
}

/** LFs not preceded by CR from `from` on (called only when no CRLF follows `from`, so all of them). */
function bareLfs(b: Buffer, from: number): number {
  let n = 0;
  for (let i = b.indexOf(LF, from); i !== -1 && n < 2; i = b.indexOf(LF, i + 1)) n++;
  return n;
}

/**
 * The index of the next CRLF at or after `from`, or -1. A numeric search for CR is
 * several times cheaper than a two-octet string needle (which Buffer#indexOf converts
 * on every call); a bare CR is skipped, as the string search would.
 */
function findCrlf(b: Buffer, from: number): number {
  let i = b.indexOf(CR, from);
  while (i !== -1) {
    if (i + 1 >= b.length) return -1;
    if (b[i + 1] === LF) return i;
    i = b.indexOf(CR, i + 1);
  }
  return -1;
}

/**
 * W-3: does `message` (one transport message of a message-oriented transport) hold exactly
 * one MSRP frame, ending at its last octet? Checked before any of it is framed, so nothing
 * of a bad message is forwarded. The frame ends at the first `CRLF -------<tid>` followed by
 * a flag and CRLF (RFC 4975 §7.1: a sender keeps that sequence out of its bodies).
 */
export function isOneFrame(message: Buffer): boolean {
  if (message.length < 12 || message.toString('latin1', 0, 5) !== 'MSRP ') return false;
  const sp = message.indexOf(SP, 5);
  const eol = findCrlf(message, 5);
  if (sp === -1 || eol === -1 || sp > eol) return false;
  const needle = Buffer.from(`\r\n-------${message.toString('latin1', 5, sp)}`, 'latin1');
  for (let i = message.indexOf(needle, eol); i !== -1; i = message.indexOf(needle, i + 1)) {
    const f = i + needle.length;
    if (f + 2 < message.length && isEndFlag(message[f]!) && message[f + 1] === CR && message[f + 2] === LF) return f + 3 === message.length;
  }
  return false;
}

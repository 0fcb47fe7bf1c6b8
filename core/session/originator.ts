/**
 * Requests the relay itself originates (DESIGN.md §3a): a plugin sends a SEND, REPORT,
 * NICKNAME or other request on a connection, or toward the owner of a session, through
 * that connection's Writer (back-pressure, R-67 interruption, W-4 cutting on a
 * message-oriented transport) as a transaction whose source is the relay: R-62's timer
 * runs, and the response, or its absence, is delivered to the plugin. This is how a chat
 * focus fans out its copies (C-1): a request prepared once (prepare()) and sent as copies,
 * each with its own tid, Message-ID and paths.
 */

import type { EndFlag, FrameHead, RawHeader } from '../protocol/framer.ts';
import { formatByteRange, getHeader, isIdent, lowerName, newTransactionId, parseRequestHead, readPaths, type MsrpRequestHead, type Paths } from '../protocol/message.ts';
import { fillRandom, randomBase62 } from '../protocol/random.ts';
import { statusComment } from '../protocol/status.ts';
import type { ConnectionContext, CopyOptions, OriginateOptions, OriginateResult, OutgoingRequest, PrepareOptions, PreparedRequest, SentCopy, SessionInfo } from '../types.ts';
import type { Connection } from './connection.ts';
import { answerKind, hasStarEnd, isInterruptible, PieceRenderer } from './forwarder.ts';
import { peerOf } from './peer.ts';
import { pieceTransaction, type Transaction, type TransactionOrigin, type Transactions } from './transactions.ts';
import { OutStream, type OutStreamEvents } from './writer.ts';

/**
 * The paths of originated requests, read and checked once per route: a plugin sends many
 * requests with the same To-Path and From-Path arrays (a chat focus, a copy per message per
 * participant), and joining and parsing the same URIs again was a seventh of its fan-out.
 * Kept by the To-Path array, with copies of both arrays' items: a caller that changes an
 * array in place, or passes new ones, gets its paths read again.
 */
interface RouteText {
  readonly to: string;
  readonly from: string;
  readonly toItems: readonly string[];
  readonly fromItems: readonly string[];
  readonly paths: Paths;
  /** every To-Path URI has an explicit port (required outside AUTH). */
  readonly ported: boolean;
  /** The two path lines as they leave, for prepared copies (made on the first one). */
  lines: Buffer | undefined;
}
const routes = new WeakMap<readonly string[], RouteText>();

function sameItems(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function routeText(toPath: readonly string[], fromPath: readonly string[], who: string): RouteText {
  const known = routes.get(toPath);
  if (known !== undefined && sameItems(known.toItems, toPath) && sameItems(known.fromItems, fromPath)) return known;
  const to = toPath.join(' ');
  const from = fromPath.join(' ');
  const head: FrameHead = { kind: 'request', tid: '', method: '', status: 0, comment: '', headers: [['To-Path', to], ['From-Path', from]], hasBody: false, problem: undefined };
  let paths: Paths;
  try {
    paths = readPaths(head, 16);
  } catch (e) {
    throw invalid(who, e);
  }
  const r: RouteText = { to, from, toItems: [...toPath], fromItems: [...fromPath], paths, ported: paths.toUris.every((u) => u.port !== undefined), lines: undefined };
  routes.set(toPath, r);
  return r;
}

function invalid(who: string, e: unknown): Error {
  return new Error(`${who}: the request is not valid MSRP: ${e instanceof Error ? e.message : String(e)}`);
}

const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const LINE_BREAK_RE = /[\r\n\0]/;

/**
 * A header the relay is to send: a token for its name, a value on one line. The head of an
 * originated request is rendered from these as given: a CR or LF in a value would end the
 * header there and start another (a path, a second Message-ID) that no check has seen.
 */
function checkHeaderText(headers: readonly (readonly [string, string])[], who: string): void {
  for (const [n, v] of headers) {
    if (!TOKEN_RE.test(n)) throw new Error(`${who}: the header name ${JSON.stringify(n.slice(0, 40))} is not a token`);
    if (LINE_BREAK_RE.test(v)) throw new Error(`${who}: the value of ${n} has a line break in it`);
  }
}

/** Builds and validates the head of an originated request (the same checks as a received one, R-17 … R-29). */
export function originatedHead(o: OriginateOptions): MsrpRequestHead {
  const route = routeText(o.toPath, o.fromPath, 'relay.originate()');
  const headers: RawHeader[] = [['To-Path', route.to], ['From-Path', route.from]];
  if (o.headers !== undefined) {
    checkHeaderText(o.headers, 'relay.originate()');
    for (const [n, v] of o.headers) headers.push([n, v]);
  }
  if (o.contentType !== undefined) checkHeaderText([['Content-Type', o.contentType]], 'relay.originate()');
  const hasBody = o.contentType !== undefined;
  const body = typeof o.body === 'string' ? Buffer.from(o.body) : o.body;
  if (o.method === 'SEND' && getHeader(headers, 'Message-ID') === undefined) headers.push(['Message-ID', randomBase62(16)]);
  if (o.method === 'SEND' && hasBody && getHeader(headers, 'Byte-Range') === undefined) {
    // A whole body has its exact range; a streamed one is open-ended (R-67: `*`).
    headers.push(['Byte-Range', body !== undefined ? formatByteRange({ start: 1, end: body.length, total: body.length }) : '1-*/*']);
  }
  if (hasBody) headers.push(['Content-Type', o.contentType!]);
  const head: FrameHead = { kind: 'request', tid: newTransactionId(), method: o.method, status: 0, comment: '', headers, hasBody, problem: undefined };
  try {
    return parseRequestHead(head, {}, route.paths);
  } catch (e) {
    throw invalid('relay.originate()', e);
  }
}

/** One originated request: its pieces' heads, its transactions, and what the plugin is told. */
class Outgoing extends PieceRenderer implements OutgoingRequest, SentCopy, TransactionOrigin {
  onWritable: (() => void) | undefined;
  /** A prepared copy that took this way: whether its write found room (SentCopy). */
  written = true;
  readonly result: Promise<OriginateResult>;
  private resolve!: (r: OriginateResult) => void;
  private readonly kind: Transaction['kind'] | undefined;
  private readonly stream: OutStream;
  /** Pieces sent and not yet answered; the answer of the last one decides. */
  private open = 0;
  private finished = false;
  private settled = false;
  /** The last write() returned false. */
  private full = false;

  constructor(
    private readonly conn: Connection,
    private readonly transactions: Transactions,
    req: MsrpRequestHead,
  ) {
    const starEnd = hasStarEnd(req);
    super(req, { toPath: req.toPath, fromPath: req.fromPath }, starEnd);
    // with Failure-Report partial no 200 comes; nothing is awaited and no timer runs.
    this.kind = req.failureReport === 'partial' ? undefined : answerKind(req);
    this.result = new Promise((r) => (this.resolve = r));
    const events: OutStreamEvents = {
      onPieceStart: (tid, off) => this.pieceStarted(tid, off),
      onPieceEnd: (tid, _flag, _off, bytes) => this.transactions.pieceEnded(peerOf(this.conn), tid, bytes),
      onWritable: () => this.onWritable?.(),
      onFinished: () => {
        this.finish();
        if (this.full) this.whenRoom();
      },
      onDropped: () => {
        this.finished = true;
        this.done({ status: 408, comment: 'connection closed', headers: [], timedOut: true });
      },
    };
    // The head's own tid (fresh, checked with it) names the first piece.
    this.stream = new OutStream({ tid: req.tid, interruptible: isInterruptible(req, starEnd), hasBody: req.hasBody, render: this, events });
    conn.writer.open(this.stream);
    if (conn.isClosed) this.done({ status: 408, comment: 'connection closed', headers: [], timedOut: true });
  }

  write(data: Buffer): boolean {
    if (this.finished || this.conn.isClosed) return true;
    const ok = this.conn.writer.body(this.stream, data);
    this.full = !ok;
    return ok;
  }

  /** All written after a write() that returned false: onWritable once the connection has room. */
  private whenRoom(): void {
    this.full = false;
    const w = this.conn.writer;
    if (w.writable) queueMicrotask(() => this.onWritable?.());
    else w.whenDrained(() => this.onWritable?.());
  }

  end(flag: EndFlag = '$'): void {
    this.conn.writer.end(this.stream, flag);
  }

  idle(): void {
    if (!this.finished && !this.conn.isClosed) this.conn.writer.idle(this.stream);
  }

  // -- writer events

  private pieceStarted(tid: string, off: number): void {
    const kind = this.kind;
    if (kind === undefined) return;
    this.open++;
    this.transactions.add(peerOf(this.conn), pieceTransaction(this.req, kind, tid, off, { origin: this }));
  }

  private finish(): void {
    this.finished = true;
    if (this.kind === undefined) this.done({ status: 0, comment: '', headers: [], timedOut: false });
    else if (this.open === 0 && this.last !== undefined) this.done(this.last);
  }

  private last: OriginateResult | undefined;

  // -- transaction answers

  settle(status: number, comment: string, headers: readonly RawHeader[], timedOut: boolean): void {
    this.open--;
    const r: OriginateResult = { status, comment: comment === '' ? statusComment(status) : comment, headers, timedOut };
    // An error on any piece decides at once; otherwise the answer to the last piece does.
    if (status !== 200 || timedOut) this.done(r);
    else if (this.finished && this.open === 0) this.done(r);
    else this.last = r;
  }

  private done(r: OriginateResult): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(r);
  }
}

/** Sends a request on `conn` from the relay itself; a whole body is written and ended at once. */
export function originate(conn: Connection, transactions: Transactions, o: OriginateOptions): OutgoingRequest {
  const req = originatedHead(o);
  const out = new Outgoing(conn, transactions, req);
  if (o.body !== undefined || !req.hasBody) {
    if (o.body !== undefined) out.write(typeof o.body === 'string' ? Buffer.from(o.body) : o.body);
    out.end('$');
  }
  return out;
}

// ------------------------------------------------------------------ prepared requests

/** What a copy that awaits no answer settles with once written. */
const NO_ANSWER: OriginateResult = Object.freeze({ status: 0, comment: '', headers: Object.freeze([]) as readonly RawHeader[], timedOut: false });

/** Stand-in paths the head of a prepared request is checked with (each copy's own are checked per route). */
const CHECK_URI = 'msrp://prepared.invalid:1/prepared;tcp';

const MSRP_ = Buffer.from('MSRP ', 'latin1');
const MESSAGE_ID_ = Buffer.from('Message-ID: ', 'latin1');

/** Writes an ident (ASCII, checked) at `at`; returns where it ends. */
function putAscii(f: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) f[at++] = s.charCodeAt(i);
  return at;
}

const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** The tid octets of one prepared copy, from the relay's random pool (protocol/random.ts), zeroed once encoded. */
const tidOctets = Buffer.alloc(16);

/**
 * A new transaction id (R-59: 128 random bits as 32 lower-case hex digits) written at `a`, the
 * start line's, and at `b`, the end-line's: the copy sent whole needs it nowhere else, so it is
 * never made a string.
 */
function putNewTid(f: Buffer, a: number, b: number): void {
  fillRandom(tidOctets, 0, 16);
  for (let i = 0; i < 16; i++) {
    const x = tidOctets[i]!;
    const hi = HEX[x >> 4]!;
    const lo = HEX[x & 15]!;
    f[a++] = hi;
    f[a++] = lo;
    f[b++] = hi;
    f[b++] = lo;
  }
  tidOctets.fill(0);
}

/** A copy written whole with room left, and with the connection full (then its onWritable comes). */
class WrittenCopy implements SentCopy {
  onWritable: (() => void) | undefined = undefined;
  readonly written = false;
  get result(): Promise<OriginateResult> {
    return SETTLED;
  }
}
const SETTLED = Promise.resolve(NO_ANSWER);
/**
 * The copy written whole to a connection with room left, the common case, is one shared object:
 * nothing of it is the copy's own. Its onWritable is never called (none is due), so setting it
 * keeps nothing.
 */
const WRITTEN: SentCopy = {
  written: true,
  get onWritable() {
    return undefined;
  },
  set onWritable(_fn: (() => void) | undefined) {},
  result: SETTLED,
};

/**
 * A request checked once and rendered once but for what each copy has of its own: the
 * start line's tid, the paths (read and checked once per route), the Message-ID and the
 * end-line's tid. A copy that may not be cut (R-67: bodiless, or a chunk of 2048 octets or
 * less) and awaits no answer (Failure-Report partial or no, REPORT) is one Buffer written at
 * once when the connection's Writer is free: no stream, transaction or promise. Any other
 * copy, or one that finds the Writer busy, goes as originate() sends a whole body.
 */
class Prepared implements PreparedRequest {
  /** The checked head; its paths and tid are stand-ins, its headers are those after the Message-ID. */
  private readonly req: MsrpRequestHead;
  private readonly body: Buffer | undefined;
  /** May a copy leave as one frame written at once (see the class comment)? */
  private readonly oneFrame: boolean;
  /** ` METHOD\r\n`, and what follows the Message-ID up to the end-line's tid. */
  private readonly startRest: Buffer;
  private readonly tail: Buffer;

  constructor(
    o: PrepareOptions,
    private readonly connectionOf: (target: ConnectionContext | SessionInfo) => Connection,
    private readonly transactions: Transactions,
  ) {
    const who = 'relay.prepare()';
    const given = o.headers ?? [];
    checkHeaderText(given, who);
    for (const [n] of given) {
      const lower = lowerName(n);
      if (lower === 'to-path' || lower === 'from-path') throw new Error(`${who}: ${n} is given per copy (send())`);
      if (lower === 'message-id') throw new Error(`${who}: Message-ID is given per copy (send(): C-1, a new one for each)`);
      if (lower === 'content-type') throw new Error(`${who}: Content-Type is contentType`);
    }
    if (o.contentType !== undefined) checkHeaderText([['Content-Type', o.contentType]], who);
    if ((o.body !== undefined) !== (o.contentType !== undefined)) {
      throw new Error(`${who}: ${o.body === undefined ? 'a prepared request is sent whole: give its body with its contentType' : 'a body needs its contentType'}`);
    }
    const body = typeof o.body === 'string' ? Buffer.from(o.body) : o.body;
    const hasBody = body !== undefined;
    const headers: RawHeader[] = [['To-Path', CHECK_URI], ['From-Path', CHECK_URI]];
    // A stand-in Message-ID where the request must carry one, so the head is checked with it.
    const idRequired = o.method === 'SEND' || o.method === 'REPORT';
    if (idRequired) headers.push(['Message-ID', 'prepared']);
    for (const [n, v] of given) headers.push([n, v]);
    if (o.method === 'SEND' && hasBody && getHeader(given, 'Byte-Range') === undefined) headers.push(['Byte-Range', formatByteRange({ start: 1, end: body.length, total: body.length })]);
    if (hasBody) headers.push(['Content-Type', o.contentType!]);
    const head: FrameHead = { kind: 'request', tid: 'prepared', method: o.method, status: 0, comment: '', headers, hasBody, problem: undefined };
    let req: MsrpRequestHead;
    try {
      req = parseRequestHead(head, {}, readPaths(head, 16));
    } catch (e) {
      throw invalid(who, e);
    }
    const range = req.byteRange;
    if (o.method === 'SEND' && hasBody && range !== undefined && range.end !== -1 && range.end - range.start + 1 !== body.length) {
      throw new Error(`${who}: Byte-Range ${range.start}-${range.end} is not the body's ${body.length} octets`);
    }
    this.req = { ...req, headers: idRequired ? req.headers.slice(1) : req.headers };
    const awaited = req.failureReport === 'partial' ? undefined : answerKind(req);
    this.oneFrame = awaited === undefined && !isInterruptible(req, hasStarEnd(req));
    let rest = '';
    for (const [n, v] of this.req.headers) rest += `${n}: ${v}\r\n`;
    this.startRest = Buffer.from(` ${o.method}\r\n`, 'latin1');
    const headEnd = Buffer.from(hasBody ? `${rest}\r\n` : rest);
    this.tail = Buffer.concat([headEnd, body ?? Buffer.alloc(0), Buffer.from(hasBody ? '\r\n-------' : '-------', 'latin1')]);
    // The copy of the body in the tail: a caller may reuse its own Buffer once prepare() returned.
    this.body = hasBody ? this.tail.subarray(headEnd.length, headEnd.length + body.length) : undefined;
  }

  send(target: ConnectionContext | SessionInfo, copy: CopyOptions): SentCopy {
    const who = 'PreparedRequest.send()';
    const conn = this.connectionOf(target);
    const route = routeText(copy.toPath, copy.fromPath, who);
    const method = this.req.method;
    if (!route.ported && method !== 'AUTH') throw invalid(who, 'a To-Path URI has no port');
    let mid = copy.messageId;
    if (mid === undefined) {
      if (method === 'SEND') mid = randomBase62(16);
      else if (method === 'REPORT') throw invalid(who, 'REPORT without Message-ID');
    } else if (!isIdent(mid)) throw invalid(who, 'Message-ID is not an ident');
    const w = conn.writer;
    if (this.oneFrame && w.isIdle && !conn.isClosed) {
      const lines = (route.lines ??= Buffer.from(`To-Path: ${route.to}\r\nFrom-Path: ${route.from}\r\n`));
      const n = MSRP_.length + 32 + this.startRest.length + lines.length + (mid === undefined ? 0 : MESSAGE_ID_.length + mid.length + 2) + this.tail.length + 32 + 3;
      const f = Buffer.allocUnsafe(n);
      f.set(MSRP_, 0);
      putNewTid(f, MSRP_.length, n - 35);
      let at = MSRP_.length + 32;
      f.set(this.startRest, at);
      at += this.startRest.length;
      f.set(lines, at);
      at += lines.length;
      if (mid !== undefined) {
        f.set(MESSAGE_ID_, at);
        at = putAscii(f, at + MESSAGE_ID_.length, mid);
        f[at++] = 0x0d;
        f[at++] = 0x0a;
      }
      f.set(this.tail, at);
      // the end-line's tid is in place: its flag
      at += this.tail.length + 32;
      f[at++] = 0x24; // '$'
      f[at++] = 0x0d;
      f[at] = 0x0a;
      if (w.whole(f)) {
        if (w.writable) return WRITTEN;
        const c = new WrittenCopy();
        w.whenDrained(() => c.onWritable?.());
        return c;
      }
    }
    const tid = newTransactionId();
    // Behind the connection's other streams, cut where it may be (R-67, W-4), or awaiting an answer.
    const p = route.paths;
    const req: MsrpRequestHead = { ...this.req, tid, toPath: p.toPath, fromPath: p.fromPath, toUris: p.toUris, fromUris: p.fromUris, messageId: mid, headers: mid === undefined ? this.req.headers : [['Message-ID', mid], ...this.req.headers] };
    const out = new Outgoing(conn, this.transactions, req);
    if (this.body !== undefined) out.written = out.write(this.body);
    out.end('$');
    return out;
  }
}

/** relay.prepare(): checks and renders the request once; `connectionOf` resolves each copy's target. */
export function prepare(o: PrepareOptions, connectionOf: (target: ConnectionContext | SessionInfo) => Connection, transactions: Transactions): PreparedRequest {
  return new Prepared(o, connectionOf, transactions);
}

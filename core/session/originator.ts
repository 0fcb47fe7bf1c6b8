/**
 * Requests the relay itself originates (DESIGN.md §3a): a plugin sends a SEND, REPORT,
 * NICKNAME or other request on a connection, or toward the owner of a session, through
 * that connection's Writer (back-pressure, R-67 interruption, W-4 cutting on a
 * message-oriented transport) as a transaction whose source is the relay: R-62's timer
 * runs, and the response, or its absence, is delivered to the plugin. This is how a chat
 * focus fans out its copies (C-1).
 */

import type { EndFlag, FrameHead, RawHeader } from '../protocol/framer.ts';
import { formatByteRange, getHeader, newTransactionId, parseRequestHead, readPaths, type MsrpRequestHead, type Paths } from '../protocol/message.ts';
import { randomBase62 } from '../protocol/random.ts';
import { statusComment } from '../protocol/status.ts';
import type { OriginateOptions, OriginateResult, OutgoingRequest } from '../types.ts';
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
}
const routes = new WeakMap<readonly string[], RouteText>();

function sameItems(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function routeText(toPath: readonly string[], fromPath: readonly string[]): RouteText {
  const known = routes.get(toPath);
  if (known !== undefined && sameItems(known.toItems, toPath) && sameItems(known.fromItems, fromPath)) return known;
  const to = toPath.join(' ');
  const from = fromPath.join(' ');
  const head: FrameHead = { kind: 'request', tid: '', method: '', status: 0, comment: '', headers: [['To-Path', to], ['From-Path', from]], hasBody: false, problem: undefined };
  let paths: Paths;
  try {
    paths = readPaths(head, 16);
  } catch (e) {
    throw new Error(`relay.originate(): the request is not valid MSRP: ${e instanceof Error ? e.message : String(e)}`);
  }
  const r: RouteText = { to, from, toItems: [...toPath], fromItems: [...fromPath], paths };
  routes.set(toPath, r);
  return r;
}

/** Builds and validates the head of an originated request (the same checks as a received one, R-17 … R-29). */
export function originatedHead(o: OriginateOptions): MsrpRequestHead {
  const route = routeText(o.toPath, o.fromPath);
  const headers: RawHeader[] = [['To-Path', route.to], ['From-Path', route.from]];
  if (o.headers !== undefined) for (const [n, v] of o.headers) headers.push([n, v]);
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
    throw new Error(`relay.originate(): the request is not valid MSRP: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** One originated request: its pieces' heads, its transactions, and what the plugin is told. */
class Outgoing extends PieceRenderer implements OutgoingRequest, TransactionOrigin {
  onWritable: (() => void) | undefined;
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

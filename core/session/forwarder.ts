/**
 * The forwarder: streams the request being read on a connection into its sink, which is
 * the Writer of the next hop's connection (R-71: stream, don't store) or a local endpoint
 * (a plugin that claimed the request, DESIGN.md §3a). It renders each piece's head on the
 * way out (R-58 paths, R-61 headers as received, R-67 Byte-Range of a continuation piece)
 * and turns the Writer's events into transactions.
 *
 *   head decided ─▶ start() ─▶ body() slices ─▶ end() end-line ─▶ 200 (R-56) / local answer
 */

import { isTapped, type RelayHooks } from '../hooks.ts';
import type { EndFlag } from '../protocol/framer.ts';
import { formatByteRange, lowerName, newTransactionId, type MsrpRequestHead } from '../protocol/message.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { ChunkContext, CloseReason, ForwardDirection, LocalDelivery, LocalReceiver, LocalRequest, LocalResponse, PathPair } from '../types.ts';
import type { Connection } from './connection.ts';
import { peerOf as anyPeerOf, type Peer as AnyPeer } from './peer.ts';
import type { Replies } from './replies.ts';
import type { Session } from './session-table.ts';
import { pieceTransaction, type Transaction, type Transactions } from './transactions.ts';
import { OutStream, type HeadRenderer, type OutStreamEvents } from './writer.ts';

/** SEND chunks with more body octets than this are interruptible (range-end `*`). */
export const INTERRUPTIBLE_OVER = 2048;
/** bodies of requests other than SEND. */
export const MAX_NON_SEND_BODY = 10240;

/** Why reading a sender is paused: its next hop is full, or a local endpoint asked. */
const FORWARD = 'forward';
const LOCAL = 'local';

/** A connection's routing state as the router and the forwarder see it. */
export type Peer = AnyPeer<Inbound, Transaction>;
export const peerOf = (c: Connection): Peer => anyPeerOf<Inbound, Transaction>(c);

/** Where a decided request goes. */
export type Sink =
  | {
      kind: 'forward';
      target: Connection;
      session: Session<Connection>;
      direction: ForwardDirection;
      paths: PathPair;
      /** The relay URI the request consumed at its first hop here (REPORT From-Path, R-78). */
      reportFrom: string;
      /** For a hand-over between two sessions of this relay: the sending session. */
      from?: Session<Connection>;
    }
  | {
      kind: 'local';
      receiver: LocalReceiver;
      request: LocalRequest;
      /** From-Path of an end-to-end answer: the relay URIs the request passed, the endpoint's last. */
      replyFrom: readonly string[];
    };

/** The state of the request being read on a connection. */
export interface Inbound {
  readonly req: MsrpRequestHead | undefined;
  /** `holding`: a non-SEND body is read whole (at most 10240 octets, R-29) before the request is decided. */
  mode: 'pending' | 'holding' | 'forward' | 'local' | 'discard' | 'response';
  /** The body of a held request, copied (it is small). */
  held?: Buffer[];
  bodyBytes: number;
  readonly startedAt: number;
  stream?: OutStream;
  forward?: Extract<Sink, { kind: 'forward' }>;
  local?: LocalSink;
  /** The context bodyForwarded taps get, made at the first slice and only when tapped. */
  chunk?: ChunkContext;
  /** The target dropped the stream: answer this status at the end. */
  failedStatus?: number;
  /** The relay failed the request (Failure-Report partial): a REPORT with this status at the end. */
  failedReport?: number;
}

export interface ForwarderDeps {
  config(): RelayConfig;
  hooks(): RelayHooks<unknown>;
  transactions: Transactions;
  replies: Replies;
  /** A thrown exception, for the error hook. */
  report(e: unknown, conn: Connection): void;
}

/** Renders the heads of the pieces of one request leaving with new paths. */
export class PieceRenderer implements HeadRenderer {
  /** To-Path and From-Path as they leave. */
  private readonly prefix: string;
  /** The headers after From-Path, as received. */
  private readonly rest: string;

  constructor(
    protected readonly req: MsrpRequestHead,
    paths: PathPair,
    /** an interruptible chunk: every piece carries its own Byte-Range with range-end `*`. */
    private readonly starEnd: boolean,
  ) {
    this.prefix = `To-Path: ${paths.toPath.join(' ')}\r\nFrom-Path: ${paths.fromPath.join(' ')}\r\n`;
    // Only a first piece that keeps its Byte-Range uses the headers as received; an
    // interruptible chunk's every piece is rendered with its own (head()).
    let rest = '';
    if (!starEnd) for (const [n, v] of req.headers) rest += `${n}: ${v}\r\n`;
    this.rest = rest;
  }

  head(tid: string, off: number): string {
    const req = this.req;
    const blank = req.hasBody ? '\r\n' : '';
    if (off === 0 && !this.starEnd) return `MSRP ${tid} ${req.method}\r\n${this.prefix}${this.rest}${blank}`;
    // A continuation piece (or an interruptible chunk): same headers, Byte-Range starting where the last piece stopped.
    const range = req.byteRange;
    const start = (range?.start ?? 1) + off;
    const br = formatByteRange({ start, end: range !== undefined && range.end !== -1 && !this.starEnd ? range.end : -1, total: range?.total ?? -1 });
    let text = '';
    let placed = false;
    for (const [n, v] of req.headers) {
      const lower = lowerName(n);
      if (lower === 'byte-range') {
        text += `Byte-Range: ${br}\r\n`;
        placed = true;
      } else {
        if (!placed && lower.startsWith('content-')) {
          text += `Byte-Range: ${br}\r\n`;
          placed = true;
        }
        text += `${n}: ${v}\r\n`;
      }
    }
    if (!placed) text += `Byte-Range: ${br}\r\n`;
    return `MSRP ${tid} ${req.method}\r\n${this.prefix}${text}${blank}`;
  }
}

/** Which answers a next hop owes for a request: none for REPORT or Failure-Report no. */
export function answerKind(req: MsrpRequestHead): Transaction['kind'] | undefined {
  return req.method === 'REPORT' ? undefined : req.method === 'SEND' ? (req.failureReport === 'no' ? undefined : 'send') : 'e2e';
}

/** a SEND chunk announced with more than 2048 body octets goes out with range-end `*`. */
export function hasStarEnd(req: MsrpRequestHead): boolean {
  const range = req.byteRange;
  return req.method === 'SEND' && req.hasBody && range !== undefined && range.end !== -1 && range.end - range.start + 1 > INTERRUPTIBLE_OVER;
}

/** May the Writer cut this request? Not a chunk announced as 2048 octets or less: its range-end stays exact. */
export function isInterruptible(req: MsrpRequestHead, starEnd: boolean): boolean {
  const range = req.byteRange;
  return req.method === 'SEND' && req.hasBody && (range === undefined || range.end === -1 || starEnd);
}

/**
 * One forwarded request on its way to the next hop: its pieces' heads and the writer's
 * events as transactions. A class rather than closures: a forwarded chunk then costs one
 * object here, not a context and six functions (messages/s, GC pauses in p99).
 */
class Forward extends PieceRenderer implements OutStreamEvents {
  private readonly kind: Transaction['kind'] | undefined;
  private started = false;

  constructor(
    private readonly f: Forwarder,
    private readonly conn: Connection,
    private readonly inb: Inbound,
    req: MsrpRequestHead,
    private readonly sink: Extract<Sink, { kind: 'forward' }>,
    starEnd: boolean,
  ) {
    super(req, sink.paths, starEnd);
    this.kind = answerKind(req);
  }

  onPieceStart(tid: string, off: number): void {
    this.started = true;
    const kind = this.kind;
    if (kind === undefined) return;
    this.f.transactions.add(peerOf(this.sink.target), pieceTransaction(this.req, kind, tid, off, { source: this.conn, reportFrom: this.sink.reportFrom }));
  }

  onPieceEnd(tid: string, _flag: EndFlag, _off: number, bytes: number): void {
    this.f.transactions.pieceEnded(peerOf(this.sink.target), tid, bytes);
  }

  onWritable(): void {
    this.conn.resumeReading(FORWARD);
  }

  onFinished(flag: EndFlag, total: number): void {
    const hook = this.f.forwardedHook;
    if (hook === undefined) return;
    hook.call({
      session: this.sink.session,
      method: this.req.method,
      messageId: this.req.messageId,
      direction: this.sink.direction,
      bytes: total,
      flag,
      startedAt: this.inb.startedAt,
      endedAt: Date.now(),
    });
  }

  onDropped(): void {
    // The next hop closed under this stream. If part of it went out, its
    // transaction turns into a REPORT 408; if none did, the sender gets 408 at its end-line.
    const inb = this.inb;
    if (peerOf(this.conn).inbound === inb && inb.mode === FORWARD) {
      inb.mode = 'discard';
      inb.stream = undefined;
      if (!this.started) inb.failedStatus = 408;
      this.conn.resumeReading(FORWARD);
    }
  }
}

/** A claimed request on its way into a local endpoint. */
export class LocalSink implements LocalDelivery {
  bytes = 0;
  done = false;

  constructor(
    readonly conn: Connection,
    readonly receiver: LocalReceiver,
    /** From-Path of an end-to-end answer (see Sink). */
    readonly replyFrom: readonly string[],
  ) {}

  resume(): void {
    this.conn.resumeReading(LOCAL);
  }
}

export class Forwarder {
  constructor(readonly d: ForwarderDeps) {}

  get transactions(): Transactions {
    return this.d.transactions;
  }

  /** @internal chunkForwarded taps (Forward) */
  get forwardedHook(): RelayHooks<unknown>['chunkForwarded'] | undefined {
    const h = this.d.hooks().chunkForwarded;
    return isTapped(h) ? h : undefined;
  }

  /** The request of `inb` goes to `sink` from now on. */
  start(peer: Peer, inb: Inbound, sink: Sink): void {
    const req = inb.req!;
    if (sink.kind === 'local') {
      inb.mode = 'local';
      inb.local = new LocalSink(peer.conn, sink.receiver, sink.replyFrom);
      return;
    }
    inb.mode = 'forward';
    inb.forward = sink;
    const starEnd = hasStarEnd(req);
    const fwd = new Forward(this, peer.conn, inb, req, sink, starEnd);
    const stream = new OutStream({
      tid: newTransactionId(),
      interruptible: isInterruptible(req, starEnd),
      hasBody: req.hasBody,
      render: fwd,
      events: fwd,
    });
    sink.target.writer.open(stream);
    inb.stream = stream;
  }

  body(peer: Peer, inb: Inbound, data: Buffer): void {
    const conn = peer.conn;
    inb.bodyBytes += data.length;
    const req = inb.req!;
    if (req.method !== 'SEND') {
      // bodies of other requests are small; past 10240 octets: 400 and close.
      if (inb.bodyBytes > MAX_NON_SEND_BODY) {
        this.abortSink(inb, { code: 'protocol-error', message: 'body too large' });
        inb.mode = 'discard';
        this.d.replies.send(conn, req, 400);
        conn.close({ code: 'protocol-error', message: 'non-SEND body over 10240 octets (R-29)' });
        return;
      }
    }
    if (inb.mode === 'local') {
      const sink = inb.local!;
      sink.bytes += data.length;
      let more: boolean | void = true;
      try {
        more = sink.receiver.onBody?.(data, sink);
      } catch (e) {
        this.localFailed(peer, inb, e);
        return;
      }
      if (more === false) conn.pauseReading(LOCAL);
      return;
    }
    if (inb.mode !== FORWARD) return;
    const fw = inb.forward!;
    // the message grows past the size limit: stop it here.
    if (req.method === 'SEND' && (req.byteRange?.start ?? 1) - 1 + inb.bodyBytes > this.d.config().limits.maxMessageSize) {
      fw.target.writer.abort(inb.stream!);
      inb.stream = undefined;
      inb.mode = 'discard';
      if (req.messageId !== undefined) fw.session.refuseMessage(req.messageId);
      this.d.replies.send(conn, req, 413);
      return;
    }
    if (!fw.target.writer.body(inb.stream!, data)) conn.pauseReading(FORWARD);
    const hooks = this.d.hooks();
    if (isTapped(hooks.bodyForwarded)) {
      inb.chunk ??= { connection: conn, session: fw.session, request: req, direction: fw.direction, signal: conn.signal, ...(fw.from !== undefined ? { from: fw.from } : {}) };
      hooks.bodyForwarded.call(inb.chunk, data.length);
    }
  }

  end(peer: Peer, inb: Inbound, flag: EndFlag): void {
    const conn = peer.conn;
    const req = inb.req!;
    if (inb.mode === FORWARD) {
      const fw = inb.forward!;
      fw.target.writer.end(inb.stream!, flag);
      const s = fw.session;
      if (fw.direction === 'outward') {
        s.stats.bytesOut += inb.bodyBytes;
        if (flag === '$') s.stats.messagesOut++;
      } else {
        s.stats.bytesIn += inb.bodyBytes;
        if (flag === '$') s.stats.messagesIn++;
        if (fw.from !== undefined) {
          fw.from.stats.bytesOut += inb.bodyBytes;
          if (flag === '$') fw.from.stats.messagesOut++;
        }
      }
      // the hop-by-hop 200 once the chunk is in (Failure-Report yes only, R-64/R-65).
      if (req.method === 'SEND' && req.failureReport === 'yes') this.d.replies.send(conn, req, 200);
      return;
    }
    if (inb.mode === 'local') {
      this.endLocal(peer, inb, flag);
      return;
    }
    if (inb.failedStatus !== undefined && req.method !== 'REPORT' && req.failureReport !== 'no') this.d.replies.send(conn, req, inb.failedStatus);
    if (inb.failedReport !== undefined) {
      const range = req.byteRange;
      this.d.transactions.sendReport(
        { source: conn, messageId: req.messageId, rangeStart: range?.start ?? 1, rangeBytes: inb.bodyBytes, rangeTotal: range?.total ?? -1, reportTo: req.fromPath, reportFrom: req.toPath[0]! },
        inb.failedReport,
        '',
      );
    }
  }

  /** The sender vanished mid-chunk: end what went out with `#`, tell a local endpoint. */
  abortSink(inb: Inbound, reason: CloseReason): void {
    if (inb.stream !== undefined && inb.forward !== undefined) inb.forward.target.writer.abort(inb.stream);
    inb.stream = undefined;
    const local = inb.local;
    if (local !== undefined && !local.done) {
      local.done = true;
      try {
        local.receiver.onAbort?.(reason);
      } catch (e) {
        this.d.report(e, local.conn);
      }
    }
  }

  private endLocal(peer: Peer, inb: Inbound, flag: EndFlag): void {
    const sink = inb.local!;
    sink.done = true;
    const conn = peer.conn;
    conn.resumeReading(LOCAL);
    let answer: LocalResponse | undefined | Promise<LocalResponse | undefined>;
    try {
      answer = sink.receiver.onEnd(flag, sink);
    } catch (e) {
      this.localFailed(peer, inb, e);
      return;
    }
    const req = inb.req!;
    const replyFrom = sink.replyFrom;
    const respond = (r: LocalResponse | undefined) => {
      if (r !== undefined && !conn.isClosed) this.d.replies.send(conn, req, r.status, r.comment, r.headers, replyFrom);
    };
    if (answer instanceof Promise) answer.then(respond, (e: unknown) => this.localFailed(peer, inb, e));
    else respond(answer);
  }

  /** DESIGN.md §6: a local endpoint that throws fails closed (500), is reported, and the relay goes on. */
  private localFailed(peer: Peer, inb: Inbound, e: unknown): void {
    this.d.report(e, peer.conn);
    if (inb.mode === 'local') {
      inb.mode = 'discard';
      inb.local!.done = true;
      peer.conn.resumeReading(LOCAL);
    }
    this.d.replies.send(peer.conn, inb.req!, 500, 'local endpoint failed');
  }
}

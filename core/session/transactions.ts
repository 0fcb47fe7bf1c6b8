/**
 * Transactions: the requests this relay sent on a connection and the answers it owes for
 * them, whether it forwarded the request or originated it (DESIGN.md §3a).
 *
 *   piece on the wire ─▶ add() ─▶ end-line written ─▶ R-62 deadline (30 s)
 *   response ─▶ settle ─▶ 200 absorbed │ error → REPORT upstream
 *                        │ end to end → mapped back to the sender's tid
 *                        │ originated → delivered to the plugin that sent it
 *   deadline or next hop closed ─▶ REPORT 408 (R-62, R-15) / 408 to a forwarded AUTH
 *
 * All deadlines share one timer (core/deadlines.ts).
 */

import { DeadlineQueue, type Deadline } from '../deadlines.ts';
import type { RawHeader } from '../protocol/framer.ts';
import { formatByteRange, formatRequest, formatResponse, formatStatusHeader, newTransactionId, type MsrpRequestHead, type MsrpResponseHead } from '../protocol/message.ts';
import { statusComment } from '../protocol/status.ts';
import { tryParseUri, type MsrpUri } from '../protocol/uri.ts';
import type { Connection } from './connection.ts';
import { peerOf as anyPeerOf, type Peer as AnyPeer } from './peer.ts';
import type { Replies } from './replies.ts';
import type { Session } from './session-table.ts';

/** Where the answer to an originated request goes. */
export interface TransactionOrigin {
  settle(status: number, comment: string, headers: readonly RawHeader[], timedOut: boolean): void;
}

/** A request the relay sent on a connection and awaits an answer to. */
export interface Transaction {
  readonly tid: string;
  readonly kind: 'send' | 'e2e';
  /** The connection the original request came from (null when the relay originated it). */
  readonly source: Connection | null;
  /** For an originated request: who gets the answer. */
  readonly origin: TransactionOrigin | undefined;
  readonly sourceTid: string;
  readonly method: string;
  /** The original request's From-Path as received at the first hop here (REPORT To-Path, R-78). */
  readonly reportTo: readonly string[];
  /** The relay URI the original request consumed (REPORT From-Path, R-78). */
  readonly reportFrom: string;
  readonly messageId: string | undefined;
  readonly failureReport: 'yes' | 'no' | 'partial';
  /** Byte offset of this piece in the message, and its total (-1 unknown). */
  readonly rangeStart: number;
  rangeBytes: number;
  readonly rangeTotal: number;
  /** when it times out, unless answered first. */
  timer: Deadline | undefined;
  /** Counted against the source's outstanding limit. */
  counted: boolean;
}

/**
 * The transaction of one piece of `req` that starts `off` octets into its body: answered on
 * behalf of `source` (null and `origin` for a request the relay originated).
 */
export function pieceTransaction(
  req: MsrpRequestHead,
  kind: Transaction['kind'],
  tid: string,
  off: number,
  from: { source: Connection; reportFrom: string } | { origin: TransactionOrigin },
): Transaction {
  const range = req.byteRange;
  const forwarded = 'source' in from;
  return {
    tid,
    kind,
    source: forwarded ? from.source : null,
    // One shape for every transaction (no spread on the forwarding path).
    origin: forwarded ? undefined : from.origin,
    sourceTid: forwarded ? req.tid : tid,
    method: req.method,
    reportTo: req.fromPath,
    reportFrom: forwarded ? from.reportFrom : req.toPath[0]!,
    messageId: req.messageId,
    failureReport: req.failureReport,
    rangeStart: (range?.start ?? 1) + off,
    rangeBytes: 0,
    rangeTotal: range?.total ?? -1,
    timer: undefined,
    // a forwarded piece counts against its sender's outstanding limit.
    counted: forwarded,
  };
}

export interface TransactionDeps {
  /** transactions a source may have open before its reading pauses. */
  maxOutstanding(): number;
  /** how long a next hop may take to answer, in ms. */
  timeoutMs(): number;
  replies: Replies;
  /** A token of this relay, for the end-to-end mapping. */
  ownSession(u: MsrpUri): Session<Connection> | undefined;
}

/** A connection's routing state as the transaction table sees it. */
export type Peer = AnyPeer<unknown, Transaction>;
const peerOf = (c: Connection): Peer => anyPeerOf<unknown, Transaction>(c);

/** Why reading a source is paused while it has too many transactions open. */
export const OUTSTANDING = 'outstanding';

export class Transactions {
  private readonly deadlines = new DeadlineQueue({ unref: true });

  constructor(private readonly d: TransactionDeps) {}

  /** A piece went out on `target`: its answer is awaited from now (before any response can come). */
  add(target: Peer, t: Transaction): void {
    target.pending.set(t.tid, t);
    if (t.counted && t.source !== null) {
      const src = peerOf(t.source);
      src.outstanding++;
      if (src.outstanding >= this.d.maxOutstanding()) t.source.pauseReading(OUTSTANDING);
    }
  }

  /** A piece's end-line went out: R-62, its response is due within the transaction timeout. */
  pieceEnded(target: Peer, tid: string, bytes: number): void {
    const t = target.pendingIfAny?.get(tid);
    if (t === undefined) return;
    t.rangeBytes = bytes;
    // 30 s from the last byte. Failure-Report yes then gets REPORT 408; partial
    // (which never gets a 200, R-65) and end-to-end requests are purged alike.
    t.timer = this.deadlines.add(Date.now() + this.d.timeoutMs(), () => this.timeout(target, t));
  }

  /** A response read on `peer`'s connection. */
  onResponse(peer: Peer, res: MsrpResponseHead): void {
    const t = peer.pendingIfAny?.get(res.tid);
    if (t === undefined) return; // unknown tid.
    peer.pending.delete(res.tid);
    this.settle(t);
    if (t.origin !== undefined) {
      t.origin.settle(res.status, res.comment, res.headers, false);
      return;
    }
    const source = t.source;
    if (t.kind === 'send') {
      // a 200 is hop-by-hop and ends here; R-63: an error becomes a REPORT upstream.
      if (res.status !== 200 && t.failureReport !== 'no') this.sendReport(t, res.status, res.comment);
      return;
    }
    // end-to-end response: move our URIs from To-Path to From-Path, restore the tid.
    if (source === null || source.isClosed) return;
    const to = [...res.toPath];
    const from = [...res.fromPath];
    while (to.length > 1) {
      const u = tryParseUri(to[0]!);
      if (u === undefined || this.d.ownSession(u) === undefined) break;
      from.unshift(to.shift()!);
    }
    source.sendFrame(formatResponse({ tid: t.sourceTid, status: res.status, comment: res.comment, toPath: to, fromPath: from, headers: res.headers }));
  }

  /** the connection closed: what was sent there and never answered fails. */
  peerClosed(peer: Peer): void {
    const pending = peer.pendingIfAny;
    if (pending === undefined) return;
    for (const t of pending.values()) this.fail(t, 408, 'next hop closed', true);
    pending.clear();
  }

  /** a relay-generated REPORT to the original sender. */
  sendReport(t: Pick<Transaction, 'source' | 'messageId' | 'rangeStart' | 'rangeBytes' | 'rangeTotal' | 'reportTo' | 'reportFrom'>, status: number, comment: string): void {
    const source = t.source;
    if (source === null || source.isClosed || t.messageId === undefined) return;
    const end = t.rangeStart + t.rangeBytes - 1;
    const headers: RawHeader[] = [
      ['Message-ID', t.messageId],
      ['Byte-Range', formatByteRange({ start: t.rangeStart, end: Math.max(end, t.rangeStart - 1), total: t.rangeTotal })],
      ['Status', formatStatusHeader(status, comment === '' ? statusComment(status) : comment)],
    ];
    source.sendFrame(formatRequest({ tid: newTransactionId(), method: 'REPORT', toPath: t.reportTo, fromPath: [t.reportFrom], headers }));
  }

  private settle(t: Transaction): void {
    if (t.timer !== undefined) this.deadlines.settle(t.timer);
    t.timer = undefined;
    if (t.counted && t.source !== null) {
      t.counted = false;
      const s = t.source;
      const src = peerOf(s);
      src.outstanding--;
      if (src.outstanding < this.d.maxOutstanding() && s.isPausedFor(OUTSTANDING)) s.resumeReading(OUTSTANDING);
    }
  }

  private timeout(target: Peer, t: Transaction): void {
    t.timer = undefined;
    if (target.pendingIfAny?.get(t.tid) !== t) return;
    target.pending.delete(t.tid);
    this.fail(t, 408, 'no response from the next hop');
  }

  /**
   * A request will get no answer: REPORT 408 for a SEND with Failure-Report yes, or
   * also partial when the next hop closed; 408 for a forwarded AUTH; a timeout for
   * an originated one.
   */
  private fail(t: Transaction, status: number, comment: string, hopClosed = false): void {
    this.settle(t);
    if (t.origin !== undefined) {
      t.origin.settle(status, comment, [], true);
      return;
    }
    if (t.kind === 'send') {
      if (t.failureReport === 'yes' || (t.failureReport === 'partial' && hopClosed)) this.sendReport(t, status, comment);
      return;
    }
    if (t.method === 'AUTH' && t.source !== null && !t.source.isClosed) {
      const frame = formatResponse({ tid: t.sourceTid, status, comment: statusComment(status), toPath: t.reportTo, fromPath: [t.reportFrom] });
      this.d.replies.write(t.source, frame, t.method, t.sourceTid, status);
    }
  }
}

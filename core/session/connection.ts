/**
 * A peer connection: socket, framer, writer, timers and read control.
 *
 * It knows nothing of routing: frames go to a ConnectionHandler (the router).
 * Reading is paused while any reason holds (an async decision, back-pressure from
 * the next hop, too many outstanding transactions, a throttle), which stops the
 * socket and the framer together so memory stays bounded.
 */

import { randomHex } from '../protocol/random.ts';
import type { Socket } from 'node:net';
import { Framer, FramerError, type EndFlag, type FrameHead, type FramerLimits } from '../protocol/framer.ts';
import type { CloseReason, ConnectionContext, Identity, ListenerInfo, TransportName } from '../types.ts';
import { Writer } from './writer.ts';

export interface ConnectionHandler {
  onHead(conn: Connection, head: FrameHead): void;
  onBody(conn: Connection, data: Buffer): void;
  onEnd(conn: Connection, flag: EndFlag): void;
  onFramingError(conn: Connection, err: FramerError): void;
  onClose(conn: Connection, reason: CloseReason): void;
}

export interface ConnectionTimeouts {
  /** ms to wait for the first successful request on an inbound connection (0 = none). */
  firstRequestMs: number;
  /** 2H: ms from the first byte of a message to the end of its headers (slowloris). */
  headerCompletionMs: number;
  /** ms without traffic before closing. */
  idleMs: number;
}

/** A request the relay sent on this connection and awaits an answer to. */
export interface Transaction {
  readonly tid: string;
  readonly kind: 'send' | 'e2e';
  /** The connection the original request came from (null when the relay originated it). */
  readonly source: Connection | null;
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
  timer: NodeJS.Timeout | undefined;
  /** @internal counted against the source's outstanding limit */
  counted: boolean;
}

let seq = 0;

/** The abort reason of every connection's signal: made once (a DOMException per close costs). */
const CONNECTION_CLOSED = Object.freeze(Object.assign(new Error('the connection closed'), { name: 'AbortError' }));

export class Connection implements ConnectionContext {
  readonly id: string;
  readonly direction: 'inbound' | 'outbound';
  readonly transport: TransportName;
  readonly secure: boolean;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly listener: ListenerInfo | undefined;
  readonly notes = new Map<string, unknown>();
  readonly openedAt = Date.now();
  readonly identities: Identity[] = [];
  readonly socket: Socket;
  readonly framer: Framer;
  readonly writer: Writer;
  /** Requests this relay sent here, by the tid it gave them. */
  readonly pending = new Map<string, Transaction>();
  /** Transactions opened elsewhere for requests that came in here (R-88 outstanding cap). */
  outstanding = 0;
  /** failed AUTHs on this connection. */
  authFailures = 0;
  /** an AUTH is being processed. */
  authInProgress = false;
  /** failed requests before the first success. */
  probationFailures = 0;
  /** Sessions (tokens) issued over this connection. */
  readonly sessions = new Set<import('./session-table.ts').Session<Connection>>();
  /** Sessions whose far leg is this connection. */
  readonly farSessions = new Set<import('./session-table.ts').Session<Connection>>();
  /** The relay URI for an outbound connection (its dial target), used to name it in logs. */
  peerLabel: string | undefined;
  /** Per-request state of the router. */
  inbound: unknown;

  private readonly handler: ConnectionHandler;
  /** Made on first use of `signal`: most connections never need one (an AbortController and its abort's DOMException are not free). */
  private controller: AbortController | undefined;
  private readonly pauseReasons = new Set<string>();
  private readonly timeouts: ConnectionTimeouts;
  private firstTimer: NodeJS.Timeout | undefined;
  private headerTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private closeReason: CloseReason | undefined;
  private ended = false;

  constructor(o: {
    socket: Socket;
    direction: 'inbound' | 'outbound';
    transport: TransportName;
    listener?: ListenerInfo;
    handler: ConnectionHandler;
    limits: Partial<FramerLimits>;
    timeouts: ConnectionTimeouts;
    /** The client's addresses when the socket is not the client's own (a connection handed over between workers). */
    peer?: { remoteAddress: string; remotePort: number; localAddress: string; localPort: number };
  }) {
    this.id = `${(++seq).toString(36)}${randomHex(3)}`;
    this.socket = o.socket;
    this.direction = o.direction;
    this.transport = o.transport;
    this.secure = o.transport === 'tls' || o.transport === 'wss';
    this.listener = o.listener;
    this.remoteAddress = o.peer?.remoteAddress ?? o.socket.remoteAddress ?? '';
    this.remotePort = o.peer?.remotePort ?? o.socket.remotePort ?? 0;
    this.localAddress = o.peer?.localAddress ?? o.socket.localAddress ?? '';
    this.localPort = o.peer?.localPort ?? o.socket.localPort ?? 0;
    this.handler = o.handler;
    this.timeouts = o.timeouts;
    this.writer = new Writer(o.socket);
    const conn = this;
    this.framer = new Framer(
      {
        onHead(head) {
          conn.clearHeaderTimer();
          conn.handler.onHead(conn, head);
        },
        onBody(data) {
          conn.handler.onBody(conn, data);
        },
        onEnd(flag) {
          conn.handler.onEnd(conn, flag);
        },
      },
      o.limits,
    );
    o.socket.on('error', (e: Error) => this.destroy({ code: 'error', message: e.message }));
    o.socket.on('close', () => this.onSocketClosed());
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.ended) this.controller.abort(CONNECTION_CLOSED);
    }
    return this.controller.signal;
  }

  get isClosed(): boolean {
    return this.closing || this.ended;
  }

  /** Starts reading. Call once the connection is registered. */
  start(): void {
    const s = this.socket;
    s.setNoDelay(true);
    if (this.timeouts.idleMs > 0) {
      s.setTimeout(this.timeouts.idleMs, () => this.close({ code: 'idle', message: 'no traffic' }));
    }
    if (this.direction === 'inbound' && this.timeouts.firstRequestMs > 0) {
      this.firstTimer = setTimeout(
        () => this.close({ code: 'first-request-timeout', message: 'no successful request in time (R-9)' }),
        this.timeouts.firstRequestMs,
      );
      this.firstTimer.unref();
    }
    s.on('data', (d: Buffer) => this.onData(d));
    s.on('end', () => this.close({ code: 'peer-closed' }));
    // A socket paused before start (while acceptConnection ran) stays paused when a
    // 'data' listener is added: resume it explicitly.
    if (this.pauseReasons.size === 0) s.resume();
  }

  /** a request succeeded, so the connection is past probation. */
  markSucceeded(): void {
    if (this.firstTimer !== undefined) {
      clearTimeout(this.firstTimer);
      this.firstTimer = undefined;
    }
  }

  get inProbation(): boolean {
    return this.firstTimer !== undefined;
  }

  pauseReading(reason: string): void {
    if (this.pauseReasons.size === 0) {
      this.socket.pause();
      this.framer.pause();
    }
    this.pauseReasons.add(reason);
  }

  resumeReading(reason: string): void {
    if (!this.pauseReasons.delete(reason) || this.pauseReasons.size > 0 || this.isClosed) return;
    this.socket.resume();
    try {
      this.framer.resume();
    } catch (e) {
      this.onFramerThrow(e);
    }
  }

  isPausedFor(reason: string): boolean {
    return this.pauseReasons.has(reason);
  }

  /** Writes a complete frame (response, REPORT) ahead of streamed bodies. */
  sendFrame(frame: Buffer): boolean {
    if (this.isClosed) return false;
    return this.writer.control(frame);
  }

  /**
   * Closes after what is queued is written. `reason` goes to connectionClosed and to
   * every session that ends with this connection.
   */
  close(reason: CloseReason = { code: 'shutdown' }): void {
    if (this.closing || this.ended) return;
    this.closing = true;
    this.closeReason = reason;
    this.clearTimers();
    this.socket.end();
    // A peer that never reads must not keep the socket: destroy soon after.
    const t = setTimeout(() => this.socket.destroy(), 2000);
    t.unref();
  }

  /** Closes at once, dropping anything queued. */
  destroy(reason: CloseReason): void {
    if (this.ended) return;
    this.closeReason ??= reason;
    this.closing = true;
    this.clearTimers();
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    if (this.closing) return;
    try {
      this.framer.push(d);
    } catch (e) {
      this.onFramerThrow(e);
      return;
    }
    // 2H: a message whose headers do not complete in time is a slowloris.
    if (this.headerTimer === undefined && !this.framer.inBody && this.framer.bufferedBytes > 0 && this.timeouts.headerCompletionMs > 0) {
      this.headerTimer = setTimeout(() => {
        this.headerTimer = undefined;
        if (!this.framer.inBody && this.framer.bufferedBytes > 0 && !this.framer.isPaused) {
          this.close({ code: 'header-timeout', message: 'headers did not complete in time' });
        }
      }, this.timeouts.headerCompletionMs);
      this.headerTimer.unref();
    }
  }

  private onFramerThrow(e: unknown): void {
    if (e instanceof FramerError) this.handler.onFramingError(this, e);
    else this.destroy({ code: 'error', message: e instanceof Error ? e.message : String(e) });
  }

  private clearHeaderTimer(): void {
    if (this.headerTimer !== undefined) {
      clearTimeout(this.headerTimer);
      this.headerTimer = undefined;
    }
  }

  private clearTimers(): void {
    this.clearHeaderTimer();
    if (this.firstTimer !== undefined) clearTimeout(this.firstTimer);
    this.firstTimer = undefined;
    this.socket.setTimeout(0);
  }

  private onSocketClosed(): void {
    if (this.ended) return;
    this.ended = true;
    this.closing = true;
    this.clearTimers();
    this.controller?.abort(CONNECTION_CLOSED);
    this.handler.onClose(this, this.closeReason ?? { code: 'peer-closed' });
  }
}

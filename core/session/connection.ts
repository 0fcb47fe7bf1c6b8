/**
 * A peer connection: a transport stream, framer, writer, timers and read control.
 *
 * It knows nothing of routing: frames go to its ConnectionHandler (the router's per-peer
 * state, core/session/peer.ts), and it holds no routing state. Reading is paused while any
 * reason holds (an async decision, back-pressure from the next hop, too many outstanding
 * transactions, a throttle), which stops the stream and the framer together so memory stays
 * bounded. The stream is any MsrpStream (core/transport/stream.ts): a socket, a
 * WebSocket, the link between cluster workers, an in-memory pair.
 */

import type { Deadline } from '../deadlines.ts';
import { randomHex } from '../protocol/random.ts';
import { Framer, FramerError, isOneFrame, type EndFlag, type FrameHandler, type FrameHead, type FramerLimits } from '../protocol/framer.ts';
import type { MsrpStream } from '../transport/stream.ts';
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
  /** A peer whose queued output stays over the bound this long is closed (0 = never). */
  outputStallMs?: number;
  /** 2H: ms from the first byte of a message to the end of its headers (slowloris). */
  headerCompletionMs: number;
  /** ms without traffic before closing. */
  idleMs: number;
}

export type { Deadline };

let opened = 0;

/** Why reading pauses while the peer does not take its output. */
const OUTPUT = 'output';

/** How long close() lets queued data drain to a peer before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

/** The Connection that owns a socket: one shared listener per event instead of a closure per socket and event. */
const kConnection = Symbol('msrprelay.connection');
type OwnedSocket = MsrpStream & { [kConnection]: Connection };

/** Framer events of one connection, on the prototype (no per-connection closures). */
class FrameSink implements FrameHandler {
  constructor(private readonly conn: Connection) {}
  onHead(head: FrameHead): void {
    this.conn.frameHead(head);
  }
  onBody(data: Buffer): void {
    this.conn.handler.onBody(this.conn, data);
  }
  onEnd(flag: EndFlag): void {
    this.conn.handler.onEnd(this.conn, flag);
  }
}

/** The abort reason of every connection's signal: made once (a DOMException per close costs). */
const CONNECTION_CLOSED = Object.freeze(Object.assign(new Error('the connection closed'), { name: 'AbortError' }));

export class Connection implements ConnectionContext {
  private readonly serial = ++opened;
  private idText: string | undefined;
  readonly direction: 'inbound' | 'outbound';
  readonly transport: TransportName;
  readonly secure: boolean;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly listener: ListenerInfo | undefined;
  readonly openedAt = Date.now();
  readonly identities: Identity[] = [];
  /** The transport stream (a socket for TCP and TLS). */
  readonly socket: MsrpStream;
  readonly framer: Framer;
  readonly writer: Writer;
  /**
   * What is made only on first use: an idle connection is mostly this object and its socket
   * (DESIGN.md §8: memory per held session), so maps and sets wait until something goes in.
   */
  private notesMap: Map<string, unknown> | undefined;
  private local: { address: string; port: number } | undefined;
  /** Message mode (W-3): transport messages not yet given to the framer, and the ends count when the open one started. */
  private messages: Buffer[] | undefined;
  private messageEndsAt = -1;

  /** @internal the router's state for this peer */
  readonly handler: ConnectionHandler;
  private readonly maxBuffered: number;
  /** The stream carries one frame per transport message (W-3): read once, not per read. */
  private readonly messageMode: boolean;
  private readonly onClosing: ((conn: Connection) => void) | undefined;
  /** When reading stopped because the peer does not take its output (0: it has not). */
  private outputBlockedSince = 0;
  /** Made on first use of `signal`: most connections never need one (an AbortController and its abort's DOMException are not free). */
  private controller: AbortController | undefined;
  private pauseReasons: Set<string> | undefined;
  private readonly timeouts: ConnectionTimeouts;
  /** when probation ends without a successful request (0: not in probation). Checked by sweep(). */
  private probationUntil = 0;
  /** octets moved either way at the last sweep, and since when that count has not changed. */
  private movedAtSweep = -1;
  private quietSince = 0;
  /** After close(): when the socket is destroyed if the peer has not taken what was queued (0: not closing). */
  private destroyAfter = 0;
  private headerTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private closeReason: CloseReason | undefined;
  private ended = false;

  constructor(o: {
    socket: MsrpStream;
    direction: 'inbound' | 'outbound';
    transport: TransportName;
    listener?: ListenerInfo;
    handler: (conn: Connection) => ConnectionHandler;
    limits: Partial<FramerLimits>;
    timeouts: ConnectionTimeouts;
    /** The client's addresses when the stream's are not the client's own (a connection handed over between workers). */
    peer?: { remoteAddress: string; remotePort: number; localAddress?: string; localPort?: number };
    /** Overrides the stream's `encrypted` (TLS ended in another worker of this relay). */
    encrypted?: boolean;
    /** Octets queued toward the peer before reading it stops (0 = no bound); 4x closes. */
    maxBuffered?: number;
    /** Told once, when the relay decides to close (before the stream is gone): the caps free its slot. */
    onClosing?: (conn: Connection) => void;
  }) {
    this.socket = o.socket;
    this.direction = o.direction;
    this.transport = o.transport;
    this.secure = o.encrypted ?? o.socket.encrypted === true;
    this.listener = o.listener;
    this.remoteAddress = o.peer?.remoteAddress ?? o.socket.remoteAddress ?? '';
    this.remotePort = o.peer?.remotePort ?? o.socket.remotePort ?? 0;
    if (o.peer?.localAddress !== undefined) this.local = { address: o.peer.localAddress, port: o.peer.localPort ?? 0 };
    this.handler = o.handler(this);
    this.maxBuffered = o.maxBuffered ?? 0;
    this.messageMode = o.socket.messageMode !== undefined;
    this.onClosing = o.onClosing;
    this.timeouts = o.timeouts;
    this.writer = new Writer(o.socket);
    this.framer = new Framer(new FrameSink(this), o.limits);
    (o.socket as OwnedSocket)[kConnection] = this;
    o.socket.on('error', Connection.onSocketError);
    o.socket.on('close', Connection.onSocketClose);
    if (this.maxBuffered > 0) o.socket.on('drain', Connection.onSocketDrain);
  }

  private static onSocketDrain(this: OwnedSocket): void {
    this[kConnection].outputDrained();
  }

  private static onSocketError(this: OwnedSocket, e: Error): void {
    this[kConnection].destroy({ code: 'error', message: e.message });
  }

  private static onSocketClose(this: OwnedSocket): void {
    this[kConnection].onSocketClosed();
  }

  private static onSocketData(this: OwnedSocket, d: Buffer): void {
    this[kConnection].onData(d);
  }

  private static onSocketEnd(this: OwnedSocket): void {
    this[kConnection].close({ code: 'peer-closed' });
  }

  /** A short id for logs: a sequence number and 12 random bits, made when first asked for. */
  get id(): string {
    return (this.idText ??= `${this.serial.toString(36)}${randomHex(3)}`);
  }

  get localAddress(): string {
    return this.localEnd().address;
  }

  get localPort(): number {
    return this.localEnd().port;
  }

  /** Looked up when asked for: a getsockname per connection that nobody reads is not free. */
  private localEnd(): { address: string; port: number } {
    return (this.local ??= { address: this.socket.localAddress ?? '', port: this.socket.localPort ?? 0 });
  }

  /** Per-plugin state, keyed by plugin name. */
  get notes(): Map<string, unknown> {
    return (this.notesMap ??= new Map());
  }

  /** @internal a head from the framer */
  frameHead(head: FrameHead): void {
    this.clearHeaderTimer();
    this.handler.onHead(this, head);
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

  /**
   * Starts reading. Call once the connection is registered. The first-request and
   * idle limits are checked by sweep(), which the relay calls for every connection on
   * one timer: no timer per connection, and nothing to re-arm on every read or write.
   */
  start(head?: Buffer): void {
    const s = this.socket;
    const now = Date.now();
    s.setNoDelay?.(true);
    this.quietSince = now;
    if (this.direction === 'inbound' && this.timeouts.firstRequestMs > 0) this.probationUntil = now + this.timeouts.firstRequestMs;
    s.on('data', Connection.onSocketData);
    s.on('end', Connection.onSocketEnd);
    // Bytes a transport read before handing the stream over (a cluster worker's peek).
    if (head !== undefined && head.length > 0) this.onData(head);
    // A socket paused before start (while acceptConnection ran) stays paused when a
    // 'data' listener is added: resume it explicitly.
    if (this.pauseReasons === undefined || this.pauseReasons.size === 0) s.resume();
  }

  /**
   * @internal The relay's periodic check (its interval is a fraction of the shortest limit):
   * R-9, no successful request within firstRequest of accepting; R-14, no octet moved either
   * way for `idle`.
   */
  sweep(now: number): void {
    if (this.ended) return;
    if (this.closing) {
      if (this.destroyAfter !== 0 && now >= this.destroyAfter) this.socket.destroy();
      return;
    }
    const stall = this.timeouts.outputStallMs ?? 0;
    if (this.outputBlockedSince !== 0 && stall > 0 && now - this.outputBlockedSince >= stall) {
      this.destroy({ code: 'limit', message: 'the peer did not read its output in time (timeouts.outputStall)' });
      return;
    }
    if (this.probationUntil !== 0 && now >= this.probationUntil) {
      this.close({ code: 'first-request-timeout', message: 'no successful request in time (R-9)' });
      return;
    }
    if (this.timeouts.idleMs <= 0) return;
    const moved = this.socket.bytesRead + this.socket.bytesWritten;
    if (moved !== this.movedAtSweep) {
      this.movedAtSweep = moved;
      this.quietSince = now;
    } else if (now - this.quietSince >= this.timeouts.idleMs) {
      this.close({ code: 'idle', message: 'no traffic' });
    }
  }

  /** a request succeeded, so the connection is past probation. */
  markSucceeded(): void {
    this.probationUntil = 0;
  }

  get inProbation(): boolean {
    return this.probationUntil !== 0;
  }

  pauseReading(reason: string): void {
    const reasons = (this.pauseReasons ??= new Set());
    if (reasons.size === 0) {
      this.socket.pause();
      this.framer.pause();
    }
    reasons.add(reason);
  }

  resumeReading(reason: string): void {
    const reasons = this.pauseReasons;
    if (reasons === undefined || !reasons.delete(reason) || reasons.size > 0) return;
    this.pauseReasons = undefined;
    if (this.isClosed) return;
    this.socket.resume();
    try {
      this.framer.resume();
      if (this.messages !== undefined) this.deliverMessages();
    } catch (e) {
      this.onFramerThrow(e);
    }
  }

  isPausedFor(reason: string): boolean {
    return this.pauseReasons?.has(reason) === true;
  }

  /** Writes a complete frame (response, REPORT) ahead of streamed bodies. */
  sendFrame(frame: Buffer): boolean {
    if (this.isClosed) return false;
    const ok = this.writer.control(frame);
    if (this.maxBuffered > 0) this.checkOutput();
    return ok;
  }

  /**
   * A peer that does not read what the relay answers it (pipelined requests, each answered)
   * must not grow the relay: past the bound its reading stops, so it gets no more answers
   * to queue; past four times the bound, or stalled for outputStall, it is closed. Forwarded
   * bodies have their own back-pressure (the Writer pauses their sender).
   */
  private checkOutput(): void {
    const queued = this.socket.writableLength ?? (this.socket.writableNeedDrain ? this.maxBuffered + 1 : 0);
    if (queued > 4 * this.maxBuffered) {
      this.destroy({ code: 'limit', message: 'the peer does not read: output over 4 x limits.maxBufferedPerConnection' });
      return;
    }
    if (queued > this.maxBuffered && this.outputBlockedSince === 0) {
      this.outputBlockedSince = Date.now();
      this.pauseReading(OUTPUT);
    }
  }

  private outputDrained(): void {
    if (this.outputBlockedSince === 0) return;
    const queued = this.socket.writableLength ?? 0;
    if (queued > this.maxBuffered / 2) return;
    this.outputBlockedSince = 0;
    this.resumeReading(OUTPUT);
  }

  /**
   * Closes after what is queued is written. `reason` goes to connectionClosed and to
   * every session that ends with this connection.
   */
  close(reason: CloseReason = { code: 'shutdown' }): void {
    if (this.closing || this.ended) return;
    this.closing = true;
    this.closeReason = reason;
    this.onClosing?.(this);
    this.clearTimers();
    this.socket.closing?.(reason);
    this.socket.end();
    // A peer that never reads must not keep the socket: sweep() destroys it soon after.
    this.destroyAfter = Date.now() + CLOSE_GRACE_MS;
  }

  /** Closes at once, dropping anything queued. */
  destroy(reason: CloseReason): void {
    if (this.ended) return;
    this.closeReason ??= reason;
    if (!this.closing) this.onClosing?.(this);
    this.closing = true;
    this.clearTimers();
    this.socket.closing?.(this.closeReason);
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    if (this.closing) return;
    if (this.messageMode) {
      (this.messages ??= []).push(d);
      try {
        this.deliverMessages();
      } catch (e) {
        this.onFramerThrow(e);
      }
      return;
    }
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

  /**
   * Message mode (W-3): transport messages go to the framer one at a time, and each must
   * have ended exactly one MSRP frame, at its last octet, by the time the framer has read it
   * all (which waits while reading is paused: a body can be held by back-pressure).
   */
  private deliverMessages(): void {
    const f = this.framer;
    const q = this.messages!;
    for (;;) {
      if (this.messageEndsAt >= 0) {
        if (f.isPaused || this.closing) return;
        const ends = f.frameEnds - this.messageEndsAt;
        this.messageEndsAt = -1;
        if (ends !== 1 || !f.atBoundary) {
          throw new FramerError('not-one-frame', ends === 0 ? 'a transport message held part of an MSRP frame (W-3)' : 'a transport message held more than one MSRP frame (W-3)');
        }
      }
      const m = q.shift();
      if (m === undefined) return;
      // Checked before framing, so nothing of a bad message goes anywhere.
      if (!isOneFrame(m)) throw new FramerError('not-one-frame', 'a transport message did not hold exactly one MSRP frame (W-3)');
      this.messageEndsAt = f.frameEnds;
      f.push(m);
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
    this.probationUntil = 0;
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

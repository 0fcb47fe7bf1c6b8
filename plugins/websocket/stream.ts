/**
 * One WebSocket as an MsrpStream (docs/reference/transports.md): the relay's Connection and
 * Writer see a message-oriented stream, one MSRP frame per WebSocket message (RFC 7977 §5.1,
 * W-3). The same class wraps the server side (the websocket plugin) and a client made with the
 * `ws` package (the tests' WebSocket MSRP client, the bench's load generator).
 *
 * - Input: every WebSocket message, text or binary (W-2, I-16: text is read as bytes), is one
 *   `data` event, reassembled by `ws` when it came fragmented. While paused, messages `ws` has
 *   already parsed wait here, so nothing is emitted between pause() and resume().
 * - Output: every write() is one binary message (W-2: always binary). write() answers false
 *   once `bufferedAmount` (what `ws` and the socket hold unsent) reaches the high-water mark,
 *   and `drain` comes when a send completes with it below the mark again.
 * - Closing: end() sends a Close frame with the code the relay's reason maps to (closing():
 *   1002 for a framing error, W-3; 1001 at shutdown; 1000 otherwise); destroy() does too, and
 *   cuts the socket if the peer does not finish the closing handshake within a moment.
 * - bytesRead and bytesWritten count message octets and control frames (a Pong is traffic for
 *   the relay's idle sweep, I-18).
 */

import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import type { CloseReason, MsrpStream } from '../../core/index.ts';

/** WebSocket close codes (RFC 6455 §7.4.1). */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_ABNORMAL = 1006;

/** Messages shorter than this are gathered with the others of the same tick (as the relay's writer does). */
const GATHER_LIMIT = 16 * 1024;
/** How long destroy() waits for the peer's Close before cutting the socket. */
const DESTROY_GRACE_MS = 1000;
/** Octets a control frame costs on the wire besides its payload (a server's, unmasked). */
const CONTROL_OVERHEAD = 2;

/** W-3, W-11: the close code for why the relay closes a connection. */
export function closeCodeFor(reason: CloseReason): number {
  switch (reason.code) {
    case 'protocol-error':
      return CLOSE_PROTOCOL_ERROR;
    case 'shutdown':
      return CLOSE_GOING_AWAY;
    default:
      return CLOSE_NORMAL;
  }
}

/** `ws` error codes as the close code `ws` sent for them. */
function closeCodeOfError(e: Error): number {
  const code = (e as { code?: string }).code;
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return CLOSE_TOO_BIG;
  if (code === 'WS_ERR_INVALID_UTF8') return 1007;
  return CLOSE_PROTOCOL_ERROR;
}

/** The TCP or TLS socket under a WebSocket, for gathering the writes of one tick. */
export interface CorkableSocket {
  cork(): void;
  uncork(): void;
}

export interface WsStreamOptions {
  /** The largest message the relay writes (W-4: long chunks are cut to fit). */
  maxMessageSize: number;
  /** bufferedAmount at which write() answers false. */
  highWaterMark: number;
  /** True on wss, or behind a TLS-terminating proxy the operator declared. */
  encrypted: boolean;
  /**
   * The socket under the WebSocket: the messages written in one tick are then gathered into
   * one system call (a response and the next frame, many small frames to a busy peer), as the
   * relay's writer does on TCP. Without it every message is written on its own.
   */
  socket?: CorkableSocket | undefined;
  /** The addresses of the underlying socket. */
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
}

/** What became of a WebSocket: for the plugin's counters. */
export interface WsStreamObserver {
  messageIn(bytes: number, binary: boolean): void;
  messageOut(bytes: number): void;
  /** A write() answered false: the sender is paused until bufferedAmount falls (back-pressure). */
  pressured(): void;
  closed(code: number, stream: WsStream): void;
}

export class WsStream extends EventEmitter implements MsrpStream {
  readonly ws: WebSocket;
  readonly messageMode: { readonly maxMessageSize: number };
  readonly encrypted: boolean;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  bytesRead = 0;
  bytesWritten = 0;
  destroyed = false;
  /** A Pong (or any message) came since the last Ping (the plugin's keep-alive, W-11). */
  alive = true;
  /** The close code this end sent, once it sent one. */
  sentCode: number | undefined;
  private readonly hwm: number;
  private needDrain = false;
  private paused = false;
  /** Messages read while paused, emitted on resume. */
  private held: Buffer[] = [];
  private flushing = false;
  /** end() or destroy() was called: nothing more is emitted. */
  private ending = false;
  private closeCode = CLOSE_NORMAL;
  private closeTimer: NodeJS.Timeout | undefined;
  private closeEmitted = false;
  private readonly observer: WsStreamObserver | undefined;
  private readonly raw: CorkableSocket | undefined;
  /** True while the raw socket is corked until the end of this tick. */
  private corked = false;
  private readonly uncorkRaw = (): void => {
    this.corked = false;
    this.raw!.uncork();
  };
  private readonly afterSend = (err?: Error): void => {
    if (err !== undefined && err !== null) return;
    if (this.needDrain && this.ws.bufferedAmount < this.hwm) {
      this.needDrain = false;
      this.emit('drain');
    }
  };

  constructor(ws: WebSocket, o: WsStreamOptions, observer?: WsStreamObserver) {
    super();
    this.ws = ws;
    this.messageMode = Object.freeze({ maxMessageSize: o.maxMessageSize });
    this.hwm = o.highWaterMark;
    this.encrypted = o.encrypted;
    this.remoteAddress = o.remoteAddress;
    this.remotePort = o.remotePort;
    this.localAddress = o.localAddress;
    this.localPort = o.localPort;
    this.observer = observer;
    this.raw = o.socket;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => this.onMessage(toBuffer(data), isBinary));
    ws.on('pong', (data: Buffer) => {
      this.alive = true;
      this.bytesRead += CONTROL_OVERHEAD + data.length;
    });
    ws.on('ping', (data: Buffer) => {
      // `ws` answers it (autoPong); both frames are traffic.
      this.bytesRead += CONTROL_OVERHEAD + data.length;
      this.bytesWritten += CONTROL_OVERHEAD + data.length;
    });
    ws.on('error', (e: Error) => {
      this.sentCode ??= closeCodeOfError(e);
      this.emit('error', e);
    });
    ws.on('close', (code: number) => this.onClose(code));
  }

  get writableNeedDrain(): boolean {
    return this.needDrain;
  }

  /** One binary WebSocket message (W-2, W-3). */
  write(data: Buffer | string): boolean {
    if (this.destroyed || this.ws.readyState !== 1) return false;
    const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.bytesWritten += b.length;
    this.observer?.messageOut(b.length);
    // Small messages of one tick leave in one write (the socket is uncorked on the next tick).
    if (this.raw !== undefined && !this.corked && b.length < GATHER_LIMIT) {
      this.corked = true;
      this.raw.cork();
      process.nextTick(this.uncorkRaw);
    }
    this.ws.send(b, { binary: true, compress: false, fin: true }, this.afterSend);
    if (!this.needDrain && this.ws.bufferedAmount >= this.hwm) {
      this.needDrain = true;
      this.observer?.pressured();
    }
    return !this.needDrain;
  }

  /** Sends a Ping (the keep-alive, W-11). */
  ping(): void {
    if (this.ws.readyState !== 1) return;
    this.bytesWritten += CONTROL_OVERHEAD;
    this.ws.ping();
  }

  pause(): this {
    this.paused = true;
    this.ws.pause();
    return this;
  }

  resume(): this {
    this.paused = false;
    if (this.held.length > 0) {
      // Emitted after the caller's resume() returns, as a socket's `data` would be.
      if (!this.flushing) {
        this.flushing = true;
        queueMicrotask(() => this.flush());
      }
      return this;
    }
    this.ws.resume();
    return this;
  }

  /** The relay's reason: the close code end() and destroy() send (W-3: 1002 for a framing error). */
  closing(reason: CloseReason): void {
    this.closeCode = closeCodeFor(reason);
  }

  /**
   * Sends the Close frame after what is queued; the socket closes when the peer answers. Reading
   * goes on (a paused reader would never see the peer's Close), and what arrives is dropped.
   */
  end(): this {
    this.ending = true;
    this.held = [];
    this.close(this.closeCode);
    this.ws.resume();
    return this;
  }

  /** Sends a Close frame now and cuts the socket if the peer has not answered within a moment. */
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.ending = true;
    this.held = [];
    this.close(this.closeCode);
    this.ws.resume();
    if (this.ws.readyState !== 3) {
      this.closeTimer ??= setTimeout(() => this.ws.terminate(), DESTROY_GRACE_MS);
      this.closeTimer.unref();
    }
    return this;
  }

  /** Closes with a code of the caller's (the keep-alive's: no Pong, the socket is cut). */
  close(code: number, reason?: string): void {
    const state = this.ws.readyState;
    if (state === 0 || state === 1) {
      this.sentCode ??= code;
      try {
        this.ws.close(code, reason);
      } catch {
        this.ws.terminate();
      }
    }
  }

  /** Cuts the socket without a closing handshake (a peer that answers no Ping). */
  terminate(): void {
    this.sentCode ??= CLOSE_ABNORMAL;
    this.destroyed = true;
    this.ws.terminate();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.alive = true;
    this.bytesRead += data.length;
    this.observer?.messageIn(data.length, isBinary);
    if (this.ending) return;
    if (this.paused || this.held.length > 0) {
      this.held.push(data);
      return;
    }
    this.emit('data', data);
  }

  private flush(): void {
    this.flushing = false;
    while (!this.paused && !this.ending && this.held.length > 0) this.emit('data', this.held.shift()!);
    if (!this.paused) this.ws.resume();
  }

  private onClose(code: number): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.destroyed = true;
    this.held = [];
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.observer?.closed(this.sentCode ?? code, this);
    this.emit('close');
  }
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

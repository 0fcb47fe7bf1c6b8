/**
 * Two connected in-memory MsrpStreams (core/transport/stream.ts) without a socket: what
 * one end writes, the other emits as `data`, on a later turn of the event loop, with
 * back-pressure (write() answers false past the high-water mark until the reader takes the
 * bytes; a paused reader takes nothing). In message mode every write() is one message and
 * arrives as one `data` event, as on a WebSocket.
 *
 * ```ts
 * const [relaySide, clientSide] = createStreamPair({ messageMode: { maxMessageSize: 16384 } });
 * myProvider.adopt(relaySide, { listener });
 * clientSide.on('data', (frame) => …);
 * ```
 */

import { EventEmitter } from 'node:events';
import type { MsrpStream } from '../transport/stream.ts';

export interface StreamPairOptions {
  /** Each write() is one transport message (W-3), of at most this many octets. */
  messageMode?: { maxMessageSize: number };
  /** Octets in flight from one end before its write() answers false (default 64 KiB). */
  highWaterMark?: number;
  /** Both ends report themselves as encrypted (like a TLS or wss stream). */
  encrypted?: boolean;
  /** Addresses the ends report: `a` is the first stream of the pair. */
  a?: { address: string; port: number };
  b?: { address: string; port: number };
}

/** One end of a stream pair. */
export class PairedStream extends EventEmitter implements MsrpStream {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  readonly encrypted: boolean;
  readonly messageMode: { readonly maxMessageSize: number } | undefined;
  bytesRead = 0;
  bytesWritten = 0;
  destroyed = false;
  /** @internal the other end */
  other!: PairedStream;
  /** Messages (or byte chunks) written to this end, not yet read by the other. */
  private inFlight: Buffer[] = [];
  private inFlightBytes = 0;
  private needDrain = false;
  private paused = false;
  private ending = false;
  private ended = false;
  private scheduled = false;
  private readonly hwm: number;

  constructor(o: { local: { address: string; port: number }; remote: { address: string; port: number }; encrypted: boolean; messageMode: { maxMessageSize: number } | undefined; hwm: number }) {
    super();
    this.localAddress = o.local.address;
    this.localPort = o.local.port;
    this.remoteAddress = o.remote.address;
    this.remotePort = o.remote.port;
    this.encrypted = o.encrypted;
    this.messageMode = o.messageMode;
    this.hwm = o.hwm;
  }

  get writableNeedDrain(): boolean {
    return this.needDrain;
  }

  get writableLength(): number {
    return this.inFlightBytes;
  }

  write(data: Buffer | string): boolean {
    if (this.destroyed || this.ending) return false;
    const b = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
    if (this.messageMode !== undefined && b.length > this.messageMode.maxMessageSize) {
      // A real message transport refuses it (a WebSocket closes with 1009).
      queueMicrotask(() => this.emit('error', new Error(`message of ${b.length} octets is over ${this.messageMode!.maxMessageSize}`)));
      this.destroy();
      return false;
    }
    this.bytesWritten += b.length;
    this.inFlight.push(b);
    this.inFlightBytes += b.length;
    this.other.schedule();
    if (this.inFlightBytes >= this.hwm) this.needDrain = true;
    return !this.needDrain;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    this.schedule();
    return this;
  }

  /** Ends writing: the other end gets `end` after what is in flight, then both close. */
  end(): this {
    if (this.ending || this.destroyed) return this;
    this.ending = true;
    this.other.schedule();
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.inFlight = [];
    this.inFlightBytes = 0;
    setImmediate(() => this.emit('close'));
    if (!this.other.destroyed) this.other.destroy();
    return this;
  }

  /** @internal delivers what the other end wrote, on a later turn. */
  schedule(): void {
    if (this.scheduled || this.destroyed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const src = this.other;
    while (!this.paused && !this.destroyed && src.inFlight.length > 0) {
      const b = src.inFlight.shift()!;
      src.inFlightBytes -= b.length;
      this.bytesRead += b.length;
      this.emit('data', b);
    }
    if (src.needDrain && src.inFlightBytes < src.hwm && !src.destroyed) {
      src.needDrain = false;
      src.emit('drain');
    }
    if (src.ending && src.inFlight.length === 0 && !this.ended && !this.destroyed) {
      this.ended = true;
      this.emit('end');
      // Both directions done (or the reader ended too): the pair is gone.
      if (this.ending || this.other.ended) this.destroy();
      else setImmediate(() => this.destroy());
    }
  }
}

/** Two connected streams: what `a` writes `b` reads and the other way round. */
export function createStreamPair(o: StreamPairOptions = {}): [PairedStream, PairedStream] {
  const a = o.a ?? { address: '192.0.2.1', port: 40001 };
  const b = o.b ?? { address: '192.0.2.2', port: 40002 };
  const common = { encrypted: o.encrypted === true, messageMode: o.messageMode, hwm: o.highWaterMark ?? 64 * 1024 };
  const x = new PairedStream({ local: a, remote: b, ...common });
  const y = new PairedStream({ local: b, remote: a, ...common });
  x.other = y;
  y.other = x;
  return [x, y];
}

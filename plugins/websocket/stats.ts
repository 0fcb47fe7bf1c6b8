/**
 * The websocket plugin's counters, per relay (WebSocketPlugin.stats(relay)): handshakes by
 * outcome, open sockets, messages and octets each way, closes by code, Pings and missed Pongs.
 * plugins/metrics reads them at scrape time; an embedding application may read them too.
 */

import type { WsStream, WsStreamObserver } from './stream.ts';

/** Why an upgrade was refused (the `reason` label of failed handshakes). */
export type HandshakeFailure =
  /** The request's path is not the listener's (HTTP 404). */
  | 'path'
  /** No `msrp` in Sec-WebSocket-Protocol (HTTP 400, W-1, I-11). */
  | 'subprotocol'
  /** The Origin is not in the allow-list (HTTP 403, W-10). */
  | 'origin'
  /** A plain ws listener reached from neither loopback nor a declared proxy (HTTP 403, W-5). */
  | 'untrusted-peer'
  /** An authorizeUpgrade tap refused it (its HTTP status, W-9). */
  | 'refused'
  /** An authorizeUpgrade tap failed or did not answer in time (HTTP 500). */
  | 'hook-failed'
  /** Not a valid WebSocket upgrade (bad key or version, HTTP 400), or the relay is closing. */
  | 'invalid'
  /** The relay refused the connection (its caps, acceptConnection). */
  | 'relay-refused'
  /** The client went away during the handshake. */
  | 'gone';

export interface WebSocketStatsSnapshot {
  handshakes: { ok: number; failed: Record<string, number> };
  openSockets: number;
  messages: { in: number; out: number; inText: number };
  bytes: { in: number; out: number };
  closes: Record<string, number>;
  pings: number;
  pongTimeouts: number;
  backPressure: number;
}

export class WebSocketStats implements WsStreamObserver {
  handshakesOk = 0;
  readonly handshakesFailed = new Map<HandshakeFailure, number>();
  openSockets = 0;
  messagesIn = 0;
  messagesInText = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Closes by the code sent (by this end when it closed first, else the peer's). */
  readonly closes = new Map<number, number>();
  pings = 0;
  pongTimeouts = 0;
  /** Times a WebSocket's bufferedAmount reached the high-water mark and its sender was paused. */
  backPressure = 0;

  failed(reason: HandshakeFailure): void {
    this.handshakesFailed.set(reason, (this.handshakesFailed.get(reason) ?? 0) + 1);
  }

  opened(): void {
    this.handshakesOk++;
    this.openSockets++;
  }

  messageIn(bytes: number, binary: boolean): void {
    this.messagesIn++;
    if (!binary) this.messagesInText++;
    this.bytesIn += bytes;
  }

  messageOut(bytes: number): void {
    this.messagesOut++;
    this.bytesOut += bytes;
  }

  pressured(): void {
    this.backPressure++;
  }

  closed(code: number, _stream: WsStream): void {
    this.openSockets--;
    this.closes.set(code, (this.closes.get(code) ?? 0) + 1);
  }

  snapshot(): WebSocketStatsSnapshot {
    return {
      handshakes: { ok: this.handshakesOk, failed: Object.fromEntries(this.handshakesFailed) },
      openSockets: this.openSockets,
      messages: { in: this.messagesIn, out: this.messagesOut, inText: this.messagesInText },
      bytes: { in: this.bytesIn, out: this.bytesOut },
      closes: Object.fromEntries([...this.closes].map(([k, v]) => [String(k), v])),
      pings: this.pings,
      pongTimeouts: this.pongTimeouts,
      backPressure: this.backPressure,
    };
  }
}

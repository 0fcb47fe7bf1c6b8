/**
 * One MSRP endpoint of the load generator: a socket, the project's Framer on the
 * read side and the message formatters on the write side, nothing else. Over
 * `ws`/`wss` the socket is a WebSocket (the `ws` package's client, under the
 * websocket plugin's WsStream): every write is one WebSocket message, so a
 * scenario writes each frame whole there (`messageMode`), as a browser does.
 *
 * It does what a real client does and no more: it frames every octet it reads,
 * answers every SEND it receives with a 200 (unless Failure-Report says no),
 * authenticates with RFC 4976 Digest AUTH (qop=auth, `uri=` included, as Kamailio
 * requires) and writes with back-pressure (write() false -> wait for 'drain').
 * Scenarios plug their own per-frame callbacks in through `sink`.
 */

import type { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { WsStream } from '../../plugins/websocket/index.ts';
import { Framer, type EndFlag, type FrameHead } from '../../core/protocol/framer.ts';
import { formatRequest, formatResponse, getHeader, newTransactionId } from '../../core/protocol/message.ts';
import { computeDigestResponse, computeHa1, formatAuthorization, parseChallenge } from '../../core/protocol/digest.ts';

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss';

export interface Address {
  host: string;
  port: number;
  transport: Transport;
  /** ws/wss: the HTTP path (default /). */
  path?: string;
}

/** A WebSocket transport: one MSRP frame per write (RFC 7977 §5.1). */
export function isMessageMode(t: Transport): boolean {
  return t === 'ws' || t === 'wss';
}

/** What an endpoint reads and writes: a TCP or TLS socket, or a WebSocket as a WsStream. */
export interface EndpointSocket extends EventEmitter {
  write(data: Buffer | string): boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
  pause(): unknown;
  resume(): unknown;
  readonly writableNeedDrain: boolean;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  cork?(): void;
  uncork?(): void;
}

export interface Credentials {
  username: string;
  password: string;
}

/** What a scenario wants to see of the frames an endpoint reads. */
export interface FrameSink {
  /** A request head (SEND, REPORT, ...). */
  requestHead?(head: FrameHead): void;
  /** Body bytes of the request whose head came last (a view into the read buffer). */
  requestBody?(slice: Buffer): void;
  /** The request's end-line. Runs before the automatic 200 is written. */
  requestEnd?(head: FrameHead, flag: EndFlag): void;
  /** A response to a request this endpoint sent, other than the ones awaited with request(). */
  response?(head: FrameHead): void;
  /** The socket closed (or failed). */
  closed?(err: Error | undefined): void;
}

const CLIENT_SESSION_BYTES = 10;

/**
 * A new endpoint URI on this socket (RFC 4975 §6: the session-id part names the session);
 * over WebSocket a browser's: a random `.invalid` host, port 2855, `;ws` (I-14).
 */
export function endpointUri(sock: EndpointSocket, transport: Transport): string {
  if (isMessageMode(transport)) return `msrps://${randomBytes(4).toString('hex')}.invalid:2855/${randomBytes(CLIENT_SESSION_BYTES).toString('hex')};ws`;
  const scheme = transport === 'tls' ? 'msrps' : 'msrp';
  return `${scheme}://${sock.localAddress ?? '127.0.0.1'}:${sock.localPort ?? 0}/${randomBytes(CLIENT_SESSION_BYTES).toString('hex')};tcp`;
}

/** The relay URI an AUTH is addressed to (RFC 4976 §5.1: no session-id part; I-13 over WebSocket). */
export function relayAuthUri(addr: Address): string {
  const secure = addr.transport === 'tls' || addr.transport === 'wss';
  return `${secure ? 'msrps' : 'msrp'}://${addr.host}:${addr.port};${isMessageMode(addr.transport) ? 'ws' : 'tcp'}`;
}

/** Opens a WebSocket (subprotocol msrp; certificate not checked: loopback test relays). */
export function connectWebSocket(addr: Address, timeoutMs = 10_000): Promise<WsStream> {
  return new Promise((resolve, reject) => {
    const scheme = addr.transport === 'wss' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${addr.host}:${addr.port}${addr.path ?? '/'}`, ['msrp'], {
      rejectUnauthorized: false,
      perMessageDeflate: false,
      maxPayload: 1024 * 2 ** 20,
      handshakeTimeout: timeoutMs,
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, res) => {
      reject(new Error(`WebSocket upgrade refused: HTTP ${res.statusCode}`));
      ws.terminate();
    });
    let raw: net.Socket | undefined;
    ws.once('upgrade', (res) => (raw = res.socket as net.Socket));
    ws.once('open', () => {
      ws.off('error', reject);
      resolve(new WsStream(ws, { maxMessageSize: 1024 * 2 ** 20, highWaterMark: 2 ** 20, encrypted: addr.transport === 'wss', socket: raw }));
    });
  });
}

/** Connects a plain socket (TCP or TLS, certificate not checked: loopback test relays). */
export function connectSocket(addr: Address, timeoutMs = 10_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s: net.Socket =
      addr.transport === 'tls'
        ? tls.connect({ host: addr.host, port: addr.port, rejectUnauthorized: false }, () => done())
        : net.connect({ host: addr.host, port: addr.port }, () => done());
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to ${addr.host}:${addr.port} timed out`));
    }, timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      reject(e);
    };
    s.once('error', fail);
    function done(): void {
      clearTimeout(timer);
      s.off('error', fail);
      s.setNoDelay(true);
      resolve(s);
    }
  });
}

export class AuthFailed extends Error {}

export class Endpoint {
  readonly socket: EndpointSocket;
  readonly transport: Transport;
  /** Each write is one transport message (WebSocket): write frames whole. */
  readonly messageMode: boolean;
  /** The endpoint's own URI for its first session (more with newUri()). */
  readonly uri: string;
  sink: FrameSink = {};
  /** Answer SENDs with 200 (a receiver always does; turn off only to test a relay's timers). */
  answerSends = true;
  closed = false;
  private readonly framer: Framer;
  private readonly waiting = new Map<string, (head: FrameHead) => void>();
  private current: FrameHead | undefined;
  private readonly closeWaiters: Array<() => void> = [];

  constructor(socket: EndpointSocket, transport: Transport) {
    this.socket = socket;
    this.transport = transport;
    this.messageMode = isMessageMode(transport);
    this.uri = endpointUri(socket, transport);
    this.framer = new Framer({
      onHead: (h) => this.onHead(h),
      onBody: (b) => this.sink.requestBody?.(b),
      onEnd: (f) => this.onEnd(f),
    });
    socket.on('data', (d: Buffer) => {
      try {
        this.framer.push(d);
      } catch (e) {
        socket.destroy(e instanceof Error ? e : new Error(String(e)));
      }
    });
    socket.on('error', () => {
      /* reported through 'close' */
    });
    socket.on('close', () => {
      this.closed = true;
      this.sink.closed?.(undefined);
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  static async connect(addr: Address): Promise<Endpoint> {
    return new Endpoint(isMessageMode(addr.transport) ? await connectWebSocket(addr) : await connectSocket(addr), addr.transport);
  }

  /** Another URI on this socket, for a second session on the same connection. */
  newUri(): string {
    return endpointUri(this.socket, this.transport);
  }

  private onHead(h: FrameHead): void {
    if (h.kind === 'response') {
      const w = this.waiting.get(h.tid);
      if (w !== undefined) {
        this.waiting.delete(h.tid);
        w(h);
      } else this.sink.response?.(h);
      this.current = undefined;
      return;
    }
    this.current = h;
    this.sink.requestHead?.(h);
  }

  private onEnd(flag: EndFlag): void {
    const h = this.current;
    if (h === undefined) return; // a response's end-line
    this.current = undefined;
    this.sink.requestEnd?.(h, flag);
    if (h.method === 'SEND' && this.answerSends && getHeader(h.headers, 'Failure-Report') !== 'no') this.answer(h, 200);
  }

  /** A hop-by-hop response to a request this endpoint read (To-Path = the previous hop). */
  answer(h: FrameHead, status: number): void {
    const from = firstUri(getHeader(h.headers, 'From-Path'));
    const to = lastUri(getHeader(h.headers, 'To-Path'));
    this.write(formatResponse({ tid: h.tid, status, toPath: [from], fromPath: [to] }));
  }

  /** Writes; false means the socket buffer is full (call drained() before writing more). */
  write(b: Buffer | string): boolean {
    return this.socket.write(b);
  }

  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Sends a bodiless request and waits for its response. */
  request(method: string, toPath: readonly string[], fromPath: readonly string[], headers: Array<[string, string]>, timeoutMs = 10_000): Promise<FrameHead> {
    const tid = newTransactionId();
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error(`${method}: connection closed`));
        return;
      }
      const timer = setTimeout(() => {
        this.waiting.delete(tid);
        reject(new Error(`${method}: no response in ${timeoutMs} ms`));
      }, timeoutMs);
      const onClose = () => {
        clearTimeout(timer);
        this.waiting.delete(tid);
        reject(new Error(`${method}: connection closed`));
      };
      this.closeWaiters.push(onClose);
      this.waiting.set(tid, (h) => {
        clearTimeout(timer);
        const i = this.closeWaiters.indexOf(onClose);
        if (i >= 0) this.closeWaiters.splice(i, 1);
        resolve(h);
      });
      this.write(formatRequest({ tid, method, toPath, fromPath, headers }));
    });
  }

  /**
   * RFC 4976 AUTH: AUTH, expect 401 with a Digest challenge, AUTH again with
   * credentials (qop=auth, nc 00000001, fresh cnonce, uri= the relay URI), expect 200.
   * Returns the Use-Path. `uri` is the endpoint URI the session is for.
   */
  async auth(relayUri: string, creds: Credentials, uri: string = this.uri): Promise<string[]> {
    const first = await this.request('AUTH', [relayUri], [uri], []);
    if (first.status !== 401) throw new AuthFailed(`AUTH without credentials: expected 401, got ${first.status}`);
    const www = getHeader(first.headers, 'WWW-Authenticate');
    if (www === undefined) throw new AuthFailed('401 without WWW-Authenticate');
    const ch = parseChallenge(www);
    const cnonce = randomBytes(8).toString('hex');
    const nc = '00000001';
    const ha1 = computeHa1(creds.username, ch.realm, creds.password);
    const response = computeDigestResponse({ ha1, nonce: ch.nonce, nc, cnonce, qop: 'auth', method: 'AUTH', uri: relayUri });
    const authorization = formatAuthorization({
      username: creds.username,
      realm: ch.realm,
      nonce: ch.nonce,
      uri: relayUri,
      response,
      cnonce,
      nc,
      ...(ch.opaque !== '' ? { opaque: ch.opaque } : {}),
    });
    const final = await this.request('AUTH', [relayUri], [uri], [['Authorization', authorization]]);
    if (final.status !== 200) throw new AuthFailed(`AUTH with credentials: expected 200, got ${final.status} ${final.comment}`);
    const usePath = getHeader(final.headers, 'Use-Path');
    if (usePath === undefined) throw new AuthFailed('200 to AUTH without Use-Path');
    return splitPath(usePath);
  }

  close(): void {
    if (!this.closed) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }
}

export function splitPath(value: string): string[] {
  return value.split(/[ \t]+/).filter((s) => s !== '');
}

function firstUri(value: string | undefined): string {
  if (value === undefined) return '';
  const sp = value.indexOf(' ');
  return sp === -1 ? value : value.slice(0, sp);
}

function lastUri(value: string | undefined): string {
  if (value === undefined) return '';
  const sp = value.lastIndexOf(' ');
  return sp === -1 ? value : value.slice(sp + 1);
}

/**
 * An MSRP endpoint for tests: the project's integration tests drive the relay
 * with it, and plugin authors can use it for theirs.
 *
 * It reads the wire with the project's own Framer (RFC 4975 framing, binary-safe
 * bodies, end-line look-alikes) and writes with the message module's formatters,
 * so it speaks exactly what the relay speaks. On top of raw request/response I/O
 * it offers the RFC 4976 AUTH exchange (Digest, with the python-msrplib variants
 * of RFC.md §6 I-2), chunked and streamed SENDs with back-pressure, reassembly of
 * incoming messages by Message-ID (hash-only for large transfers) and waits that
 * fail with a readable list of what did arrive.
 *
 * Behaviour as an endpoint (RFC 4975 §7.2, RFC 4976 §6.4.1, RFC.md R-57):
 * - every incoming SEND chunk is answered with 200 when Failure-Report is yes or
 *   absent (To-Path = first From-Path URI of the request, From-Path = this
 *   client's URI), unless `autoRespond` is false;
 * - REPORTs are never answered, nor are other requests (AUTH, NICKNAME, unknown
 *   methods): a test answers those itself with respond().
 */
import net from 'node:net';
import type { MsrpStream } from '../transport/stream.ts';
import tls from 'node:tls';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { Framer, type EndFlag, type FrameHead } from '../protocol/framer.ts';
import { formatEndLine, formatRequestHead, formatResponse, getHeader, newTransactionId, parseByteRange } from '../protocol/message.ts';
import {
  computeDigestResponse,
  computeHa1,
  computeRspauth,
  formatAuthorization,
  parseAuthenticationInfo,
  parseChallenge,
} from '../protocol/digest.ts';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/** One request or response as received. */
export interface ReceivedFrame {
  kind: 'request' | 'response';
  tid: string;
  /** Request method; '' for a response. */
  method: string;
  /** Response status; 0 for a request. */
  status: number;
  /** Response comment ('' when absent or for a request). */
  comment: string;
  /** Every header line in order of arrival, To-Path and From-Path included. */
  headers: Array<[string, string]>;
  /** First value of a header, case-insensitive name. */
  header(name: string): string | undefined;
  /** To-Path / From-Path URIs, split on blanks ([] when the header is missing). */
  toPath: string[];
  fromPath: string[];
  /** Body bytes; empty when storeBodies is false. */
  body: Buffer;
  /** Body bytes received for this frame (also when storeBodies is false). */
  bodyLength: number;
  /** True when a blank line ended the headers (a body, possibly empty, followed). */
  hasBody: boolean;
  flag: '$' | '+' | '#';
  /** A header-level defect the framer found (folding, control character...), if any. */
  problem: string | undefined;
}

export interface ClientOptions {
  /** Default 127.0.0.1. */
  host?: string;
  port: number;
  /** true = TLS with rejectUnauthorized false; an object = these tls.connect options. */
  tls?: boolean | tls.ConnectionOptions;
  /** This client's own MSRP URI; default msrp(s)://<local address>:<local port>/<random>;tcp */
  uri?: string;
  /** Answer 200 to incoming SENDs (unless Failure-Report no/partial). Default true. */
  autoRespond?: boolean;
  /** Keep body bytes of received frames (default true); false = count + hash only (big transfers). */
  storeBodies?: boolean;
  /** Default for every wait, in ms (default 5000). */
  timeoutMs?: number;
}

export interface RequestSpec {
  method: string;
  toPath: string[];
  /** Default [this client's URI]. */
  fromPath?: string[];
  /** Headers written after To-Path and From-Path, in this order. */
  headers?: Array<[string, string]>;
  body?: Buffer | string;
  /** Written last when a body is given; default text/plain unless `headers` already has a Content-Type. */
  contentType?: string;
  /** Default '$'. */
  flag?: '$' | '+' | '#';
  /** Default a fresh newTransactionId(). A given tid is used as is, even if the body holds its end-line. */
  tid?: string;
}

export interface AuthOptions {
  /** The relay's URI: the rightmost To-Path URI of the AUTH and the Digest uri (R-36). */
  relayUri: string;
  username: string;
  password: string;
  /** Sent as an Expires header on both AUTHs. */
  expires?: number;
  /** URIs written before relayUri in To-Path (chained AUTH through another relay, R-45). */
  via?: string[];
  /** 'omit' (default, like python-msrplib, I-2) or 'include' a uri="..." parameter. */
  digestUri?: 'omit' | 'include';
  /**
   * Check the 200's Authentication-Info (rspauth, qop, cnonce, nc; R-42). Default true;
   * false for relays that send none (Kamailio's msrp module does not).
   */
  checkAuthenticationInfo?: boolean;
  /** Write qop="auth", nc="00000001" quoted, like python-msrplib (I-2). Default false (RFC 4976 §9.1 form). */
  quotedQopNc?: boolean;
}

export interface AuthResult {
  /** Status of the final response (the second AUTH's, or the first's when that was not a 401). */
  status: number;
  /** Use-Path URIs of a 200 ([] otherwise). */
  usePath: string[];
  /** Expires of the final response, when present and numeric. */
  expires: number | undefined;
  response: ReceivedFrame;
  /** The response to the first AUTH (the 401 challenge, normally). */
  challenge: ReceivedFrame;
}

export interface SendMessageOptions {
  toPath: string[];
  body: Buffer | string;
  /** Default text/plain. */
  contentType?: string;
  /** Bytes per SEND chunk; default the whole body in one chunk. */
  chunkSize?: number;
  /** Default a fresh random ident. */
  messageId?: string;
  /** Written only when given (absent means yes, R-28). */
  failureReport?: 'yes' | 'no' | 'partial';
  /** Written only when given (absent means no). */
  successReport?: 'yes' | 'no';
  /** Written after the report headers, before Content-Type. */
  extraHeaders?: Array<[string, string]>;
  /** Byte-Range `start-*\/total` for chunks over 2048 bytes (RFC 4975 §7.1.1 interruptible chunks). Default false: `start-end/total`. */
  starEnd?: boolean;
  /** Wait for one response per chunk when Failure-Report is yes or absent (default true). */
  waitResponses?: boolean;
}

export interface StreamMessageOptions extends Omit<SendMessageOptions, 'body'> {
  /** Total bytes of the message. */
  size: number;
  /** Produces bytes [offset, offset + len) of the body (0-based); must return exactly len bytes. */
  source: (offset: number, len: number) => Buffer;
  /** Bytes asked of source at a time (default 64 KiB). */
  pieceSize?: number;
}

export interface MessageSummary {
  /** Distinct body bytes received so far. */
  bytes: number;
  /** sha256 (hex) of the body assembled in Byte-Range order (arrival order when bodies are not stored). */
  sha256: string;
  /** `$` seen and every byte from 1 to the end present. */
  complete: boolean;
  /** SEND chunks received. */
  chunks: number;
  /** The assembled body (storeBodies only). */
  body?: Buffer;
}

// ---------------------------------------------------------------------------
// Helpers for large, reproducible bodies
// ---------------------------------------------------------------------------

/**
 * A deterministic byte source for streamMessage: byte i depends only on (seed, i),
 * so any slicing of the body yields the same bytes and the expected hash can be
 * recomputed independently (see hashSource).
 */
export function seededSource(seed: number): (offset: number, len: number) => Buffer {
  const s = Math.imul(seed | 0, 0x9e3779b9) >>> 0;
  return (offset, len) => {
    const first = Math.floor(offset / 4);
    const last = Math.floor((offset + len + 3) / 4);
    const buf = Buffer.allocUnsafe((last - first) * 4);
    for (let w = first, o = 0; w < last; w++, o += 4) {
      let x = (w + s) >>> 0;
      x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
      x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
      x ^= x >>> 16;
      buf.writeUInt32LE(x >>> 0, o);
    }
    const skip = offset - first * 4;
    return buf.subarray(skip, skip + len);
  };
}

/** sha256 (hex) of bytes [0, size) of a source, read in pieces. */
export function hashSource(size: number, source: (offset: number, len: number) => Buffer, pieceSize = 1 << 20): string {
  const h = createHash('sha256');
  for (let off = 0; off < size; off += pieceSize) h.update(source(off, Math.min(pieceSize, size - off)));
  return h.digest('hex');
}

/** sha256 (hex) of a buffer or UTF-8 string. */
export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------

const EMPTY = Buffer.alloc(0);
const DEFAULT_PIECE = 64 * 1024;
/** RFC 4975 §7.1.1: chunks with more body than this must be interruptible. */
const INTERRUPTIBLE_OVER = 2048;

function splitPath(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value.split(/[ \t]+/).filter((s) => s !== '');
}

class Frame implements ReceivedFrame {
  readonly kind: 'request' | 'response';
  readonly tid: string;
  readonly method: string;
  readonly status: number;
  readonly comment: string;
  readonly headers: Array<[string, string]>;
  readonly toPath: string[];
  readonly fromPath: string[];
  readonly hasBody: boolean;
  readonly problem: string | undefined;
  body: Buffer = EMPTY;
  bodyLength = 0;
  flag: EndFlag = '$';

  constructor(head: FrameHead) {
    this.kind = head.kind;
    this.tid = head.tid;
    this.method = head.method;
    this.status = head.status;
    this.comment = head.comment;
    this.headers = head.headers;
    this.hasBody = head.hasBody;
    this.problem = head.problem;
    this.toPath = splitPath(getHeader(head.headers, 'To-Path'));
    this.fromPath = splitPath(getHeader(head.headers, 'From-Path'));
  }

  header(name: string): string | undefined {
    return getHeader(this.headers, name);
  }
}

/** Per-Message-ID reassembly state. */
interface MessageState {
  total: number; // -1 when unknown
  bytes: number;
  chunks: number;
  /** sha256 over the bytes in arrival order. */
  hash: Hash;
  /** False once a chunk started elsewhere than where the previous one stopped. */
  inOrder: boolean;
  /** 1-based next byte expected in order. */
  next: number;
  /** Covered byte ranges [start, end], 1-based inclusive, sorted and merged. */
  ranges: Array<[number, number]>;
  /** Stored pieces (storeBodies): where each chunk started and its bytes. */
  pieces: Array<{ start: number; data: Buffer }> | undefined;
  /** End byte of the `$` chunk; 0 until one arrived. */
  lastEnd: number;
  lastSeen: boolean;
  aborted: boolean;
}

/** The SEND chunk being received. */
interface Incoming {
  frame: Frame;
  parts: Buffer[];
  msg: MessageState | undefined;
  /** 1-based position of the next body byte in its message. */
  pos: number;
  start: number;
}

interface FrameWaiter {
  pred: (f: ReceivedFrame) => boolean;
  label: string;
  resolve: (f: ReceivedFrame) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface MessageWaiter {
  id: string;
  resolve: (m: MessageSummary) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function addRange(ranges: Array<[number, number]>, start: number, end: number): void {
  if (end < start) return;
  ranges.push([start, end]);
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const r of ranges) {
    const top = merged[merged.length - 1];
    if (top !== undefined && r[0] <= top[1] + 1) top[1] = Math.max(top[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  ranges.splice(0, ranges.length, ...merged);
}

function covered(ranges: ReadonlyArray<readonly [number, number]>): number {
  let n = 0;
  for (const [s, e] of ranges) n += e - s + 1;
  return n;
}

function describePred(pred: (f: ReceivedFrame) => boolean): string {
  const src = pred.toString().replace(/\s+/g, ' ');
  return src.length > 160 ? `${src.slice(0, 157)}...` : src;
}

function newMessageId(): string {
  return randomBytes(10).toString('hex');
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

export class MsrpTestClient {
  /** This client's MSRP URI (From-Path of what it sends, To-Path of what it expects). */
  readonly uri: string;
  readonly socket: net.Socket;
  /** Everything received, in order (consumed or not). */
  readonly frames: ReceivedFrame[] = [];
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  private error: Error | undefined;

  private readonly autoRespond: boolean;
  private readonly storeBodies: boolean;
  private readonly timeoutMs: number;
  private readonly framer: Framer;
  private readonly consumed = new Set<ReceivedFrame>();
  private readonly waiters: FrameWaiter[] = [];
  private readonly messages = new Map<string, MessageState>();
  private readonly messageWaiters: MessageWaiter[] = [];
  /** expectNone() checks, run after every frame and on close. */
  private readonly frameListeners = new Set<() => void>();
  private current: Incoming | undefined;
  private closedFlag = false;
  /** Set by onRequest(): takes incoming requests instead of `frames` and the waits. */
  private requestListener: ((f: ReceivedFrame) => void) | undefined;
  /** Chunks being streamed right now: whole frames wait for their end-lines (never inside a body). */
  private chunksOpen = 0;
  private readonly heldFrames: Array<Buffer | string> = [];

  /** Connects over TCP or TLS; rejects on a connection error or after timeoutMs. */
  static connect(opts: ClientOptions): Promise<MsrpTestClient> {
    const host = opts.host ?? '127.0.0.1';
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise<MsrpTestClient>((resolve, reject) => {
      let socket: net.Socket;
      const onConnect = (): void => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new MsrpTestClient(socket, opts, opts.tls !== undefined && opts.tls !== false));
      };
      const onError = (e: Error): void => {
        clearTimeout(timer);
        reject(e);
      };
      if (opts.tls !== undefined && opts.tls !== false) {
        const extra: tls.ConnectionOptions = opts.tls === true ? { rejectUnauthorized: false } : opts.tls;
        socket = tls.connect({ host, port: opts.port, ...extra }, onConnect);
      } else {
        socket = net.connect({ host, port: opts.port }, onConnect);
      }
      socket.once('error', onError);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connecting to ${host}:${opts.port} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
    });
  }

  /**
   * A client over a stream that is already open: one end of createStreamPair(), or any
   * MsrpStream (core/transport/stream.ts). On a message-oriented stream every frame this
   * client writes is one write() (sendRequest, sendMessage, respond, auth).
   */
  static over(stream: MsrpStream, opts: Omit<ClientOptions, 'port' | 'host' | 'tls'> = {}): MsrpTestClient {
    return new MsrpTestClient(stream as unknown as net.Socket, { ...opts, port: 0 }, stream.encrypted === true);
  }

  private constructor(socket: net.Socket, opts: ClientOptions, isTls: boolean) {
    this.socket = socket;
    this.autoRespond = opts.autoRespond ?? true;
    this.storeBodies = opts.storeBodies ?? true;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    if (opts.uri !== undefined) {
      this.uri = opts.uri;
    } else {
      const addr = socket.localAddress ?? '127.0.0.1';
      const host = net.isIPv6(addr) ? `[${addr}]` : addr;
      this.uri = `${isTls ? 'msrps' : 'msrp'}://${host}:${socket.localPort ?? 0}/${randomBytes(8).toString('hex')};tcp`;
    }
    socket.setNoDelay?.(true);
    this.framer = new Framer({
      onHead: (h) => this.onHead(h),
      onBody: (d) => this.onBody(d),
      onEnd: (f) => this.onEnd(f),
    });
    this.closed = new Promise<void>((resolve) => {
      socket.once('close', () => {
        this.closedFlag = true;
        this.failAllWaiters();
        resolve();
      });
    });
    socket.on('error', (e) => {
      this.error ??= e;
    });
    socket.on('data', (d: Buffer) => {
      try {
        this.framer.push(d);
      } catch (e) {
        this.error = e instanceof Error ? e : new Error(String(e));
        socket.destroy();
      }
    });
  }

  /** Why the connection failed, if it did (a socket error, or a FramerError on input). */
  get lastError(): Error | undefined {
    return this.error;
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  // ------------------------------------------------------------------ output

  /** Raw bytes out (for malformed-input tests). */
  write(data: Buffer | string): boolean {
    return this.socket.write(data);
  }

  /**
   * Sends one request and returns its tid. Headers follow To-Path/From-Path in the
   * given order; with a body, Content-Type goes last.
   */
  sendRequest(spec: RequestSpec): string {
    const body = spec.body === undefined ? undefined : typeof spec.body === 'string' ? Buffer.from(spec.body, 'utf8') : spec.body;
    const headers: Array<[string, string]> = [...(spec.headers ?? [])];
    if (body !== undefined) {
      if (spec.contentType !== undefined) headers.push(['Content-Type', spec.contentType]);
      else if (getHeader(headers, 'Content-Type') === undefined) headers.push(['Content-Type', 'text/plain']);
    }
    const tid = spec.tid ?? this.freshTid(body);
    const flag = spec.flag ?? '$';
    const head = formatRequestHead({ tid, method: spec.method, toPath: spec.toPath, fromPath: spec.fromPath ?? [this.uri], headers, hasBody: body !== undefined });
    const out =
      body === undefined
        ? Buffer.from(head + formatEndLine(tid, flag, false), 'utf8')
        : Buffer.concat([Buffer.from(head, 'utf8'), body, Buffer.from(formatEndLine(tid, flag, true), 'latin1')]);
    this.writeFrame(out);
    return tid;
  }

  /** Answers a received request: To-Path is the previous hop for a SEND (R-57), the whole From-Path otherwise (end to end). */
  respond(to: ReceivedFrame, status: number, comment?: string, headers?: Array<[string, string]>): void {
    if (to.kind !== 'request') throw new Error('respond(): only requests can be answered');
    const toPath = to.method === 'SEND' ? to.fromPath.slice(0, 1) : to.fromPath;
    this.writeFrame(formatResponse({ tid: to.tid, status, comment, toPath, fromPath: [this.uri], headers }));
  }

  /**
   * A whole frame: written now, or after the end-line of the chunk being streamed, so
   * it never lands inside that chunk's body. (A real client may instead interrupt the
   * chunk, R-67; waiting is the simple correct choice for a test client.)
   */
  private writeFrame(frame: Buffer | string): void {
    if (this.chunksOpen > 0) this.heldFrames.push(frame);
    else this.socket.write(frame);
  }

  /**
   * Sends a message as one or more SEND chunks (back to back, like real clients,
   * I-9), then, when Failure-Report is yes or absent and waitResponses is not
   * false, waits for one response per chunk. Responses are returned in chunk
   * order, whatever their status.
   */
  async sendMessage(o: SendMessageOptions): Promise<{ messageId: string; responses: ReceivedFrame[] }> {
    const body = typeof o.body === 'string' ? Buffer.from(o.body, 'utf8') : o.body;
    const size = body.length;
    const tids = await this.sendChunks(o, size, (start, len, write) => write(body.subarray(start, start + len)));
    const responses = await this.collectResponses(o, tids.tids);
    return { messageId: tids.messageId, responses };
  }

  /**
   * Streams a large body, produced piece by piece by o.source, as one or more SEND
   * chunks (default one chunk of o.size bytes). Writes wait for 'drain', so the
   * whole body is never held. Returns the Message-ID, the sha256 of the bytes sent
   * and, as sendMessage does, the responses.
   */
  async streamMessage(o: StreamMessageOptions): Promise<{ messageId: string; sha256: string; responses: ReceivedFrame[] }> {
    const piece = o.pieceSize ?? DEFAULT_PIECE;
    if (!(piece > 0)) throw new Error('streamMessage: pieceSize must be positive');
    const hash = createHash('sha256');
    const sent = await this.sendChunks({ ...o, contentType: o.contentType ?? 'application/octet-stream' }, o.size, async (start, len, write) => {
      for (let off = 0; off < len; off += piece) {
        const n = Math.min(piece, len - off);
        const data = o.source(start + off, n);
        if (data.length !== n) throw new Error(`streamMessage: source(${start + off}, ${n}) returned ${data.length} bytes`);
        hash.update(data);
        await write(data);
      }
    });
    const responses = await this.collectResponses(o, sent.tids);
    return { messageId: sent.messageId, sha256: hash.digest('hex'), responses };
  }

  /** Writes the chunks of one message; `fill` writes body bytes [start, start + len) (0-based). */
  private async sendChunks(
    o: Omit<SendMessageOptions, 'body'>,
    size: number,
    fill: (start: number, len: number, write: (b: Buffer) => Promise<void>) => Promise<void> | void,
  ): Promise<{ messageId: string; tids: string[] }> {
    if (!Number.isInteger(size) || size < 0) throw new Error(`message size must be a whole number >= 0, got ${size}`);
    const chunkSize = o.chunkSize ?? Math.max(size, 1);
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`chunkSize must be a whole number >= 1, got ${chunkSize}`);
    const messageId = o.messageId ?? newMessageId();
    const tids: string[] = [];
    // On a message-oriented stream (W-3) a chunk's head, body and end-line leave as one message.
    const messageMode = (this.socket as unknown as MsrpStream).messageMode !== undefined;
    let gathered: Buffer[] = [];
    const write = (b: Buffer | string): Promise<void> => {
      if (!messageMode) return this.writeAsync(b);
      gathered.push(typeof b === 'string' ? Buffer.from(b, 'utf8') : b);
      return Promise.resolve();
    };
    let start = 0;
    do {
      const len = Math.min(chunkSize, size - start);
      const last = start + len >= size;
      const tid = newTransactionId();
      const end = o.starEnd === true && len > INTERRUPTIBLE_OVER ? '*' : String(start + len);
      const headers: Array<[string, string]> = [['Message-ID', messageId], ['Byte-Range', `${start + 1}-${end}/${size}`]];
      if (o.successReport !== undefined) headers.push(['Success-Report', o.successReport]);
      if (o.failureReport !== undefined) headers.push(['Failure-Report', o.failureReport]);
      if (o.extraHeaders !== undefined) headers.push(...o.extraHeaders);
      headers.push(['Content-Type', o.contentType ?? 'text/plain']);
      tids.push(tid);
      this.chunksOpen++;
      try {
        await write(formatRequestHead({ tid, method: 'SEND', toPath: o.toPath, fromPath: [this.uri], headers, hasBody: true }));
        await fill(start, len, write);
        await write(formatEndLine(tid, last ? '$' : '+', true));
        if (messageMode) {
          const frame = Buffer.concat(gathered);
          gathered = [];
          await this.writeAsync(frame);
        }
      } finally {
        this.chunksOpen--;
        if (this.chunksOpen === 0 && !this.socket.destroyed) for (const f of this.heldFrames.splice(0)) this.socket.write(f);
      }
      start += len;
    } while (start < size);
    return { messageId, tids };
  }

  private async collectResponses(o: { failureReport?: string; waitResponses?: boolean }, tids: string[]): Promise<ReceivedFrame[]> {
    const expect = (o.failureReport ?? 'yes') === 'yes' && o.waitResponses !== false;
    if (!expect) return [];
    return Promise.all(tids.map((tid) => this.waitForResponse(tid)));
  }

  /** A tid whose end-line does not occur in the body (RFC 4975 §7.1). */
  private freshTid(body: Buffer | undefined): string {
    for (;;) {
      const tid = newTransactionId();
      if (body === undefined || body.indexOf(`-------${tid}`, 0, 'latin1') === -1) return tid;
    }
  }

  private writeAsync(data: Buffer | string): Promise<void> {
    if (this.socket.destroyed) return Promise.reject(new Error('write on a closed connection'));
    if (this.socket.write(data)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        this.socket.off('close', onClose);
        resolve();
      };
      const onClose = (): void => {
        this.socket.off('drain', onDrain);
        reject(new Error('the connection closed while writing'));
      };
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  // -------------------------------------------------------------------- AUTH

  /**
   * The RFC 4976 AUTH exchange: AUTH without credentials, expect 401, AUTH with
   * Digest credentials (fresh cnonce, nc 00000001, HA2 over relayUri), and return
   * the final response. On a 200 the Authentication-Info is checked (R-42:
   * rspauth, cnonce, nc and qop present, rspauth correct); a wrong or missing
   * one throws. A first response other than 401 is returned as the final one.
   */
  async auth(o: AuthOptions): Promise<AuthResult> {
    const toPath = [...(o.via ?? []), o.relayUri];
    const base: Array<[string, string]> = o.expires !== undefined ? [['Expires', String(o.expires)]] : [];
    const t1 = this.sendRequest({ method: 'AUTH', toPath, headers: base });
    const challenge = await this.waitForResponse(t1);
    if (challenge.status !== 401) return this.authResult(challenge, challenge);

    const www = challenge.header('WWW-Authenticate');
    if (www === undefined) throw new Error('auth(): the 401 has no WWW-Authenticate header');
    const ch = parseChallenge(www);
    const cnonce = randomBytes(16).toString('hex');
    const nc = '00000001';
    const ha1 = computeHa1(o.username, ch.realm, o.password);
    const response = computeDigestResponse({ ha1, nonce: ch.nonce, nc, cnonce, qop: 'auth', method: 'AUTH', uri: o.relayUri });
    const creds = {
      username: o.username,
      realm: ch.realm,
      nonce: ch.nonce,
      uri: o.digestUri === 'include' ? o.relayUri : undefined,
      response,
      cnonce,
      nc,
      opaque: ch.opaque === '' ? undefined : ch.opaque,
    };
    const authorization = o.quotedQopNc === true ? formatQuotedAuthorization(creds) : formatAuthorization(creds);
    const t2 = this.sendRequest({ method: 'AUTH', toPath, headers: [['Authorization', authorization], ...base] });
    const final = await this.waitForResponse(t2);
    if (final.status === 200 && o.checkAuthenticationInfo !== false) {
      const infoValue = final.header('Authentication-Info');
      if (infoValue === undefined) throw new Error('auth(): the 200 has no Authentication-Info header (R-42)');
      const info = parseAuthenticationInfo(infoValue);
      const expected = computeRspauth({ ha1, nonce: ch.nonce, nc, cnonce, qop: 'auth', uri: o.relayUri });
      if (info.rspauth.toLowerCase() !== expected) {
        throw new Error(`auth(): wrong rspauth in Authentication-Info: got ${info.rspauth}, expected ${expected}`);
      }
      if (info.qop === undefined || info.qop.toLowerCase() !== 'auth') throw new Error('auth(): Authentication-Info lacks qop=auth (R-42)');
      if (info.cnonce !== cnonce) throw new Error(`auth(): Authentication-Info cnonce ${String(info.cnonce)} is not ours (${cnonce})`);
      if (info.nc === undefined || info.nc.toLowerCase() !== nc) throw new Error(`auth(): Authentication-Info nc ${String(info.nc)} is not ${nc}`);
    }
    return this.authResult(final, challenge);
  }

  private authResult(response: ReceivedFrame, challenge: ReceivedFrame): AuthResult {
    const exp = response.header('Expires');
    return {
      status: response.status,
      usePath: response.status === 200 ? splitPath(response.header('Use-Path')) : [],
      expires: exp !== undefined && /^\d+$/.test(exp) ? Number(exp) : undefined,
      response,
      challenge,
    };
  }

  // ------------------------------------------------------------------- waits

  /**
   * The first not-yet-consumed frame matching pred (frames already received
   * count); it is then consumed. Rejects after timeoutMs, or when the connection
   * closes, with a message listing what was received.
   */
  waitFor(pred: (f: ReceivedFrame) => boolean, timeoutMs: number = this.timeoutMs): Promise<ReceivedFrame> {
    return this.waitMatching(pred, `waitFor(${describePred(pred)})`, timeoutMs);
  }

  /** The response with this tid (consumed like waitFor). */
  waitForResponse(tid: string, timeoutMs: number = this.timeoutMs): Promise<ReceivedFrame> {
    return this.waitMatching((f) => f.kind === 'response' && f.tid === tid, `waitForResponse(${tid})`, timeoutMs);
  }

  private waitMatching(pred: (f: ReceivedFrame) => boolean, label: string, timeoutMs: number): Promise<ReceivedFrame> {
    try {
      for (const f of this.frames) {
        if (!this.consumed.has(f) && pred(f)) {
          this.consumed.add(f);
          return Promise.resolve(f);
        }
      }
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    if (this.closedFlag) return Promise.reject(new Error(this.report(`${label}: the connection is closed`)));
    return new Promise<ReceivedFrame>((resolve, reject) => {
      const w: FrameWaiter = {
        pred,
        label,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.removeWaiter(w);
          reject(new Error(this.report(`${label} timed out after ${timeoutMs} ms`)));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /**
   * Resolves true if no not-yet-consumed frame matching pred is present or arrives
   * within ms (true at once if the connection closes meanwhile), false (without
   * consuming it) as soon as one does.
   */
  expectNone(pred: (f: ReceivedFrame) => boolean, ms: number): Promise<boolean> {
    for (const f of this.frames) if (!this.consumed.has(f) && pred(f)) return Promise.resolve(false);
    if (this.closedFlag) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const start = this.frames.length;
      const check = (): void => {
        for (let i = start; i < this.frames.length; i++) {
          const f = this.frames[i]!;
          if (!this.consumed.has(f) && pred(f)) {
            finish(false);
            return;
          }
        }
      };
      const onClose = (): void => finish(true);
      const finish = (v: boolean): void => {
        clearTimeout(timer);
        this.frameListeners.delete(check);
        this.socket.off('close', onClose);
        resolve(v);
      };
      const timer = setTimeout(() => finish(true), ms);
      this.frameListeners.add(check);
      this.socket.once('close', onClose);
    });
  }

  /** Reassembly state of an incoming message, by Message-ID. */
  message(messageId: string): MessageSummary | undefined {
    const m = this.messages.get(messageId);
    return m === undefined ? undefined : this.summarize(m);
  }

  /** Resolves once the message is complete; rejects on timeout, on a `#` abort or when the connection closes. */
  waitForMessage(messageId: string, timeoutMs: number = this.timeoutMs): Promise<MessageSummary> {
    const m = this.messages.get(messageId);
    if (m !== undefined && this.isComplete(m)) return Promise.resolve(this.summarize(m));
    if (m?.aborted === true) return Promise.reject(new Error(`waitForMessage(${messageId}): the message was aborted (#)`));
    if (this.closedFlag) return Promise.reject(new Error(this.messageReport(messageId, 'the connection is closed')));
    return new Promise<MessageSummary>((resolve, reject) => {
      const w: MessageWaiter = {
        id: messageId,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.messageWaiters.indexOf(w);
          if (i !== -1) this.messageWaiters.splice(i, 1);
          reject(new Error(this.messageReport(messageId, `timed out after ${timeoutMs} ms`)));
        }, timeoutMs),
      };
      this.messageWaiters.push(w);
    });
  }

  // ------------------------------------------------------- long-running use

  /**
   * Hands every incoming request to `listener` once its end-line has arrived (after
   * the automatic 200) instead of keeping it in `frames`: waits then see responses
   * only. The frame carries its body even when storeBodies is false, one chunk at a
   * time, so a transfer can be written out as it arrives without being held. For
   * long-running clients (`msrprelay client`); tests keep the default. Returns a
   * function that removes the listener.
   */
  onRequest(listener: (f: ReceivedFrame) => void): () => void {
    this.requestListener = listener;
    return () => {
      if (this.requestListener === listener) this.requestListener = undefined;
    };
  }

  /**
   * Drops the frames a wait has consumed and the reassembly state of complete or
   * aborted messages, which are otherwise kept for the life of the connection.
   */
  forget(): void {
    let kept = 0;
    for (const f of this.frames) if (!this.consumed.has(f)) this.frames[kept++] = f;
    this.frames.length = kept;
    this.consumed.clear();
    for (const [id, m] of this.messages) if (m.aborted || this.isComplete(m)) this.messages.delete(id);
  }

  // ------------------------------------------------------------------- close

  /** Ends the connection (FIN) and waits for it to close; destroys it after timeoutMs. */
  async close(): Promise<void> {
    if (!this.closedFlag) {
      this.socket.end();
      const timer = setTimeout(() => this.socket.destroy(), this.timeoutMs);
      await this.closed;
      clearTimeout(timer);
    }
  }

  /**
   * Stops reading the socket (the peer's writes back up: a slow receiver), for
   * back-pressure and interruption tests; resumeReading() goes on.
   */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Drops the connection at once (RST-like), for abrupt-disconnect tests. */
  destroy(): void {
    this.socket.destroy();
  }

  // ------------------------------------------------------------------- input

  private onHead(head: FrameHead): void {
    const frame = new Frame(head);
    const inc: Incoming = { frame, parts: [], msg: undefined, pos: 1, start: 1 };
    const mid = frame.kind === 'request' && frame.method === 'SEND' ? frame.header('Message-ID') : undefined;
    if (mid !== undefined) {
      const brValue = frame.header('Byte-Range');
      const br = brValue === undefined ? undefined : parseByteRange(brValue);
      const start = br?.start ?? 1;
      let m = this.messages.get(mid);
      if (m === undefined || m.aborted || this.isComplete(m)) {
        m = {
          total: -1,
          bytes: 0,
          chunks: 0,
          hash: createHash('sha256'),
          inOrder: true,
          next: 1,
          ranges: [],
          pieces: this.storeBodies ? [] : undefined,
          lastEnd: 0,
          lastSeen: false,
          aborted: false,
        };
        this.messages.set(mid, m);
      }
      if (br !== undefined && br.total !== -1) m.total = br.total;
      else if (br === undefined && !head.hasBody) m.total = 0;
      m.chunks++;
      if (start !== m.next) m.inOrder = false;
      inc.msg = m;
      inc.pos = start;
      inc.start = start;
    }
    this.current = inc;
  }

  private onBody(data: Buffer): void {
    const inc = this.current;
    if (inc === undefined) return;
    inc.frame.bodyLength += data.length;
    if (this.storeBodies || (this.requestListener !== undefined && inc.frame.kind === 'request')) inc.parts.push(Buffer.from(data));
    const m = inc.msg;
    if (m !== undefined) {
      m.hash.update(data);
      m.bytes += data.length;
      inc.pos += data.length;
      if (m.inOrder) m.next = inc.pos;
    }
  }

  private onEnd(flag: EndFlag): void {
    const inc = this.current;
    this.current = undefined;
    if (inc === undefined) return;
    const f = inc.frame;
    f.flag = flag;
    if (inc.parts.length > 0) f.body = inc.parts.length === 1 ? inc.parts[0]! : Buffer.concat(inc.parts);
    const m = inc.msg;
    if (m !== undefined) {
      const end = inc.pos - 1;
      if (end >= inc.start) {
        // Re-sent bytes count once.
        const before = covered(m.ranges);
        addRange(m.ranges, inc.start, end);
        m.bytes -= f.bodyLength - (covered(m.ranges) - before);
        if (m.pieces !== undefined) m.pieces.push({ start: inc.start, data: f.body });
      }
      if (flag === '$') {
        m.lastSeen = true;
        m.lastEnd = Math.max(m.lastEnd, end);
      } else if (flag === '#') {
        m.aborted = true;
      }
    }
    // Endpoint behaviour: 200 to SEND chunks unless Failure-Report is no or partial (RFC 4975 §7.2).
    if (this.autoRespond && f.kind === 'request' && f.method === 'SEND' && f.fromPath.length > 0) {
      const fr = (f.header('Failure-Report') ?? 'yes').toLowerCase();
      if (fr !== 'no' && fr !== 'partial' && !this.socket.destroyed) {
        this.writeFrame(formatResponse({ tid: f.tid, status: 200, toPath: f.fromPath.slice(0, 1), fromPath: [this.uri] }));
      }
    }
    this.deliver(f);
    if (m !== undefined) this.settleMessage(m);
  }

  private deliver(f: Frame): void {
    if (f.kind === 'request' && this.requestListener !== undefined) {
      this.requestListener(f);
      return;
    }
    this.frames.push(f);
    for (const w of this.waiters) {
      let hit: boolean;
      try {
        hit = w.pred(f);
      } catch (e) {
        this.removeWaiter(w);
        clearTimeout(w.timer);
        w.reject(e instanceof Error ? e : new Error(String(e)));
        break;
      }
      if (hit) {
        this.consumed.add(f);
        this.removeWaiter(w);
        clearTimeout(w.timer);
        w.resolve(f);
        break;
      }
    }
    for (const l of [...this.frameListeners]) l();
  }

  private settleMessage(m: MessageState): void {
    for (const w of [...this.messageWaiters]) {
      if (this.messages.get(w.id) !== m) continue;
      if (this.isComplete(m)) {
        this.messageWaiters.splice(this.messageWaiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(this.summarize(m));
      } else if (m.aborted) {
        this.messageWaiters.splice(this.messageWaiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.reject(new Error(`waitForMessage(${w.id}): the message was aborted (#)`));
      }
    }
  }

  private isComplete(m: MessageState): boolean {
    if (!m.lastSeen || m.aborted) return false;
    const end = m.total !== -1 ? m.total : m.lastEnd;
    if (end === 0) return m.ranges.length === 0;
    return m.ranges.length === 1 && m.ranges[0]![0] === 1 && m.ranges[0]![1] === end;
  }

  private summarize(m: MessageState): MessageSummary {
    const out: MessageSummary = { bytes: m.bytes, sha256: '', complete: this.isComplete(m), chunks: m.chunks };
    if (m.pieces !== undefined) {
      const size = m.ranges.reduce((mx, r) => Math.max(mx, r[1]), 0);
      const body = Buffer.alloc(size);
      for (const p of m.pieces) p.data.copy(body, p.start - 1);
      out.body = body;
      // With stored pieces the hash is over Byte-Range order even if chunks came out of order.
      out.sha256 = m.inOrder ? m.hash.copy().digest('hex') : sha256Hex(body);
    } else {
      out.sha256 = m.hash.copy().digest('hex');
    }
    return out;
  }

  // --------------------------------------------------------------- reporting

  private removeWaiter(w: FrameWaiter): void {
    const i = this.waiters.indexOf(w);
    if (i !== -1) this.waiters.splice(i, 1);
  }

  private failAllWaiters(): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(this.report(`${w.label}: the connection closed`)));
    }
    for (const w of this.messageWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(this.messageReport(w.id, 'the connection closed')));
    }
    for (const l of [...this.frameListeners]) l();
  }

  private messageReport(id: string, why: string): string {
    const m = this.messages.get(id);
    const state =
      m === undefined
        ? 'no chunk of it arrived'
        : `${m.chunks} chunk(s), ${m.bytes} byte(s) of ${m.total === -1 ? '?' : m.total}, ${m.lastSeen ? '$ seen' : 'no $ yet'}`;
    return this.report(`waitForMessage(${id}) ${why}: ${state}`);
  }

  /** `what` plus the frames received (the last 30) and the connection state. */
  private report(what: string): string {
    const lines = [`${what}; received ${this.frames.length} frame(s)${this.frames.length > 30 ? ' (last 30 shown)' : ''}:`];
    const from = Math.max(0, this.frames.length - 30);
    for (let i = from; i < this.frames.length; i++) lines.push(`  [${i}] ${this.describe(this.frames[i]!)}`);
    if (this.frames.length === 0) lines.push('  (nothing)');
    if (this.closedFlag) lines.push('  connection: closed');
    if (this.error !== undefined) lines.push(`  error: ${this.error.message}`);
    return lines.join('\n');
  }

  private describe(f: ReceivedFrame): string {
    const what = f.kind === 'request' ? f.method : `${f.status}${f.comment === '' ? '' : ` ${f.comment}`}`;
    const mid = f.header('Message-ID');
    const br = f.header('Byte-Range');
    return (
      `${f.kind} ${what} tid=${f.tid}` +
      (mid !== undefined ? ` Message-ID=${mid}` : '') +
      (br !== undefined ? ` Byte-Range=${br}` : '') +
      (f.hasBody ? ` body=${f.bodyLength}B` : '') +
      (f.flag !== '$' ? ` flag=${f.flag}` : '') +
      (this.consumed.has(f) ? ' (consumed)' : '')
    );
  }
}

/** Authorization in python-msrplib's spelling: qop and nc quoted (RFC.md §6 I-2). */
function formatQuotedAuthorization(c: {
  username: string;
  realm: string;
  nonce: string;
  uri: string | undefined;
  response: string;
  cnonce: string;
  nc: string;
  opaque: string | undefined;
}): string {
  const q = (v: string): string => {
    if (/[\r\n\0]/.test(v)) throw new Error('Authorization values must not contain CR, LF or NUL');
    return `"${v.replace(/[\\"]/g, '\\$&')}"`;
  };
  const parts = [`username=${q(c.username)}`, `realm=${q(c.realm)}`, `nonce=${q(c.nonce)}`];
  if (c.uri !== undefined) parts.push(`uri=${q(c.uri)}`);
  parts.push(`qop="auth"`, `nc=${q(c.nc)}`, `cnonce=${q(c.cnonce)}`, `response=${q(c.response)}`);
  if (c.opaque !== undefined) parts.push(`opaque=${q(c.opaque)}`);
  return `Digest ${parts.join(', ')}`;
}

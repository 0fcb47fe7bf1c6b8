// A small MSRP-over-WebSocket client for the browser (RFC 4975, RFC 4976 AUTH, RFC 7977):
// one MSRP frame per WebSocket message, Digest AUTH (MD5, qop=auth), SEND in chunks with a
// window and the socket's bufferedAmount as back-pressure, reassembly of what arrives (chunks
// cut by the relay included), SHA-256 of files with WebCrypto. ES module, no dependencies but md5.js.

import { md5 } from './md5.js';

const CRLF = '\r\n';
const enc = new TextEncoder();
const dec = new TextDecoder();
/** One character per octet (windows-1252 is a single-byte decoding): offsets in it are octet offsets. */
const latin1 = new TextDecoder('latin1');

/** Random letters and digits (I-5: tids and ids the relay and msrplib accept). */
export function randomId(n = 20) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  let s = '';
  for (const b of bytes) s += alphabet[b % 62];
  return s;
}

export function toHex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export async function sha256Hex(data) {
  return toHex(await crypto.subtle.digest('SHA-256', data));
}

/** A WWW-Authenticate or Authorization parameter list → Map (quoted values unquoted). */
export function parseAuthParams(value) {
  const out = new Map();
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  let m;
  while ((m = re.exec(value)) !== null) out.set(m[1].toLowerCase(), m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]);
  return out;
}

/**
 * The Authorization value answering a Digest challenge (RFC 4976 §9.1): HA2 over "AUTH:" and
 * the Digest uri, which is the AUTH's To-Path URI byte for byte; qop=auth, nc 1.
 */
export function digestAuthorization({ challenge, username, password, uri, cnonce = randomId(16) }) {
  const p = parseAuthParams(challenge.replace(/^Digest\s+/i, ''));
  const realm = p.get('realm') ?? '';
  const nonce = p.get('nonce') ?? '';
  const opaque = p.get('opaque');
  const nc = '00000001';
  const ha1 = md5(`${username}:${realm}:${password}`);
  const ha2 = md5(`AUTH:${uri}`);
  const response = md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`);
  const parts = [`username="${username}"`, `realm="${realm}"`, `nonce="${nonce}"`, `uri="${uri}"`, `response="${response}"`, 'qop=auth', `nc=${nc}`, `cnonce="${cnonce}"`];
  if (opaque !== undefined) parts.push(`opaque="${opaque}"`);
  return `Digest ${parts.join(', ')}`;
}

/** One MSRP frame (a WebSocket message holds exactly one, W-3) → its parts. */
export function parseFrame(bytes) {
  // Structure is found on a one-octet-per-character view (offsets are octets); header values are UTF-8.
  const view = latin1.decode(bytes.subarray(0, Math.min(bytes.length, 65536)));
  const firstLineEnd = view.indexOf(CRLF);
  const start = view.slice(0, firstLineEnd).split(' ');
  if (start[0] !== 'MSRP' || start.length < 3) throw new Error('not an MSRP frame');
  const tid = start[1];
  const endLine = `-------${tid}`;
  const blank = view.indexOf(CRLF + CRLF, firstLineEnd);
  const endAt = view.indexOf(CRLF + endLine, firstLineEnd);
  const hasBody = blank !== -1 && (endAt === -1 || blank < endAt);
  const headEnd = hasBody ? blank : endAt === -1 ? view.length : endAt;
  const headers = [];
  for (const line of dec.decode(bytes.subarray(firstLineEnd + 2, headEnd)).split(CRLF)) {
    const c = line.indexOf(':');
    if (c > 0) headers.push([line.slice(0, c), line.slice(c + 1).trim()]);
  }
  const flag = String.fromCharCode(bytes[bytes.length - 3]);
  const bodyStart = blank + 4;
  const bodyEnd = bytes.length - (2 + endLine.length + 1 + 2);
  const body = hasBody ? bytes.subarray(bodyStart, Math.max(bodyStart, bodyEnd)) : new Uint8Array(0);
  const header = (name) => headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
  const isResponse = /^\d{3}$/.test(start[2]);
  return {
    tid,
    kind: isResponse ? 'response' : 'request',
    method: isResponse ? undefined : start[2],
    status: isResponse ? Number(start[2]) : undefined,
    comment: isResponse ? start.slice(3).join(' ') : undefined,
    headers,
    header,
    toPath: (header('To-Path') ?? '').split(/\s+/).filter(Boolean),
    fromPath: (header('From-Path') ?? '').split(/\s+/).filter(Boolean),
    body,
    flag,
  };
}

/** A request as one Uint8Array: head, body (when given, Content-Type last) and end-line. */
export function formatRequest({ tid, method, toPath, fromPath, headers = [], body, contentType, flag = '$' }) {
  let head = `MSRP ${tid} ${method}${CRLF}To-Path: ${toPath.join(' ')}${CRLF}From-Path: ${fromPath.join(' ')}${CRLF}`;
  for (const [k, v] of headers) head += `${k}: ${v}${CRLF}`;
  if (body === undefined) return enc.encode(`${head}-------${tid}${flag}${CRLF}`);
  head += `Content-Type: ${contentType ?? 'text/plain'}${CRLF}${CRLF}`;
  const h = enc.encode(head);
  const e = enc.encode(`${CRLF}-------${tid}${flag}${CRLF}`);
  const out = new Uint8Array(h.length + body.length + e.length);
  out.set(h);
  out.set(body, h.length);
  out.set(e, h.length + body.length);
  return out;
}

export function formatResponse({ tid, status, comment, toPath, fromPath }) {
  return enc.encode(`MSRP ${tid} ${status} ${comment}${CRLF}To-Path: ${toPath.join(' ')}${CRLF}From-Path: ${fromPath.join(' ')}${CRLF}-------${tid}$${CRLF}`);
}

/** "1-*\/1000" → { start, end, total } (end and total undefined for *). */
export function parseByteRange(v) {
  const m = /^(\d+)-(\d+|\*)\/(\d+|\*)$/.exec(v ?? '');
  if (m === null) return { start: 1, end: undefined, total: undefined };
  return { start: Number(m[1]), end: m[2] === '*' ? undefined : Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/**
 * A message arriving in chunks (in any order, cut anywhere by the relays): the pieces by
 * offset, complete when the `$` piece came and every byte before it did.
 */
class Incoming {
  constructor(first) {
    this.messageId = first.header('Message-ID');
    this.contentType = first.header('Content-Type') ?? 'text/plain';
    this.disposition = first.header('Content-Disposition');
    this.from = first.fromPath;
    this.total = parseByteRange(first.header('Byte-Range')).total;
    this.pieces = [];
    this.received = 0;
    this.endAt = undefined;
    this.aborted = false;
  }

  add(frame) {
    const r = parseByteRange(frame.header('Byte-Range'));
    if (r.total !== undefined) this.total = r.total;
    this.pieces.push({ start: r.start, data: frame.body.slice() });
    this.received += frame.body.length;
    if (frame.flag === '$') this.endAt = r.start - 1 + frame.body.length;
    if (frame.flag === '#') this.aborted = true;
  }

  get complete() {
    return this.endAt !== undefined && this.received >= this.endAt;
  }

  /** The body, assembled by offset. */
  assemble() {
    const out = new Uint8Array(this.endAt);
    for (const p of this.pieces) out.set(p.data.subarray(0, Math.max(0, Math.min(p.data.length, this.endAt - (p.start - 1)))), p.start - 1);
    return out;
  }

  get filename() {
    const m = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(this.disposition ?? '');
    return m ? m[1].replace(/\\(.)/g, '$1') : undefined;
  }

  get isFile() {
    return !this.contentType.toLowerCase().startsWith('text/') || /^\s*attachment\b/i.test(this.disposition ?? '');
  }
}

/**
 * One connection to the relay and the session AUTH gives it. Events (EventTarget):
 * - `message`: { from, text } or { from, file: { name, size, type, blob, sha256 } } for what arrived complete;
 * - `progress`: { messageId, direction: 'in'|'out', bytes, total, name };
 * - `peer`: { path }: the far end's path learnt from what it sent;
 * - `state`: { state: 'connecting'|'authenticating'|'ready'|'closed'|'reconnecting', detail };
 * - `report`: { messageId, status } for failure REPORTs.
 */
export class MsrpClient extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.url        ws:// or wss:// URL of the relay's WebSocket listener
   * @param {string} o.user       user@domain (the Digest user name is the part before @)
   * @param {string} [o.password] for Digest; not needed with a token
   * @param {() => Promise<string|undefined>} [o.token] a pre-authorisation token for the upgrade (W-9), asked before each connect
   * @param {string} [o.relayUri] AUTH To-Path (default msrp://<domain>:<ws port>;ws, I-13)
   * @param {number} [o.reconnectDelay] ms before reconnecting after an unexpected close (default 3000; 0: never)
   * @param {number} [o.chunkSize] body octets per SEND chunk (default 64 KiB - 1 KiB of room for the head)
   */
  constructor(o) {
    super();
    this.o = o;
    const at = o.user.lastIndexOf('@');
    this.username = at > 0 ? o.user.slice(0, at) : o.user;
    this.domain = at > 0 ? o.user.slice(at + 1) : new URL(o.url).hostname;
    const u = new URL(o.url);
    const port = u.port || (u.protocol === 'wss:' ? '443' : '80');
    this.relayUri = o.relayUri ?? `${u.protocol === 'wss:' ? 'msrps' : 'msrp'}://${this.domain}:${port};ws`;
    this.chunkSize = o.chunkSize ?? 63 * 1024;
    this.usePath = [];
    this.peer = undefined;
    this.ws = undefined;
    this.pending = new Map();
    this.incoming = new Map();
    this.closedByUs = false;
    this.uri = undefined;
  }

  /** This client's path: its relay's Use-Path and its own URI (what a far end sends to). */
  get path() {
    return [...this.usePath, this.uri];
  }

  state(state, detail = '') {
    this.currentState = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, detail } }));
  }

  /** Opens the WebSocket and authenticates (a fresh URI each time: a new connection is a new session, I-17). */
  async connect() {
    this.closedByUs = false;
    this.state('connecting');
    // I-14: a random .invalid host; it is matched, never dialled.
    this.uri = `msrps://${randomId(8).toLowerCase()}.invalid:2855/${randomId(16)};ws`;
    const token = this.o.token !== undefined ? await this.o.token() : undefined;
    const url = token !== undefined ? `${this.o.url}${this.o.url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : this.o.url;
    const ws = new WebSocket(url, ['msrp']);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    await new Promise((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot open ${this.o.url}`));
    });
    ws.onerror = null;
    ws.onmessage = (ev) => this.onFrame(new Uint8Array(typeof ev.data === 'string' ? enc.encode(ev.data) : ev.data));
    ws.onclose = (ev) => this.onClose(ev);
    this.state('authenticating');
    const first = await this.request({ method: 'AUTH', toPath: [this.relayUri] });
    let final = first;
    if (first.status === 401) {
      const challenge = first.header('WWW-Authenticate') ?? '';
      const authorization = digestAuthorization({ challenge, username: this.username, password: this.o.password ?? '', uri: this.relayUri });
      final = await this.request({ method: 'AUTH', toPath: [this.relayUri], headers: [['Authorization', authorization]] });
    }
    if (final.status !== 200) {
      const why = `AUTH failed: ${final.status} ${final.comment}`;
      this.closedByUs = true;
      ws.close(1000);
      this.state('closed', why);
      throw new Error(why);
    }
    this.usePath = (final.header('Use-Path') ?? '').split(/\s+/).filter(Boolean);
    this.preAuthorized = first.status === 200;
    this.state('ready', this.preAuthorized ? 'pre-authorised (no challenge)' : 'authenticated with Digest');
    return this.path;
  }

  close() {
    this.closedByUs = true;
    this.ws?.close(1000);
  }

  onClose(ev) {
    for (const [, p] of this.pending) p.reject(new Error('the connection closed'));
    this.pending.clear();
    this.incoming.clear();
    if (this.closedByUs || (this.o.reconnectDelay ?? 3000) === 0) {
      this.state('closed', `code ${ev.code}`);
      return;
    }
    // I-17: reconnect after a while and AUTH afresh; the old tokens died with the socket.
    this.state('reconnecting', `closed with code ${ev.code}`);
    this.reconnect(this.o.reconnectDelay ?? 3000);
  }

  /** Tries again after `delay` ms, doubling it up to 30 s while the relay cannot be reached. */
  reconnect(delay) {
    setTimeout(() => {
      if (this.closedByUs) return;
      this.connect().then(
        () => this.dispatchEvent(new CustomEvent('reconnected', { detail: { path: this.path } })),
        (e) => {
          if (/^AUTH failed/.test(e.message) || this.closedByUs) return;
          this.state('reconnecting', e.message);
          this.reconnect(Math.min(delay * 2, 30000));
        },
      );
    }, delay);
  }

  /** Sends a request and resolves with its response (SEND chunks with Failure-Report yes, AUTH). */
  request(spec) {
    const tid = randomId(20);
    const frame = formatRequest({ tid, fromPath: [this.uri], ...spec });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tid);
        reject(new Error(`no answer to ${spec.method} in 30 s`));
      }, 30000);
      this.pending.set(tid, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(frame);
    });
  }

  /** Waits while the browser holds more than `limit` octets unsent (back-pressure). */
  async drained(limit = 1 << 20) {
    while (this.ws.readyState === WebSocket.OPEN && this.ws.bufferedAmount > limit) await new Promise((r) => setTimeout(r, 5));
  }

  toPath() {
    if (this.peer === undefined) throw new Error('nobody to talk to yet: set the far end\'s path, or wait for a message');
    return [...this.usePath, ...this.peer];
  }

  async sendText(text) {
    const body = enc.encode(text);
    const r = await this.request({
      method: 'SEND',
      toPath: this.toPath(),
      headers: [['Message-ID', randomId(16)], ['Byte-Range', `1-${body.length}/${body.length}`], ['Success-Report', 'no'], ['Failure-Report', 'yes']],
      body,
      contentType: 'text/plain;charset=utf-8',
    });
    if (r.status !== 200) throw new Error(`not sent: ${r.status} ${r.comment}`);
  }

  /**
   * Sends a File (or Blob) as one message in chunks (RFC 5547 style): read piece by piece,
   * up to 8 chunks awaiting their 200, the socket's bufferedAmount kept under 1 MiB.
   * Resolves with { name, size, sha256 } once every chunk got its 200.
   */
  async sendFile(file, name = file.name ?? 'file') {
    const toPath = this.toPath();
    const messageId = randomId(16);
    const size = file.size;
    const hashing = file.arrayBuffer().then((b) => sha256Hex(b));
    const inFlight = new Set();
    let acked = 0;
    let failure;
    for (let off = 0; off < size || (size === 0 && off === 0); off += this.chunkSize) {
      if (failure !== undefined) break;
      const end = Math.min(size, off + this.chunkSize);
      const body = new Uint8Array(await file.slice(off, end).arrayBuffer());
      while (inFlight.size >= 8) await Promise.race(inFlight);
      await this.drained();
      const p = this.request({
        method: 'SEND',
        toPath,
        headers: [
          ['Message-ID', messageId],
          ['Byte-Range', `${off + 1}-${end}/${size}`],
          ['Success-Report', 'no'],
          ['Failure-Report', 'yes'],
          ['Content-Disposition', `attachment; filename="${name.replace(/["\\]/g, '_')}"`],
        ],
        body,
        contentType: file.type || 'application/octet-stream',
        flag: end >= size ? '$' : '+',
      }).then(
        (r) => {
          inFlight.delete(p);
          if (r.status !== 200) failure = new Error(`chunk ${off + 1}-${end}: ${r.status} ${r.comment}`);
          acked += body.length;
          this.dispatchEvent(new CustomEvent('progress', { detail: { messageId, direction: 'out', bytes: acked, total: size, name } }));
        },
        (e) => {
          inFlight.delete(p);
          failure = e;
        },
      );
      inFlight.add(p);
      if (size === 0) break;
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    return { name, size, sha256: await hashing, messageId };
  }

  onFrame(bytes) {
    let f;
    try {
      f = parseFrame(bytes);
    } catch {
      return;
    }
    if (f.kind === 'response') {
      const p = this.pending.get(f.tid);
      if (p !== undefined) {
        this.pending.delete(f.tid);
        p.resolve(f);
      }
      return;
    }
    if (f.method === 'REPORT') {
      const status = f.header('Status') ?? '';
      if (!/^000 200\b/.test(status)) this.dispatchEvent(new CustomEvent('report', { detail: { messageId: f.header('Message-ID'), status } }));
      return;
    }
    const reply = (status, comment) => {
      if (f.header('Failure-Report') === 'no') return;
      const toPath = f.method === 'SEND' ? [f.fromPath[0]] : f.fromPath;
      this.ws.send(formatResponse({ tid: f.tid, status, comment, toPath, fromPath: [this.uri] }));
    };
    if (f.method !== 'SEND') {
      reply(501, 'Not Implemented');
      return;
    }
    reply(200, 'OK');
    const messageId = f.header('Message-ID');
    // A bodiless SEND is a keep-alive (W-11): nothing to show.
    if (messageId === undefined || (f.body.length === 0 && f.header('Content-Type') === undefined)) return;
    // The far end's path: From-Path less this client's own relay URIs (they come first, R-58).
    let i = 0;
    while (i < f.fromPath.length - 1 && i < this.usePath.length && f.fromPath[i] === this.usePath[i]) i++;
    const far = f.fromPath.slice(i);
    if (this.peer === undefined || this.peer.join(' ') !== far.join(' ')) {
      this.peer = far;
      this.dispatchEvent(new CustomEvent('peer', { detail: { path: far } }));
    }
    let m = this.incoming.get(messageId);
    if (m === undefined) {
      m = new Incoming(f);
      this.incoming.set(messageId, m);
    }
    m.add(f);
    if (m.isFile) this.dispatchEvent(new CustomEvent('progress', { detail: { messageId, direction: 'in', bytes: m.received, total: m.total, name: m.filename ?? messageId } }));
    if (m.aborted) {
      this.incoming.delete(messageId);
      return;
    }
    if (!m.complete) return;
    this.incoming.delete(messageId);
    const body = m.assemble();
    const from = m.from[m.from.length - 1];
    if (!m.isFile) {
      this.dispatchEvent(new CustomEvent('message', { detail: { from, messageId, text: dec.decode(body) } }));
      return;
    }
    sha256Hex(body).then((sha256) => {
      const blob = new Blob([body], { type: m.contentType });
      this.dispatchEvent(new CustomEvent('message', { detail: { from, messageId, file: { name: m.filename ?? `${messageId}.bin`, size: body.length, type: m.contentType, blob, sha256 } } }));
    });
  }
}

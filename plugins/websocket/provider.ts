/**
 * The transport provider for `ws` and `wss` listen entries (RFC 7977): an HTTP or HTTPS server
 * of Node's own, with the `ws` package mounted on it (`noServer`, upgrades handled here), and
 * every WebSocket handed to the relay as a message-mode MsrpStream (stream.ts).
 *
 * The upgrade, in order, each refusal counted by reason (stats.ts):
 *   path (404) → `msrp` subprotocol offered (400, W-1, I-11) → a plain ws listener reached from
 *   loopback or a declared proxy only (403, W-5) → the client address (X-Forwarded-For from
 *   declared proxies only) → Origin allow-list (403, W-10) → authorizeUpgrade taps (W-9: a
 *   cookie or token pre-authorises the connection, or the tap's HTTP status) → 101 with
 *   `Sec-WebSocket-Protocol: msrp` and Access-Control-Allow-Origin (W-10) → adopt().
 *
 * One provider serves a relay for its whole life: a reload gives it the new plugin instance's
 * options, and its listeners (and their certificates, on SIGHUP) are reconciled by the relay.
 */

import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { describeEntry, type Admission, type ListenConfig, type ListenerInfo, type PluginHost, type TransportContext, type TransportListener, type TransportProvider } from '../../core/index.ts';
import { AddressSet, clientAddress, isLoopback, OriginList, plainAddress } from './addresses.ts';
import { WebSocketStats, type HandshakeFailure } from './stats.ts';
import { WsStream } from './stream.ts';
import type { HandshakeEvent, PreAuthorization, UpgradeDecision, UpgradeRequest, WebSocketHooks } from './types.ts';

export interface WebSocketOptions {
  /** Largest WebSocket message accepted, in octets; above it the socket closes with 1009. */
  maxPayload: number;
  /** Largest message sent: longer chunks are cut to fit (W-4). */
  maxMessageSize: number;
  /** Octets queued toward a WebSocket (bufferedAmount) before its sender is paused. */
  highWaterMark: number;
  /** Seconds between Pings (W-11); a socket whose Pong has not come by the next one is closed. 0: none. */
  pingInterval: number;
  /** Allowed Origins (W-10); empty: any. */
  origins: string[];
  /** Refuse upgrades without an Origin header (only browsers send one). */
  requireOrigin: boolean;
  /** Proxies (addresses, CIDRs) whose X-Forwarded-For is believed and that may reach a plain ws listener. */
  trustedProxies: string[];
  /** The trusted proxies terminate TLS: WebSockets they forward count as encrypted (R-7, W-5). */
  proxyTls: boolean;
  /** Which listener Use-Path URIs of WebSocket clients name (W-8): auto = tls, else tcp. */
  usePath: 'auto' | 'tls' | 'tcp' | 'self';
}

/** Where the plugin's hooks and counters live; the provider asks for them at every upgrade. */
export interface ProviderHost {
  hooks(): WebSocketHooks;
  options(): WebSocketOptions;
  /** A pre-authorised connection was adopted: make sure its AUTH is answered (index.ts). */
  preAuthorized(): void;
  readonly stats: WebSocketStats;
  readonly relay: PluginHost;
}

const NOTES_KEY = 'websocket';

/** What the plugin keeps in `connection.notes` under its name. */
export interface ConnectionNote {
  readonly preAuthorization?: PreAuthorization;
}

interface OpenListener {
  readonly entry: ListenConfig;
  readonly info: ListenerInfo;
  readonly server: Server | HttpsServer;
  readonly secure: boolean;
}

function tlsOptions(entry: ListenConfig): SecureContextOptions {
  return {
    cert: readFileSync(entry.cert!),
    key: readFileSync(entry.key!),
    ...(entry.ca !== undefined ? { ca: readFileSync(entry.ca) } : {}),
    // R-2, W-13: TLS 1.2 at least.
    minVersion: entry.minVersion ?? 'TLSv1.2',
  };
}

/** W-1, I-11: the client offered the `msrp` subprotocol. */
function offersMsrp(header: string | undefined): boolean {
  if (header === undefined) return false;
  return header.split(',').some((p) => p.trim() === 'msrp');
}

/** An HTTP answer on a socket that is not upgraded. */
function refuse(socket: Socket, status: number, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const body = `${STATUS_CODES[status] ?? 'Error'}\n`;
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`, 'Connection: close', 'Content-Type: text/plain', `Content-Length: ${Buffer.byteLength(body)}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  socket.setTimeout(5000, () => socket.destroy());
}

export class WebSocketTransport implements TransportProvider {
  readonly name = 'websocket';
  readonly transports = Object.freeze(['ws', 'wss']);
  private readonly host: ProviderHost;
  private readonly listeners = new Set<OpenListener>();
  /** Every open WebSocket of this relay (for the keep-alive). */
  private readonly streams = new Set<WsStream>();
  /** Places under the caps taken at the TCP accept, by `address:port`, until the upgrade adopts them. */
  private readonly admissions = new Map<string, { admission: Admission; timer: NodeJS.Timeout }>();
  private pingTimer: NodeJS.Timeout | undefined;
  private pingEvery = 0;
  /** `ws` servers by maxPayload (a reload may change it; the server's options are fixed). */
  private wss: { maxPayload: number; server: WebSocketServer } | undefined;
  private parsed: { key: WebSocketOptions; proxies: AddressSet; origins: OriginList } | undefined;

  constructor(host: ProviderHost) {
    this.host = host;
  }

  /** The options' proxies and origins, parsed once per options object. */
  private view(): { o: WebSocketOptions; proxies: AddressSet; origins: OriginList } {
    const o = this.host.options();
    if (this.parsed?.key !== o) this.parsed = { key: o, proxies: new AddressSet(o.trustedProxies), origins: new OriginList(o.origins) };
    return { o, proxies: this.parsed.proxies, origins: this.parsed.origins };
  }

  check(entry: ListenConfig): string[] {
    const problems: string[] = [];
    const o = this.host.options();
    if (entry.transport === 'wss' && (entry.cert === undefined || entry.key === undefined)) problems.push('a wss listener needs "cert" and "key"');
    // W-5: MSRP over WebSocket MUST be protected; plain ws for tests on loopback, or behind a proxy that does TLS.
    if (entry.transport === 'ws' && !isLoopback(entry.host) && o.trustedProxies.length === 0) {
      problems.push('plain ws is for loopback or behind a TLS-terminating proxy (RFC 7977 §5.1, W-5): use wss, bind to 127.0.0.1, or declare the proxy in the websocket plugin\'s "trustedProxies"');
    }
    const listen = this.host.relay.config.listen;
    if ((o.usePath === 'tls' || o.usePath === 'tcp') && !listen.some((l) => l.transport === o.usePath)) {
      problems.push(`the websocket plugin's usePath is "${o.usePath}" but no ${o.usePath} listener is configured (W-8)`);
    }
    return problems;
  }

  /** W-8: the transport whose listener Use-Path URIs of this listener's clients name. */
  private usePathTransport(ctx: TransportContext): string | undefined {
    const o = this.host.options();
    const listen = ctx.config().listen;
    if (o.usePath === 'self') return undefined;
    if (o.usePath === 'tls' || o.usePath === 'tcp') return o.usePath;
    if (listen.some((l) => l.transport === 'tls')) return 'tls';
    if (listen.some((l) => l.transport === 'tcp')) return 'tcp';
    return undefined;
  }

  listen(entry: ListenConfig, ctx: TransportContext): Promise<TransportListener> {
    const secure = entry.transport === 'wss';
    let server: Server | HttpsServer;
    try {
      server = secure ? createHttpsServer({ ...tlsOptions(entry) }) : createHttpServer();
    } catch (e) {
      return Promise.reject(new Error(`listen ${describeEntry(entry)}: cannot read the certificate or key: ${(e as Error).message}`));
    }
    const cfg = ctx.config();
    // Slow headers are a slowloris (2H); an upgrade is one request.
    server.headersTimeout = Math.max(1000, cfg.timeouts.headerCompletion * 1000);
    server.requestTimeout = Math.max(server.headersTimeout, cfg.timeouts.firstRequest * 1000);
    server.maxConnections = Number.MAX_SAFE_INTEGER;
    const path = entry.path ?? '/';
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      // A plain GET of the WebSocket path: 426 tells what is expected; anything else is not here.
      const pathname = new URL(req.url ?? '/', 'http://relay.invalid').pathname;
      const status = pathname === path ? 426 : 404;
      const body = `${STATUS_CODES[status]}\n`;
      res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), ...(status === 426 ? { Upgrade: 'websocket', 'Sec-WebSocket-Protocol': 'msrp' } : {}) });
      res.end(body);
    });
    server.on('clientError', (_e: Error, socket: Socket) => socket.destroy());
    if (secure) (server as HttpsServer).on('tlsClientError', (_e: Error, socket: TLSSocket) => socket.destroy());
    // the TCP connection takes its place under the relay's caps when it is accepted, not
    // when its TLS handshake and HTTP upgrade are over (a peer that never finishes either would
    // be outside every cap), and both must be done within timeouts.tlsHandshake.
    server.on('connection', (raw: Socket) => {
      const peer = plainAddress(raw.remoteAddress ?? '');
      // A declared proxy stands for many clients: each is counted at its upgrade, by the
      // address the proxy forwards (X-Forwarded-For).
      if (this.view().proxies.has(peer)) return;
      const admission = ctx.admit(peer);
      if (admission === undefined) {
        raw.on('error', () => {});
        raw.destroy();
        return;
      }
      const key = socketKey(raw);
      const pending = { admission, timer: setTimeout(() => raw.destroy(), ctx.config().timeouts.tlsHandshake * 1000) };
      pending.timer.unref();
      this.admissions.set(key, pending);
      raw.once('close', () => {
        if (this.admissions.get(key) !== pending) return;
        this.admissions.delete(key);
        clearTimeout(pending.timer);
        admission.release();
      });
    });

    return new Promise((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        reject(new Error(`listen ${describeEntry(entry)}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`));
      };
      server.once('error', onError);
      server.listen({ host: entry.host, port: entry.port, backlog: 1024 }, () => {
        server.off('error', onError);
        server.on('error', (e: Error) => ctx.log.warn('websocket listener error', { listener: describeEntry(entry), error: e.message }));
        const port = (server.address() as AddressInfo).port;
        const via = this.usePathTransport(ctx);
        const info: ListenerInfo = Object.freeze({
          transport: entry.transport,
          host: entry.host,
          port,
          insecureAuth: entry.insecureAuth === true,
          scheme: secure ? 'msrps' : 'msrp',
          ...(via !== undefined ? { usePathTransport: via } : {}),
        });
        const l: OpenListener = { entry, info, server, secure };
        this.listeners.add(l);
        server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
          this.onUpgrade(l, ctx, req, socket, head).catch((e: unknown) => {
            ctx.log.error('websocket upgrade failed', { error: e instanceof Error ? e.message : String(e) });
            socket.destroy();
          });
        });
        resolve({
          info,
          close: () => {
            this.listeners.delete(l);
            // Stops accepting; upgraded sockets are the relay's connections and stay open.
            // Idle keep-alive HTTP sockets (a plain GET of the path) would hold the port a while.
            server.close();
            server.closeIdleConnections();
            return Promise.resolve();
          },
          reload: (next: ListenConfig) => {
            // SIGHUP: new certificate files for new handshakes; open connections keep theirs.
            if (secure) (server as HttpsServer).setSecureContext(tlsOptions(next));
          },
        });
      });
    });
  }

  private wssFor(maxPayload: number): WebSocketServer {
    if (this.wss?.maxPayload !== maxPayload) {
      const server = new WebSocketServer({
        noServer: true,
        // Never the library's 100 MiB: a message is one MSRP chunk (W-3).
        maxPayload,
        perMessageDeflate: false,
        clientTracking: false,
        // W-2: text frames carry MSRP bytes; they are not checked as UTF-8.
        skipUTF8Validation: true,
        // W-1: the 101 names `msrp` (offered: checked before the upgrade).
        handleProtocols: (protocols: Set<string>) => (protocols.has('msrp') ? 'msrp' : false),
      });
      // W-10: Access-Control-Allow-Origin on the 101 when the browser sent an Origin.
      server.on('headers', (headers: string[], req: IncomingMessage) => {
        const origin = req.headers.origin;
        if (origin !== undefined && /^[\x21-\x7e]+$/.test(origin)) headers.push(`Access-Control-Allow-Origin: ${origin}`, 'Vary: Origin');
      });
      server.on('wsClientError', (_e: Error, socket: Socket) => socket.destroy());
      this.wss = { maxPayload, server };
    }
    return this.wss.server;
  }

  private fail(socket: Socket, status: number, reason: HandshakeFailure, ctx: TransportContext, remote: string, headers?: Record<string, string>): void {
    this.host.stats.failed(reason);
    ctx.log.debug('websocket upgrade refused', { remote, status, reason });
    this.tell({ ok: false, status, reason, remoteAddress: remote }, ctx);
    refuse(socket, status, headers);
  }

  /** The `handshake` notification: a tap that throws is logged, never the upgrade's problem. */
  private tell(event: HandshakeEvent, ctx: TransportContext): void {
    const hooks = this.host.hooks();
    if (hooks.handshake.taps.length === 0) return;
    try {
      hooks.handshake.call(event);
    } catch (e) {
      ctx.log.warn('websocket: a handshake tap failed', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  private async onUpgrade(l: OpenListener, ctx: TransportContext, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    const { o, proxies, origins } = this.view();
    const peer = plainAddress(socket.remoteAddress ?? '');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://relay.invalid');
    } catch {
      return this.fail(socket, 400, 'invalid', ctx, peer);
    }
    if (url.pathname !== (l.entry.path ?? '/')) return this.fail(socket, 404, 'path', ctx, peer);
    // W-1, I-11: `ws` alone would complete an upgrade that offers no `msrp`.
    if (!offersMsrp(req.headers['sec-websocket-protocol'])) return this.fail(socket, 400, 'subprotocol', ctx, peer);
    const viaProxy = proxies.has(peer);
    // W-5: plain ws only from loopback (tests) or a declared proxy (which terminates TLS).
    if (!l.secure && !viaProxy && !isLoopback(peer)) return this.fail(socket, 403, 'untrusted-peer', ctx, peer);
    const remoteAddress = clientAddress(peer, req.headers['x-forwarded-for'], proxies);
    const remotePort = remoteAddress === peer ? (socket.remotePort ?? 0) : 0;
    const forwardedProto = String(req.headers['x-forwarded-proto'] ?? '').toLowerCase();
    const encrypted = l.secure || (viaProxy && (o.proxyTls || forwardedProto === 'https' || forwardedProto === 'wss'));
    const origin = req.headers.origin;
    // W-10: an Origin allow-list (a page of another site may not use the user's cookies here).
    if (!origins.allows(origin, o.requireOrigin)) return this.fail(socket, 403, 'origin', ctx, remoteAddress);

    let pre: PreAuthorization | undefined;
    const hooks = this.host.hooks();
    if (hooks.authorizeUpgrade.taps.length > 0) {
      let decision: UpgradeDecision | undefined;
      try {
        decision = await this.authorize(hooks, new UpgradeRequestOf(req, url, remoteAddress, remotePort, origin, l.info, encrypted, socket), ctx);
      } catch (e) {
        ctx.log.warn('websocket upgrade: an authorizeUpgrade tap failed', { remote: remoteAddress, error: e instanceof Error ? e.message : String(e) });
        return this.fail(socket, 500, 'hook-failed', ctx, remoteAddress);
      }
      if (decision !== undefined && 'refuse' in decision) {
        const status = decision.refuse.status;
        return this.fail(socket, status, 'refused', ctx, remoteAddress, decision.refuse.headers);
      }
      if (decision !== undefined) pre = decision.accept;
    }
    if (socket.destroyed || !socket.writable) {
      this.host.stats.failed('gone');
      return;
    }
    const wss = this.wssFor(o.maxPayload);
    let upgraded = false;
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      upgraded = true;
      this.onOpen(ws, socket, l, ctx, { remoteAddress, remotePort, encrypted, pre });
    });
    // `ws` answered the upgrade itself (a bad key or version): it is not one. (Its callback
    // runs before handleUpgrade returns when the upgrade completes.)
    if (!upgraded) this.host.stats.failed('invalid');
  }

  /** Runs the authorizeUpgrade taps under the hook timeout; the signal aborts at the deadline or when the client goes. */
  private authorize(hooks: WebSocketHooks, request: UpgradeRequestOf, ctx: TransportContext): Promise<UpgradeDecision | undefined> {
    const timeoutMs = ctx.config().timeouts.hook * 1000;
    return new Promise<UpgradeDecision | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        const e = new Error(`authorizeUpgrade did not answer within ${timeoutMs} ms`);
        request.abort(e);
        reject(e);
      }, timeoutMs);
      hooks.authorizeUpgrade.promise(request).then(
        (d) => {
          clearTimeout(timer);
          resolve(d);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  private onOpen(ws: WebSocket, socket: Socket, l: OpenListener, ctx: TransportContext, a: { remoteAddress: string; remotePort: number; encrypted: boolean; pre: PreAuthorization | undefined }): void {
    const o = this.host.options();
    const stats = this.host.stats;
    const stream = new WsStream(
      ws,
      {
        maxMessageSize: o.maxMessageSize,
        highWaterMark: o.highWaterMark,
        encrypted: a.encrypted,
        socket,
        remoteAddress: a.remoteAddress,
        remotePort: a.remotePort,
        localAddress: plainAddress(socket.localAddress ?? ''),
        localPort: socket.localPort,
      },
      stats,
    );
    stats.opened();
    this.tell({ ok: true, status: 101, reason: 'upgraded', remoteAddress: a.remoteAddress }, ctx);
    this.streams.add(stream);
    stream.once('close', () => {
      this.streams.delete(stream);
      if (this.streams.size === 0) this.stopPings();
    });
    // The place taken at the TCP accept (keyed by the socket's address and port: for wss the
    // upgrade's socket is the TLS one over it) moves to the connection.
    const key = socketKey(socket);
    const pending = this.admissions.get(key);
    if (pending !== undefined) {
      this.admissions.delete(key);
      clearTimeout(pending.timer);
    }
    const conn = ctx.adopt(stream, {
      listener: l.info,
      ...(pending !== undefined ? { admission: pending.admission } : {}),
      peer: { remoteAddress: a.remoteAddress, remotePort: a.remotePort, localAddress: stream.localAddress ?? '', localPort: stream.localPort ?? 0 },
      encrypted: a.encrypted,
    });
    if (conn === undefined) {
      stats.failed('relay-refused');
      return;
    }
    if (a.pre !== undefined) {
      conn.notes.set(NOTES_KEY, { preAuthorization: a.pre } satisfies ConnectionNote);
      this.host.preAuthorized();
    }
    this.startPings();
  }

  // ------------------------------------------------------------ keep-alive (W-11, I-18)

  private startPings(): void {
    const every = this.host.options().pingInterval;
    if (every <= 0) return this.stopPings();
    if (this.pingTimer !== undefined && this.pingEvery === every) return;
    this.stopPings();
    this.pingEvery = every;
    this.pingTimer = setInterval(() => this.pingAll(), every * 1000);
    this.pingTimer.unref();
  }

  private stopPings(): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.pingEvery = 0;
  }

  private pingAll(): void {
    const stats = this.host.stats;
    for (const s of this.streams) {
      if (!s.alive) {
        // No Pong (and nothing else) since the last Ping: the peer is gone.
        stats.pongTimeouts++;
        s.terminate();
        continue;
      }
      s.alive = false;
      s.ping();
      stats.pings++;
    }
    // The interval may have changed on a reload.
    if (this.host.options().pingInterval !== this.pingEvery && this.streams.size > 0) this.startPings();
  }

  /** The note the plugin keeps on a connection (its pre-authorisation). */
  static note(conn: { notes: Map<string, unknown> }): ConnectionNote | undefined {
    return conn.notes.get(NOTES_KEY) as ConnectionNote | undefined;
  }
}

/** What authorizeUpgrade taps get. */
class UpgradeRequestOf implements UpgradeRequest {
  private controller: AbortController | undefined;
  private cookies: Map<string, string> | undefined;
  readonly path: string;
  readonly query: URLSearchParams;

  constructor(
    readonly request: IncomingMessage,
    url: URL,
    readonly remoteAddress: string,
    readonly remotePort: number,
    readonly origin: string | undefined,
    readonly listener: ListenerInfo,
    readonly encrypted: boolean,
    private readonly socket: Socket,
  ) {
    this.path = url.pathname;
    this.query = url.searchParams;
  }

  get headers(): IncomingMessage['headers'] {
    return this.request.headers;
  }

  get bearer(): string | undefined {
    const m = /^Bearer[ \t]+([A-Za-z0-9._~+/-]+=*)[ \t]*$/i.exec(this.request.headers.authorization ?? '');
    return m?.[1];
  }

  cookie(name: string): string | undefined {
    if (this.cookies === undefined) {
      this.cookies = new Map();
      for (const part of (this.request.headers.cookie ?? '').split(';')) {
        const eq = part.indexOf('=');
        if (eq < 0) continue;
        const k = part.slice(0, eq).trim();
        let v = part.slice(eq + 1).trim();
        if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
        if (k !== '' && !this.cookies.has(k)) this.cookies.set(k, v);
      }
    }
    return this.cookies.get(name);
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const c = (this.controller = new AbortController());
      if (this.socket.destroyed) c.abort(new Error('the client went away'));
      else this.socket.once('close', () => c.abort(new Error('the client went away')));
    }
    return this.controller.signal;
  }

  /** @internal the deadline passed */
  abort(e: Error): void {
    if (this.controller === undefined) this.controller = new AbortController();
    this.controller.abort(e);
  }
}

/** A live TCP connection's key: its remote address and port (the same for a TLS socket over it). */
function socketKey(s: Socket): string {
  return `${s.remoteAddress ?? ''}:${s.remotePort ?? 0}`;
}

/**
 * One worker of `msrprelay --workers N` (DESIGN.md §7), on the transport seam: the link
 * between workers is a transport ('worker') like TCP or TLS (core/transport/stream.ts).
 *
 * - It listens on the worker's private Unix socket (core/cluster/worker-link.ts) and adopts
 *   what arrives there: hops (another worker relays frames toward a token of this worker,
 *   handled like a connection from another relay) and hand-overs (a client's connection that
 *   landed on another worker, whose first request names a token of this one).
 * - It dials the other workers' sockets for hops toward their tokens.
 * - It stands between the TCP/TLS listeners and the relay (gate): a fresh client connection
 *   whose first request names a token of another worker is piped to that worker.
 *
 * Session-ids start with the worker's index, so any worker can tell which one owns a token.
 */

import type net from 'node:net';
import { maskId, newWorkerSessionId, workerOfSession } from '../session/session-table.ts';
import type { ListenConfig, RelayConfig } from '../config/schema.ts';
import type { Logger } from '../plugin.ts';
import type { AdoptOptions, MsrpStream, TransportContext, TransportListener, TransportProvider } from '../transport/stream.ts';
import type { ConnectionContext, ListenerInfo, NextHop } from '../types.ts';
import {
  dialWorker,
  firstToPathUri,
  formatHandoff,
  isHandoff,
  MAX_PREAMBLE,
  openInternalServer,
  parseHandoff,
  pipeBoth,
  readLines,
  workerSocketPath,
  type Handoff,
  type WorkerOptions,
} from './worker-link.ts';

import { WORKER_TRANSPORT } from '../transport/stream.ts';
export { WORKER_TRANSPORT };

/** What a worker needs of its relay. */
export interface WorkerHost {
  /** The relay's own adoption, with the options only the core may give. */
  adopt(stream: MsrpStream, options: AdoptOptions & { probation?: boolean }): ConnectionContext | undefined;
  listeners(): readonly ListenerInfo[];
  hostname(): string;
  config(): Readonly<RelayConfig>;
  log(): Logger;
  /** True while new connections are taken (listening, or binding its listeners). */
  accepting(): boolean;
  /** Counts a client socket this worker holds against the caps (+1 when piped, -1 when gone). */
  countClient(ip: string, delta: 1 | -1): void;
  /** The caps before adopting: false when the client must be refused. */
  admits(ip: string): boolean;
}

export class ClusterWorker {
  private server: { close(): Promise<void> } | undefined;
  /** Client sockets this worker pipes to the worker that owns their token. */
  private readonly handedOver = new Set<net.Socket>();
  /** The private socket as a listener, for the connections adopted from it. */
  private readonly linkInfo: ListenerInfo;

  constructor(
    readonly options: WorkerOptions,
    private readonly host: WorkerHost,
  ) {
    this.linkInfo = Object.freeze({
      transport: WORKER_TRANSPORT,
      host: workerSocketPath(options.socketDir, options.index),
      port: 0,
      insecureAuth: false,
      scheme: 'msrp' as const,
    });
  }

  /** The worker link as a transport provider: it dials the other workers (its listener is opened by start()). */
  readonly provider: TransportProvider = {
    name: 'core:cluster',
    transports: [WORKER_TRANSPORT],
    listen: (entry: ListenConfig): Promise<TransportListener> => Promise.reject(new Error(`listen ${entry.transport}: the worker link is opened by the cluster, not by a listen entry`)),
    dial: (hop: NextHop, _ctx: TransportContext, timeoutMs: number): Promise<MsrpStream> => dialWorker(workerSocketPath(this.options.socketDir, Number(hop.host)), timeoutMs),
  };

  /** A session-id that names this worker (R-47: still 128 random bits). */
  newSessionId(): string {
    return newWorkerSessionId(this.options.index);
  }

  /** The hop toward the worker that owns `sessionId`, when that is another worker. */
  ownerElsewhere(sessionId: string): NextHop | undefined {
    const w = workerOfSession(sessionId, this.options.count);
    return w !== undefined && w !== this.options.index ? { transport: WORKER_TRANSPORT, host: String(w), port: 0 } : undefined;
  }

  async start(): Promise<void> {
    this.server = await openInternalServer(this.linkInfo.host, (s) => this.acceptLink(s));
  }

  /** Stops accepting on the private socket and cuts the pipes of handed-over clients. */
  close(): void {
    void this.server?.close();
    this.server = undefined;
    for (const s of this.handedOver) s.destroy();
  }

  /**
   * The TCP/TLS listeners' adoption in cluster mode: read the first request's start line
   * and To-Path; when that names a token of another worker, hand the connection over to
   * it, otherwise serve it here as in a single process.
   */
  gate(stream: MsrpStream, options: AdoptOptions): ConnectionContext | undefined {
    // A message-oriented stream (a WebSocket) is no byte stream to pipe to another worker: it
    // is served here. Its first request is its AUTH (W-6), so its tokens are this worker's.
    if (stream.messageMode !== undefined) return this.host.adopt(stream, options);
    const socket = stream as net.Socket;
    const h = this.host;
    if (!h.accepting()) {
      socket.on('error', () => {});
      socket.destroy();
      return undefined;
    }
    const ip = socket.remoteAddress ?? '';
    if (options.admission === undefined && !h.admits(ip)) {
      h.log().warn('connection refused: limit reached', { remote: ip });
      socket.on('error', () => {});
      socket.destroy();
      return undefined;
    }
    const cfg = h.config();
    const max = cfg.limits.maxStartLine + cfg.limits.maxHeaderLine + 4;
    const wait = Math.min(cfg.timeouts.headerCompletion, cfg.timeouts.firstRequest) * 1000;
    void readLines(socket, 2, max, wait).then((data) => {
      if (data === undefined) {
        options.admission?.release();
        socket.destroy();
        return;
      }
      const uri = firstToPathUri(data);
      const w = this.options;
      const owner = uri?.sessionId !== undefined && uri.host.toLowerCase() === h.hostname().toLowerCase() ? workerOfSession(uri.sessionId, w.count) : undefined;
      if (owner === undefined || owner === w.index || !h.accepting()) this.serveHere(socket, options, data);
      else {
        // The place taken at the raw accept becomes the hand-over's (countClient).
        options.admission?.release();
        this.handOver(socket, options.listener, data, owner);
      }
    });
    return undefined;
  }

  private serveHere(socket: net.Socket, options: AdoptOptions, data: Buffer): void {
    if (socket.destroyed || !this.host.accepting()) {
      options.admission?.release();
      socket.destroy();
      return;
    }
    this.host.adopt(socket, { ...options, ...(data.length > 0 ? { head: data } : {}) });
  }

  /** Pipes a fresh client connection to the worker that owns the token its first request names. */
  private handOver(socket: net.Socket, info: ListenerInfo, data: Buffer, owner: number): void {
    const h = this.host;
    const ip = socket.remoteAddress ?? '';
    // The client's socket stays here: it counts against this worker's caps.
    h.countClient(ip, 1);
    this.handedOver.add(socket);
    socket.on('error', () => {});
    const preamble: Handoff = {
      transport: info.transport,
      listenerPort: info.port,
      remoteAddress: ip,
      remotePort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
    };
    dialWorker(workerSocketPath(this.options.socketDir, owner), h.config().timeouts.connect * 1000).then(
      (peer) => {
        if (socket.destroyed) {
          peer.destroy();
          return this.handOverEnded(socket, ip);
        }
        peer.setNoDelay?.(true);
        peer.write(formatHandoff(preamble));
        peer.write(data);
        pipeBoth(socket, peer, () => this.handOverEnded(socket, ip));
        h.log().debug('connection handed over', { worker: owner, remote: ip });
      },
      (e: unknown) => {
        // The owner is gone (restarting): serve here; the token is unknown here, so 481.
        h.log().warn('hand-over failed', { worker: owner, error: e instanceof Error ? e.message : String(e) });
        this.handOverEnded(socket, ip);
        this.serveHere(socket, { listener: info }, data);
      },
    );
  }

  private handOverEnded(socket: net.Socket, ip: string): void {
    if (!this.handedOver.delete(socket)) return;
    this.host.countClient(ip, -1);
  }

  /** A connection on this worker's private socket: a hand-over (preamble) or a hop from another worker. */
  private acceptLink(socket: net.Socket): void {
    const h = this.host;
    if (!h.accepting()) {
      socket.destroy();
      return;
    }
    void readLines(socket, 1, MAX_PREAMBLE, h.config().timeouts.headerCompletion * 1000).then((data) => {
      if (data === undefined || socket.destroyed) return;
      if (!isHandoff(data)) {
        // A hop: MSRP frames from another worker, like a connection from another relay.
        h.adopt(socket, { listener: this.linkInfo, counted: false, probation: false, ...(data.length > 0 ? { head: data } : {}) });
        return;
      }
      const eol = data.indexOf(0x0a);
      const hand = eol === -1 ? undefined : parseHandoff(data.toString('latin1', 0, eol).replace(/\r$/, ''));
      const info = hand === undefined ? undefined : h.listeners().find((l) => l.transport === hand.transport && l.port === hand.listenerPort);
      if (hand === undefined || info === undefined) {
        h.log().warn('bad hand-over from another worker: closed');
        socket.destroy();
        return;
      }
      const rest = data.subarray(eol + 1);
      // Counted against the caps by the worker that holds the client's socket; TLS ended there.
      h.adopt(socket, {
        listener: info,
        counted: false,
        encrypted: info.scheme === 'msrps',
        peer: { remoteAddress: hand.remoteAddress, remotePort: hand.remotePort, localAddress: hand.localAddress, localPort: hand.localPort },
        ...(rest.length > 0 ? { head: rest } : {}),
      });
      h.log().debug('hand-over adopted', { remote: hand.remoteAddress, session: uriHint(rest) });
    });
  }
}

/** A masked session-id of the first request, for debug logs. */
function uriHint(data: Buffer): string | undefined {
  const id = firstToPathUri(data)?.sessionId;
  return id === undefined ? undefined : maskId(id);
}

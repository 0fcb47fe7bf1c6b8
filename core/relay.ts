/**
 * The Relay: owns the hooks, the listeners, the connections and the session table.
 *
 * It is the only place that knows all the parts; each of them (router, writer,
 * framer, plugins) sees just what it needs. Embed it with createRelay():
 *
 * ```ts
 * const relay = await createRelay({ hostname: 'relay.example.com', listen: [...], plugins: [...] });
 * await relay.listen();
 * ...
 * await relay.close();
 * ```
 */

import type net from 'node:net';
import { DefaultDomainPlugin } from './builtin/default-domain.ts';
import { DigestAuthPlugin } from './builtin/digest.ts';
import { NextHopPlugin } from './builtin/next-hop.ts';
import type { ListenConfig, RelayConfig, RelayConfigInput } from './config/schema.ts';
import { normalizeConfig } from './config/validate.ts';
import { alreadyReported, createHooks, isTapped, type RelayHooks } from './hooks.ts';
import { silentLogger, type Logger, type PluginHost, type RelayPlugin, type SessionsView } from './plugin.ts';
import { loadPlugins } from './plugin-loader.ts';
import { Connection } from './session/connection.ts';
import { Router } from './session/router.ts';
import { maskId, newWorkerSessionId, SessionTable, workerOfSession, type Session } from './session/session-table.ts';
import { dialNextHop } from './transport/dialer.ts';
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
} from './transport/internal.ts';
import { openListener, type Listener } from './transport/listener.ts';
import type { CloseReason, ListenerInfo, NextHop, TransportName } from './types.ts';

export interface CreateRelayOptions {
  /** Folder that relative paths in the config (certificates, plugin files) are resolved against. */
  baseDir?: string;
  /** The config file name, for error messages. */
  source?: string;
  logger?: Logger;
  /** Runs the relay as one worker of `msrprelay --workers N` (DESIGN.md §7). */
  worker?: WorkerOptions;
}

/** Validates the config, loads its plugins and applies them; the relay does not listen yet. */
export async function createRelay(input: RelayConfigInput | RelayConfig, options: CreateRelayOptions = {}): Promise<Relay> {
  const baseDir = options.baseDir ?? process.cwd();
  const config = normalizeConfig(input, { baseDir, ...(options.source !== undefined ? { source: options.source } : {}) });
  const plugins = await loadPlugins(config.plugins, { baseDir });
  const relay = new Relay(config, options.logger ?? silentLogger, options.worker);
  await relay.install(plugins);
  return relay;
}

export class Relay implements PluginHost {
  private configValue: RelayConfig;
  private hooksValue: RelayHooks<PluginHost>;
  private logger: Logger;
  private plugins: RelayPlugin[] = [];
  private readonly table: SessionTable<Connection>;
  private readonly router: Router;
  private readonly openListeners: Listener[] = [];
  private readonly connections = new Set<Connection>();
  private readonly perIp = new Map<string, number>();
  private state: 'new' | 'listening' | 'closing' | 'closed' = 'new';
  /** Cluster mode only (DESIGN.md §7); everything below that reads it is skipped without it. */
  private readonly worker: WorkerOptions | undefined;
  private internalServer: { close(): Promise<void> } | undefined;
  /** Connections between workers: outside the connection caps. */
  private readonly internal = new WeakSet<Connection>();
  /** Client sockets this worker pipes to the worker that owns their token. */
  private readonly handedOver = new Set<net.Socket>();

  constructor(config: RelayConfig, logger: Logger = silentLogger, worker?: WorkerOptions) {
    this.configValue = config;
    this.logger = logger;
    this.worker = worker;
    this.hooksValue = this.newHooks();
    this.table = new SessionTable<Connection>({
      closed: (s, reason) => this.onSessionClosed(s, reason),
    });
    this.router = new Router({
      config: () => this.configValue,
      hooks: () => this.hooksValue as RelayHooks<unknown>,
      sessions: this.table,
      hostname: () => this.configValue.hostname,
      listeners: () => this.listeners,
      log: () => this.logger,
      dial: (hop, session) => this.dial(hop, session),
      connectionGone: (conn, reason) => this.onConnectionGone(conn, reason),
      ...(worker !== undefined
        ? {
            newSessionId: () => newWorkerSessionId(worker.index),
            otherWorker: (id: string) => {
              const w = workerOfSession(id, worker.count);
              return w !== undefined && w !== worker.index ? w : undefined;
            },
            dialWorker: (index: number, session: Session<Connection>) => this.dialWorker(index, session),
          }
        : {}),
    });
  }

  // ------------------------------------------------------------ PluginHost

  get hooks(): RelayHooks<PluginHost> {
    return this.hooksValue;
  }

  get config(): Readonly<RelayConfig> {
    return this.configValue;
  }

  get hostname(): string {
    return this.configValue.hostname;
  }

  get listeners(): readonly ListenerInfo[] {
    return this.openListeners.map((l) => l.info);
  }

  get sessions(): SessionsView {
    const t = this.table;
    return {
      get: (id) => t.get(id),
      get size() {
        return t.size;
      },
      values: () => t.values(),
    };
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  get log(): Logger {
    return this.logger;
  }

  setLogger(logger: Logger): void {
    this.logger = logger;
  }

  /** The loaded plugins, built-in ones first. */
  get pluginNames(): string[] {
    return this.plugins.map((p) => p.name);
  }

  // ------------------------------------------------------------ lifecycle

  /** @internal applies built-in and configured plugins to the current hooks. */
  async install(plugins: RelayPlugin[]): Promise<void> {
    // The built-ins are kept across reloads, so nonces issued before a SIGHUP stay valid.
    this.builtins ??= [new DigestAuthPlugin(), new DefaultDomainPlugin(), new NextHopPlugin()];
    const all: RelayPlugin[] = [...this.builtins, ...plugins];
    for (const p of all) await p.apply(this);
    this.plugins = all;
  }

  private builtins: RelayPlugin[] | undefined;

  /** Runs beforeListen, then binds every listener. */
  async listen(): Promise<void> {
    if (this.state !== 'new') throw new Error(`relay.listen(): the relay is ${this.state}`);
    await this.hooksValue.beforeListen.promise(this);
    try {
      if (this.worker !== undefined) {
        const w = this.worker;
        this.internalServer = await openInternalServer(workerSocketPath(w.socketDir, w.index), (s) => this.acceptInternal(s));
      }
      for (const cfg of this.configValue.listen) this.openListeners.push(await this.bind(cfg));
    } catch (e) {
      await Promise.all(this.openListeners.splice(0).map((l) => l.close()));
      await this.internalServer?.close();
      this.internalServer = undefined;
      throw e;
    }
    this.state = 'listening';
    for (const l of this.listeners) this.logger.info('listening', { transport: l.transport, host: l.host, port: l.port });
  }

  /**
   * Stops accepting, lets open transfers drain for `timeouts.drain` seconds, closes every
   * connection, closes the plugins, then runs `closed`.
   */
  async close(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    try {
      await this.hooksValue.beforeClose.promise(this);
    } catch (e) {
      this.reportError(e, 'beforeClose');
    }
    await Promise.all(this.openListeners.splice(0).map((l) => l.close()));
    const deadline = Date.now() + this.configValue.timeouts.drain * 1000;
    while (Date.now() < deadline && [...this.connections].some((c) => !c.writer.isIdle || c.inbound !== undefined)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (this.worker !== undefined) {
      // Stop accepting on the private socket; its open connections close with the others below.
      void this.internalServer?.close();
      this.internalServer = undefined;
      for (const s of this.handedOver) s.destroy();
    }
    for (const s of [...this.table.values()]) this.table.remove(s, { code: 'shutdown' });
    const gone = [...this.connections].map((c) => new Promise<void>((r) => (c.socket.destroyed ? r() : c.socket.once('close', () => r()))));
    for (const c of this.connections) c.close({ code: 'shutdown' });
    await Promise.race([Promise.all(gone), new Promise((r) => setTimeout(r, 2500).unref())]);
    for (const c of this.connections) c.destroy({ code: 'shutdown' });
    await this.closePlugins(this.plugins);
    try {
      await this.hooksValue.closed.promise(this);
    } catch (e) {
      this.reportError(e, 'closed');
    }
    this.state = 'closed';
    clearTimeout(this.sweeper);
    this.sweeper = undefined;
  }

  private async closePlugins(plugins: RelayPlugin[]): Promise<void> {
    for (const p of [...plugins].reverse()) {
      try {
        await p.close?.();
      } catch (e) {
        this.reportError(e, 'close', p.name);
      }
    }
  }

  private reportError(e: unknown, hook: string, plugin?: string): void {
    const err = e instanceof Error ? e : new Error(String(e));
    this.logger.error(`${plugin !== undefined ? `plugin ${plugin}: ` : ''}${hook} failed`, { error: err.message });
    try {
      this.hooksValue.error.call(err, { hook, ...(plugin !== undefined ? { plugin } : {}) });
    } catch {
      // nothing left to tell
    }
  }

  /**
   * Applies a new config without dropping sessions: new hooks with the new plugins,
   * new timeouts and limits, listeners opened/closed to match, certificates re-read.
   * On any error the old config stays in force.
   */
  async reload(input: unknown, options: { baseDir?: string; source?: string } = {}): Promise<void> {
    const baseDir = options.baseDir ?? process.cwd();
    const config = normalizeConfig(input, { baseDir, ...(options.source !== undefined ? { source: options.source } : {}) });
    const plugins = await loadPlugins(config.plugins, { baseDir });
    const oldHooks = this.hooksValue;
    const oldConfig = this.configValue;
    const oldPlugins = this.plugins;
    this.configValue = config;
    this.hooksValue = this.newHooks();
    try {
      await this.install(plugins);
      if (this.state === 'listening') await this.reconcileListeners(config.listen);
    } catch (e) {
      // The old config stays in force; the new plugins that were applied are released.
      const applied = this.plugins === oldPlugins ? plugins : this.plugins;
      this.configValue = oldConfig;
      this.hooksValue = oldHooks;
      this.plugins = oldPlugins;
      await this.closePlugins(applied.filter((p) => !oldPlugins.includes(p)));
      throw e;
    }
    await this.closePlugins(oldPlugins.filter((p) => !this.plugins.includes(p)));
    this.logger.info('configuration reloaded', { plugins: this.pluginNames.length, sessions: this.table.size });
  }

  // ------------------------------------------------------------ internals

  private newHooks(): RelayHooks<PluginHost> {
    return createHooks<PluginHost>({ tapTimeoutMs: () => this.configValue.timeouts.hook * 1000 });
  }

  private bind(cfg: ListenConfig): Promise<Listener> {
    return openListener(cfg, (socket, info) => this.accept(socket, info));
  }

  private async reconcileListeners(wanted: ListenConfig[]): Promise<void> {
    // A listener is kept when its address and its settings other than the certificate files
    // are unchanged (its certificate is re-read); otherwise it is closed and bound anew.
    // Connections already accepted stay open either way.
    const key = (c: ListenConfig) => JSON.stringify({ ...c, cert: undefined, key: undefined });
    const wantedByKey = new Map(wanted.map((c) => [key(c), c]));
    for (const l of [...this.openListeners]) {
      const next = wantedByKey.get(key(l.config));
      if (next === undefined) {
        this.openListeners.splice(this.openListeners.indexOf(l), 1);
        await l.close();
      } else {
        l.reloadCertificates(next);
      }
    }
    const have = new Set(this.openListeners.map((l) => key(l.config)));
    for (const c of wanted) if (!have.has(key(c))) this.openListeners.push(await this.bind(c));
  }

  private newConnection(
    socket: net.Socket,
    direction: 'inbound' | 'outbound',
    transport: TransportName,
    listener?: ListenerInfo,
    hop = false,
    peer?: ConstructorParameters<typeof Connection>[0]['peer'],
  ): Connection {
    const cfg = this.configValue;
    return new Connection({
      socket,
      direction,
      transport,
      ...(listener !== undefined ? { listener } : {}),
      ...(peer !== undefined ? { peer } : {}),
      handler: this.router,
      limits: {
        maxStartLine: cfg.limits.maxStartLine,
        maxHeaderLine: cfg.limits.maxHeaderLine,
        maxHeaderSection: cfg.limits.maxHeaderSection,
        maxHeaders: cfg.limits.maxHeaders,
      },
      timeouts: {
        firstRequestMs: direction === 'inbound' && !hop ? cfg.timeouts.firstRequest * 1000 : 0,
        headerCompletionMs: cfg.timeouts.headerCompletion * 1000,
        idleMs: cfg.timeouts.idle * 1000,
      },
    });
  }

  private accept(socket: net.Socket, info: ListenerInfo): void {
    const cfg = this.configValue;
    if (this.state !== 'listening' && !this.workerAccepting()) {
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    const ip = socket.remoteAddress ?? '';
    const fromIp = this.perIp.get(ip) ?? 0;
    // R-88: caps per source address and in total: accepted and closed at once.
    if (this.inboundCount >= cfg.limits.maxConnections || fromIp >= cfg.limits.maxConnectionsPerIp) {
      this.logger.warn('connection refused: limit reached', { remote: ip });
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    // R-4: a client certificate, when one is presented on a listener with a CA, must be valid.
    const t = socket as import('node:tls').TLSSocket;
    if (typeof t.getPeerCertificate === 'function' && t.authorizationError !== undefined && t.authorizationError !== null) {
      const peer = t.getPeerCertificate();
      if (peer !== null && Object.keys(peer).length > 0) {
        this.logger.warn('connection refused: invalid client certificate', { remote: ip, error: String(t.authorizationError) });
        socket.on('error', () => {});
        socket.destroy();
        return;
      }
    }
    if (this.worker !== undefined) {
      this.routeToWorker(socket, info);
      return;
    }
    this.startInbound(this.newConnection(socket, 'inbound', info.transport, info));
  }

  /** Registers an accepted connection and starts it once acceptConnection taps let it in. */
  private startInbound(conn: Connection, counted = true): void {
    if (!counted) this.internal.add(conn);
    this.register(conn);
    const ip = conn.remoteAddress;
    const socket = conn.socket;
    const hooks = this.hooksValue;
    if (!isTapped(hooks.acceptConnection)) {
      conn.start();
      return;
    }
    socket.pause();
    hooks.acceptConnection.promise(conn).then(
      (r) => {
        if (r !== undefined) {
          this.logger.info('connection rejected by plugin', { remote: ip, reason: r.reject.message });
          conn.destroy({ code: 'rejected', message: r.reject.message });
          return;
        }
        conn.start();
      },
      (e: unknown) => {
        // A failed tap was reported by core/hooks.ts, with its plugin and hook.
        if (!alreadyReported(e)) hooks.error.call(e instanceof Error ? e : new Error(String(e)), { connection: conn, hook: 'acceptConnection' });
        conn.destroy({ code: 'rejected', message: 'acceptConnection failed' });
      },
    );
  }

  // ------------------------------------------------------------ cluster mode (DESIGN.md §7)

  /**
   * A worker accepts as soon as its listeners are being bound: the cluster's shared port is
   * already open (another worker bound it) and hands this worker connections at once.
   */
  private workerAccepting(): boolean {
    return this.worker !== undefined && (this.state === 'listening' || this.state === 'new');
  }

  /**
   * A client connection accepted by this worker: read its first request's start line and
   * To-Path; when that names a token of another worker, hand the connection over to it,
   * otherwise serve it here as in a single process.
   */
  private routeToWorker(socket: net.Socket, info: ListenerInfo): void {
    const w = this.worker!;
    const cfg = this.configValue;
    const max = cfg.limits.maxStartLine + cfg.limits.maxHeaderLine + 4;
    const wait = Math.min(cfg.timeouts.headerCompletion, cfg.timeouts.firstRequest) * 1000;
    void readLines(socket, 2, max, wait).then((data) => {
      if (data === undefined) {
        socket.destroy();
        return;
      }
      const uri = firstToPathUri(data);
      const owner = uri?.sessionId !== undefined && uri.host.toLowerCase() === cfg.hostname.toLowerCase() ? workerOfSession(uri.sessionId, w.count) : undefined;
      if (owner === undefined || owner === w.index || !this.workerAccepting()) {
        this.serveHere(socket, info, data);
        return;
      }
      this.handOver(socket, info, data, owner);
    });
  }

  private serveHere(socket: net.Socket, info: ListenerInfo, data: Buffer): void {
    if (socket.destroyed) return;
    if (!this.workerAccepting()) {
      socket.destroy();
      return;
    }
    if (data.length > 0) socket.unshift(data);
    this.startInbound(this.newConnection(socket, 'inbound', info.transport, info));
  }

  /** Pipes a fresh client connection to the worker that owns the token its first request names. */
  private handOver(socket: net.Socket, info: ListenerInfo, data: Buffer, owner: number): void {
    const w = this.worker!;
    const ip = socket.remoteAddress ?? '';
    // The client's socket stays here: it counts against this worker's caps.
    this.countInbound(ip, 1);
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
    dialWorker(workerSocketPath(w.socketDir, owner), this.configValue.timeouts.connect * 1000).then(
      (peer) => {
        if (socket.destroyed) {
          peer.destroy();
          return this.handOverEnded(socket, ip);
        }
        peer.setNoDelay?.(true);
        peer.write(formatHandoff(preamble));
        peer.write(data);
        pipeBoth(socket, peer, () => this.handOverEnded(socket, ip));
        this.logger.debug('connection handed over', { worker: owner, remote: ip });
      },
      (e: unknown) => {
        // The owner is gone (restarting): serve here; the token is unknown here, so 481.
        this.logger.warn('hand-over failed', { worker: owner, error: e instanceof Error ? e.message : String(e) });
        this.handOverEnded(socket, ip);
        this.serveHere(socket, info, data);
      },
    );
  }

  private handOverEnded(socket: net.Socket, ip: string): void {
    if (!this.handedOver.delete(socket)) return;
    this.countInbound(ip, -1);
  }

  /** A connection on this worker's private socket: a hand-over (preamble) or a hop from another worker. */
  private acceptInternal(socket: net.Socket): void {
    if (!this.workerAccepting()) {
      socket.destroy();
      return;
    }
    void readLines(socket, 1, MAX_PREAMBLE, this.configValue.timeouts.headerCompletion * 1000).then((data) => {
      if (data === undefined || socket.destroyed) return;
      if (!isHandoff(data)) {
        // A hop: MSRP frames from another worker, like a connection from another relay.
        if (data.length > 0) socket.unshift(data);
        const conn = this.newConnection(socket, 'inbound', 'tcp', undefined, true);
        this.internal.add(conn);
        this.register(conn);
        conn.start();
        return;
      }
      const eol = data.indexOf(0x0a);
      const h = eol === -1 ? undefined : parseHandoff(data.toString('latin1', 0, eol).replace(/\r$/, ''));
      const info = h === undefined ? undefined : this.listeners.find((l) => l.transport === h.transport && l.port === h.listenerPort);
      if (h === undefined || info === undefined) {
        this.logger.warn('bad hand-over from another worker: closed');
        socket.destroy();
        return;
      }
      const rest = data.subarray(eol + 1);
      if (rest.length > 0) socket.unshift(rest);
      const conn = this.newConnection(socket, 'inbound', info.transport, info, false, {
        remoteAddress: h.remoteAddress,
        remotePort: h.remotePort,
        localAddress: h.localAddress,
        localPort: h.localPort,
      });
      // Counted against the caps by the worker that holds the client's socket.
      this.startInbound(conn, false);
    });
  }

  /** An outbound leg to another worker's private socket (a hop, DESIGN.md §7). */
  private async dialWorker(index: number, session: Session<Connection>): Promise<Connection> {
    const label = `worker:${index}`;
    if (this.configValue.shareOutboundConnections) {
      for (const c of this.connections) if (c.direction === 'outbound' && !c.isClosed && c.peerLabel === label) return c;
    }
    const socket = await dialWorker(workerSocketPath(this.worker!.socketDir, index), this.configValue.timeouts.connect * 1000);
    const conn = this.newConnection(socket, 'outbound', 'tcp');
    conn.peerLabel = label;
    this.register(conn);
    conn.start();
    this.logger.debug('worker connected', { worker: index, session: maskId(session.id) });
    return conn;
  }

  private register(conn: Connection): void {
    this.connections.add(conn);
    this.sweeper ??= setTimeout(this.sweep, this.sweepInterval()).unref();
    if (conn.direction === 'inbound' && !this.internal.has(conn)) this.countInbound(conn.remoteAddress, 1);
  }

  private countInbound(ip: string, delta: 1 | -1): void {
    this.inboundCount += delta;
    const n = (this.perIp.get(ip) ?? 0) + delta;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }

  private inboundCount = 0;

  /**
   * One timer for the whole relay checks the time limits of every connection (R-9 first
   * request, R-14 idle) and session (R-49 expiry of unused tokens), instead of a timer per
   * connection and per session: a held session costs no timer, and no read or write re-arms
   * one. Limits fire up to one interval late: an eighth of the shortest limit, at most 1 s.
   */
  private sweeper: NodeJS.Timeout | undefined;

  private sweepInterval(): number {
    const t = this.configValue.timeouts;
    const shortest = Math.min(t.firstRequest, t.idle > 0 ? t.idle : Infinity, this.configValue.session.minExpires);
    return Math.max(10, Math.min(1000, Math.floor((shortest * 1000) / 8)));
  }

  private readonly sweep = (): void => {
    const now = Date.now();
    for (const c of this.connections) c.sweep(now);
    this.table.expire(now);
    this.sweeper = this.state === 'closed' ? undefined : setTimeout(this.sweep, this.sweepInterval()).unref();
  };

  private async dial(hop: NextHop, session: Session<Connection>): Promise<Connection> {
    if (this.configValue.shareOutboundConnections) {
      // R-12: reuse an open connection to the same next hop.
      for (const c of this.connections) {
        if (c.direction === 'outbound' && !c.isClosed && c.peerLabel === `${hop.transport}://${hop.host}:${hop.port}`) return c;
      }
    }
    const socket = await dialNextHop(hop, this.configValue);
    const conn = this.newConnection(socket, 'outbound', hop.transport);
    conn.peerLabel = `${hop.transport}://${hop.host}:${hop.port}`;
    this.register(conn);
    conn.start();
    this.logger.debug('next hop connected', { hop: conn.peerLabel, session: maskId(session.id) });
    return conn;
  }

  private onConnectionGone(conn: Connection, reason: CloseReason): void {
    if (!this.connections.delete(conn)) return;
    if (conn.direction === 'inbound' && !this.internal.has(conn)) this.countInbound(conn.remoteAddress, -1);
    this.hooksValue.connectionClosed.call(conn, reason);
  }

  private onSessionClosed(s: Session<Connection>, reason: CloseReason): void {
    this.router.sessionClosed(s);
    this.hooksValue.sessionClosed.call(s, reason);
  }
}

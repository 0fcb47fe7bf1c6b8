/**
 * The Relay: owns the hooks, the transports and their listeners, the connections and the
 * session table.
 *
 * It is the only place that knows all the parts; each of them (router, writer, framer,
 * transports, plugins) sees just what it needs. Embed it with createRelay():
 *
 * ```ts
 * const relay = await createRelay({ hostname: 'relay.example.com', listen: [...], plugins: [...] });
 * await relay.listen();
 * ...
 * await relay.close();
 * ```
 */

import { DefaultDomainPlugin } from './builtin/default-domain.ts';
import { DigestAuthPlugin } from './builtin/digest.ts';
import { NextHopPlugin } from './builtin/next-hop.ts';
import { ClusterWorker, WORKER_TRANSPORT } from './cluster/worker.ts';
import type { WorkerOptions } from './cluster/worker-link.ts';
import type { ListenConfig, RelayConfig, RelayConfigInput } from './config/schema.ts';
import { ConfigError, normalizeConfig } from './config/validate.ts';
import { alreadyReported, createHooks, isTapped, type RelayHooks } from './hooks.ts';
import { silentLogger, type Logger, type PluginHost, type RelayPlugin, type SessionsView } from './plugin.ts';
import { loadPlugins } from './plugin-loader.ts';
import { Connection } from './session/connection.ts';
import { originate, prepare } from './session/originator.ts';
import { Peer, peerOf } from './session/peer.ts';
import { Router } from './session/router.ts';
import { tryParseUri } from './protocol/uri.ts';
import { maskId, newSessionId, SessionTable, type Session } from './session/session-table.ts';
import { TransportRegistry, type Transports } from './transport/registry.ts';
import { describeEntry, type Admission, type AdoptOptions, type MsrpStream, type TransportContext, type TransportListener } from './transport/stream.ts';
import { tcpTransport } from './transport/tcp.ts';
import { MsrpError } from './errors.ts';
import type { CloseReason, ConnectionContext, ListenerInfo, NextHop, OriginateOptions, OutgoingRequest, PrepareOptions, PreparedRequest, SessionInfo } from './types.ts';

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
  const source = options.source;
  // Transport names are checked against the registered providers once the plugins are applied.
  const config = normalizeConfig(input, { baseDir, anyTransport: true, ...(source !== undefined ? { source } : {}) });
  const plugins = await loadPlugins(config.plugins, { baseDir });
  const relay = new Relay(config, options.logger ?? silentLogger, options.worker);
  await relay.install(plugins);
  relay.checkListen(config.listen, source);
  return relay;
}

/** Internal adoption options: a hop between workers is not in probation (R-9 is for clients). */
type AdoptInternal = AdoptOptions & { probation?: boolean };

export class Relay implements PluginHost {
  private configValue: RelayConfig;
  private hooksValue: RelayHooks<PluginHost>;
  private logger: Logger;
  private plugins: RelayPlugin[] = [];
  private readonly table: SessionTable<Connection>;
  private readonly router: Router;
  private readonly registry = new TransportRegistry();
  private readonly openListeners: Array<{ listener: TransportListener; config: ListenConfig }> = [];
  private readonly connections = new Set<Connection>();
  /** Connections not counted against the caps (hops between workers, hand-overs counted elsewhere). */
  private readonly uncounted = new WeakSet<Connection>();
  private readonly perIp = new Map<string, number>();
  private inboundCount = 0;
  /** Outward legs open (limits.maxOutboundConnections). */
  private outboundCount = 0;
  /** Inbound connections still in probation (R-9), oldest first: the first to go at the cap (R-88). */
  private readonly probation = new Set<Connection>();
  private state: 'new' | 'listening' | 'closing' | 'closed' = 'new';
  /** Cluster mode only (DESIGN.md §7). */
  private readonly cluster: ClusterWorker | undefined;
  private readonly transportContext: TransportContext;

  constructor(config: RelayConfig, logger: Logger = silentLogger, worker?: WorkerOptions) {
    this.configValue = config;
    this.logger = logger;
    this.hooksValue = this.newHooks();
    this.table = new SessionTable<Connection>({
      closed: (s, reason) => this.onSessionClosed(s, reason),
    });
    this.registry.register(tcpTransport);
    if (worker !== undefined) {
      this.cluster = new ClusterWorker(worker, {
        adopt: (stream, o) => this.adoptStream(stream, o),
        listeners: () => this.listeners,
        hostname: () => this.configValue.hostname,
        config: () => this.configValue,
        log: () => this.logger,
        accepting: () => this.accepting(),
        countClient: (ip, delta) => this.countInbound(ip, delta),
        admits: (ip) => this.admits(ip),
      });
      this.registry.register(this.cluster.provider);
    }
    const cluster = this.cluster;
    const relay = this;
    this.transportContext = {
      // In cluster mode a fresh client connection first goes through the worker's gate.
      adopt: cluster !== undefined ? (stream, o) => cluster.gate(stream, o) : (stream, o) => this.adoptStream(stream, o),
      admit: (ip) => this.admit(ip),
      config: () => this.configValue,
      get log() {
        return relay.logger;
      },
    };
    this.router = new Router({
      config: () => this.configValue,
      hooks: () => this.hooksValue as RelayHooks<unknown>,
      sessions: this.table,
      hostname: () => this.configValue.hostname,
      listeners: () => this.listeners,
      log: () => this.logger,
      dial: (hop, session) => this.dial(hop, session),
      connectionGone: (conn, reason) => this.onConnectionGone(conn, reason),
      ...(cluster !== undefined
        ? { newSessionId: () => cluster.newSessionId(), ownerElsewhere: (id: string) => cluster.ownerElsewhere(id) }
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
    return this.openListeners.map((l) => l.listener.info);
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

  /** The transport providers: register one from a plugin's apply() (DESIGN.md §3a). */
  get transports(): Transports {
    return this.registry;
  }

  /**
   * A session-id for a URI of this relay that is no token (a local endpoint's): random
   * (R-47), and in cluster mode naming this worker, so requests for it reach this process.
   */
  newSessionId(): string {
    return this.cluster?.newSessionId() ?? newSessionId();
  }

  /**
   * Sends a request from the relay itself (DESIGN.md §3a): on a connection, or toward the
   * owner of a session (on the connection it authenticated). Stream the body with write()
   * and end(), or give it whole in `options.body`.
   */
  originate(target: ConnectionContext | SessionInfo, options: OriginateOptions): OutgoingRequest {
    return originate(this.originTarget(target, 'relay.originate()'), this.router.transactions, options);
  }

  /** A request checked and rendered once, sent as copies (PreparedRequest.send; docs/reference/transports.md). */
  prepare(options: PrepareOptions): PreparedRequest {
    return prepare(options, (target) => this.originTarget(target, 'PreparedRequest.send()'), this.router.transactions);
  }

  /** The connection a request from the relay goes on: the target's, or its session owner's. */
  private originTarget(target: ConnectionContext | SessionInfo, who: string): Connection {
    const conn = 'owner' in target ? target.owner : target;
    if (!(conn instanceof Connection) || !this.connections.has(conn)) throw new Error(`${who}: the target is not a connection of this relay`);
    return conn;
  }

  /**
   * Cluster mode (`--workers`): a connection of its own to the worker that holds the session
   * `uri` names (a token of this relay issued by another worker), for relay.originate toward
   * it; undefined when `uri` is no such token (one process, or a token of this worker).
   */
  openWorkerLink(uri: string): Promise<ConnectionContext> | undefined {
    const u = tryParseUri(uri);
    if (this.cluster === undefined || u?.sessionId === undefined || !this.router.isOwnHost(u)) return undefined;
    const hop = this.cluster.ownerElsewhere(u.sessionId);
    return hop === undefined ? undefined : this.dialWorker(hop, `for ${maskId(u.sessionId)}`);
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

  /** @internal every listen entry has a provider, and each provider accepts its entry (what start would refuse). */
  checkListen(entries: readonly ListenConfig[], source?: string): void {
    const problems = this.registry.problems(entries);
    if (problems.length > 0) throw new ConfigError(problems, source);
  }

  /** Runs beforeListen, then binds every listener. */
  async listen(): Promise<void> {
    if (this.state !== 'new') throw new Error(`relay.listen(): the relay is ${this.state}`);
    this.checkListen(this.configValue.listen);
    await this.hooksValue.beforeListen.promise(this);
    try {
      await this.cluster?.start();
      for (const cfg of this.configValue.listen) this.openListeners.push({ listener: await this.bind(cfg), config: cfg });
    } catch (e) {
      await Promise.all(this.openListeners.splice(0).map((l) => l.listener.close()));
      this.cluster?.close();
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
    await Promise.all(this.openListeners.splice(0).map((l) => l.listener.close()));
    const deadline = Date.now() + this.configValue.timeouts.drain * 1000;
    while (Date.now() < deadline && [...this.connections].some((c) => !c.writer.isIdle || peerOf(c).inbound !== undefined)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // Stop accepting on the worker link; its open connections close with the others below.
    this.cluster?.close();
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
    const config = normalizeConfig(input, { baseDir, anyTransport: true, ...(options.source !== undefined ? { source: options.source } : {}) });
    const plugins = await loadPlugins(config.plugins, { baseDir });
    const oldHooks = this.hooksValue;
    const oldConfig = this.configValue;
    const oldPlugins = this.plugins;
    this.configValue = config;
    this.hooksValue = this.newHooks();
    try {
      await this.install(plugins);
      this.checkListen(config.listen, options.source);
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

  // ------------------------------------------------------------ transports

  private newHooks(): RelayHooks<PluginHost> {
    return createHooks<PluginHost>({ tapTimeoutMs: () => this.configValue.timeouts.hook * 1000 });
  }

  private bind(cfg: ListenConfig): Promise<TransportListener> {
    const provider = this.registry.get(cfg.transport);
    if (provider === undefined) return Promise.reject(new Error(`listen ${describeEntry(cfg)}: no transport provider serves "${cfg.transport}"`));
    return provider.listen(cfg, this.transportContext);
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
        await l.listener.close();
      } else {
        l.listener.reload?.(next);
        l.config = next;
      }
    }
    const have = new Set(this.openListeners.map((l) => key(l.config)));
    for (const c of wanted) if (!have.has(key(c))) this.openListeners.push({ listener: await this.bind(c), config: c });
  }

  /** A worker takes connections while it binds its listeners: the cluster's shared port is open already. */
  private accepting(): boolean {
    return this.state === 'listening' || (this.cluster !== undefined && this.state === 'new');
  }

  /**
   * R-88: the caps per source address and in total. At the total cap the oldest connection
   * still in probation (no successful request yet) makes room ("unauthenticated connections
   * are reaped first"): strangers filling the cap with idle connections cannot lock everyone
   * out, and an authenticated session is never evicted for them.
   */
  private admits(ip: string): boolean {
    const cfg = this.configValue;
    if ((this.perIp.get(ip) ?? 0) >= cfg.limits.maxConnectionsPerIp) return false;
    if (this.inboundCount < cfg.limits.maxConnections) return true;
    for (const c of this.probation) {
      this.probation.delete(c);
      if (!c.inProbation || c.isClosed) continue;
      this.logger.info('connection evicted: the connection cap is reached and it has not succeeded yet (R-88)', { remote: c.remoteAddress });
      c.destroy({ code: 'limit', message: 'evicted at the connection cap while in probation (R-88)' });
      return this.inboundCount < cfg.limits.maxConnections;
    }
    return false;
  }

  /** A place under the caps for a raw connection whose handshake is to come (TransportContext.admit). */
  private admit(ip: string): Admission | undefined {
    if (!this.accepting()) return undefined;
    if (!this.admits(ip)) {
      this.logger.warn('connection refused: limit reached', { remote: ip });
      return undefined;
    }
    this.countInbound(ip, 1);
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.countInbound(ip, -1);
      },
    };
  }

  /** The relay decided to close `conn`: its place under the caps is free at once, not when the peer lets go. */
  private release(conn: Connection): void {
    this.probation.delete(conn);
    if (this.uncounted.has(conn)) return;
    this.uncounted.add(conn);
    if (conn.direction === 'inbound') this.countInbound(conn.remoteAddress, -1);
    else this.outboundCount--;
  }

  /** A connection's per-connection parts, with the router's state for it as its handler. */
  private newConnection(stream: MsrpStream, direction: 'inbound' | 'outbound', transport: string, o: AdoptInternal | undefined): Connection {
    const cfg = this.configValue;
    const router = this.router;
    return new Connection({
      socket: stream,
      direction,
      transport,
      ...(o !== undefined ? { listener: o.listener } : {}),
      ...(o?.peer !== undefined ? { peer: o.peer } : {}),
      ...(o?.encrypted !== undefined ? { encrypted: o.encrypted } : {}),
      handler: (conn) => new Peer(router, conn),
      maxBuffered: cfg.limits.maxBufferedPerConnection,
      onClosing: (conn) => this.release(conn),
      limits: {
        maxStartLine: cfg.limits.maxStartLine,
        maxHeaderLine: cfg.limits.maxHeaderLine,
        maxHeaderSection: cfg.limits.maxHeaderSection,
        maxHeaders: cfg.limits.maxHeaders,
      },
      timeouts: {
        firstRequestMs: direction === 'inbound' && o?.probation !== false ? cfg.timeouts.firstRequest * 1000 : 0,
        headerCompletionMs: cfg.timeouts.headerCompletion * 1000,
        idleMs: cfg.timeouts.idle * 1000,
        outputStallMs: cfg.timeouts.outputStall * 1000,
      },
    });
  }

  /**
   * A stream a transport accepted (TransportContext.adopt): the caps (R-88), then
   * acceptConnection taps, then reading starts.
   */
  private adoptStream(stream: MsrpStream, o: AdoptInternal): Connection | undefined {
    const refuse = (why: string, fields: Record<string, unknown>) => {
      if (why !== '') this.logger.warn(why, fields);
      stream.on('error', () => {});
      stream.destroy();
      return undefined;
    };
    if (!this.accepting()) {
      o.admission?.release();
      return refuse('', {});
    }
    const counted = o.counted !== false;
    const ip = o.peer?.remoteAddress ?? stream.remoteAddress ?? '';
    // R-88: caps per source address and in total: accepted and closed at once. A place taken
    // at the raw accept (admit()) moves to the connection, which register() counts.
    if (o.admission !== undefined) o.admission.release();
    else if (counted && !this.admits(ip)) return refuse('connection refused: limit reached', { remote: ip });
    const conn = this.newConnection(stream, 'inbound', o.listener.transport, o);
    if (!counted) this.uncounted.add(conn);
    this.register(conn);
    if (counted && o.probation !== false) this.probation.add(conn);
    const hooks = this.hooksValue;
    if (!isTapped(hooks.acceptConnection) || o.listener.transport === WORKER_TRANSPORT) {
      conn.start(o.head);
      return conn;
    }
    stream.pause();
    hooks.acceptConnection.promise(conn).then(
      (r) => {
        if (r !== undefined) {
          this.logger.info('connection rejected by plugin', { remote: ip, reason: r.reject.message });
          conn.destroy({ code: 'rejected', message: r.reject.message });
          return;
        }
        conn.start(o.head);
      },
      (e: unknown) => {
        // A failed tap was reported by core/hooks.ts, with its plugin and hook.
        if (!alreadyReported(e)) hooks.error.call(e instanceof Error ? e : new Error(String(e)), { connection: conn, hook: 'acceptConnection' });
        conn.destroy({ code: 'rejected', message: 'acceptConnection failed' });
      },
    );
    return conn;
  }

  /** Opens the next leg through the provider of `hop.transport` (R-12: reused when sharing is on, worker links excepted). */
  private async dial(hop: NextHop, session: Session<Connection>): Promise<Connection> {
    const label = `${hop.transport}://${hop.host}:${hop.port}`;
    // Never a worker link: one that carried several sessions would stall them all behind one
    // receiver that does not read (head-of-line blocking); a Unix socket per session is cheap.
    if (this.configValue.shareOutboundConnections && hop.transport !== WORKER_TRANSPORT) {
      for (const c of this.connections) if (c.direction === 'outbound' && !c.isClosed && peerOf(c).label === label) return c;
    }
    const provider = this.registry.get(hop.transport);
    if (provider?.dial === undefined) throw new Error(`cannot reach ${label}: no transport provider dials "${hop.transport}"`);
    // Outward legs have their own cap (docs/reference/configuration.md); worker links do not count.
    if (hop.transport !== WORKER_TRANSPORT && this.outboundCount >= this.configValue.limits.maxOutboundConnections) {
      throw new MsrpError('MSRP_ERR_TOO_MANY_LEGS', 'limits.maxOutboundConnections reached');
    }
    if (hop.transport === WORKER_TRANSPORT) return this.dialWorker(hop, maskId(session.id));
    const stream = await provider.dial(hop, this.transportContext, this.configValue.timeouts.connect * 1000);
    const conn = this.newConnection(stream, 'outbound', hop.transport, undefined);
    peerOf(conn).label = label;
    this.register(conn);
    conn.start();
    this.logger.debug('next hop connected', { hop: label, session: maskId(session.id) });
    return conn;
  }

  /** A new connection over the worker link (not counted against the caps). */
  private async dialWorker(hop: NextHop, session: string): Promise<Connection> {
    const label = `${hop.transport}://${hop.host}:${hop.port}`;
    const stream = await this.cluster!.provider.dial!(hop, this.transportContext, this.configValue.timeouts.connect * 1000);
    const conn = this.newConnection(stream, 'outbound', hop.transport, undefined);
    this.uncounted.add(conn);
    peerOf(conn).label = label;
    this.register(conn);
    conn.start();
    this.logger.debug('next hop connected', { hop: label, session });
    return conn;
  }

  private register(conn: Connection): void {
    this.connections.add(conn);
    this.sweeper ??= setTimeout(this.sweep, this.sweepInterval()).unref();
    if (this.uncounted.has(conn)) return;
    if (conn.direction === 'inbound') this.countInbound(conn.remoteAddress, 1);
    else this.outboundCount++;
  }

  private countInbound(ip: string, delta: 1 | -1): void {
    this.inboundCount += delta;
    const n = (this.perIp.get(ip) ?? 0) + delta;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }

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
    for (const c of this.probation) if (!c.inProbation) this.probation.delete(c);
    this.table.expire(now);
    this.sweeper = this.state === 'closed' ? undefined : setTimeout(this.sweep, this.sweepInterval()).unref();
  };

  private onConnectionGone(conn: Connection, reason: CloseReason): void {
    if (!this.connections.delete(conn)) return;
    this.release(conn);
    this.hooksValue.connectionClosed.call(conn, reason);
  }

  /** Connections counted against the caps: inbound and outbound (for tests and status pages). */
  get counts(): { inbound: number; outbound: number; perIp: ReadonlyMap<string, number> } {
    return { inbound: this.inboundCount, outbound: this.outboundCount, perIp: this.perIp };
  }

  private onSessionClosed(s: Session<Connection>, reason: CloseReason): void {
    this.router.sessionClosed(s);
    this.hooksValue.sessionClosed.call(s, reason);
  }
}

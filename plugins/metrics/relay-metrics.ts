/**
 * The metrics of one relay: a prom-client Registry of its own (never the global
 * default registry, so several relays in one process never mix), the hook taps
 * that feed it, and the plain totals and per-second history behind the status page.
 *
 * It outlives a plugin instance: a reload applies a new instance, which takes
 * over this object (and its counters) instead of starting from zero.
 */

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RelayHooks, PluginHost, ConnectionContext } from '../../core/index.ts';

export interface RelayMetricsOptions {
  prefix: string;
  defaultMetrics: boolean;
  chunkSizeBuckets: number[];
  latencyBuckets: number[];
  historySeconds: number;
}

/** What the websocket plugin's `stats(relay)` returns (the fields read here). */
export interface WebSocketSnapshot {
  handshakes: { ok: number; failed: Record<string, number> };
  openSockets: number;
  messages: { in: number; out: number };
  bytes: { in: number; out: number };
  closes: Record<string, number>;
  pings: number;
  pongTimeouts: number;
  backPressure: number;
}

/** Methods get their own label value; anything else is `other` (bounded cardinality). */
const METHODS = new Set(['SEND', 'REPORT', 'AUTH', 'NICKNAME']);
const KIND = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

/** One second of traffic, for the sparkline. */
export interface Sample {
  /** Unix ms at the end of the second. */
  t: number;
  bytesPerSecond: number;
  messagesPerSecond: number;
}

/** What /status.json returns. */
export interface StatusSnapshot {
  uptimeSeconds: number;
  connections: { open: number; total: number; byTransport: Record<string, number> };
  sessions: { active: number; total: number };
  auth: { success: number; failure: number };
  requests: Record<string, number>;
  bytes: { outward: number; inward: number };
  messages: { outward: number; inward: number };
  throttleHits: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  throughput: { bytesPerSecond: number; messagesPerSecond: number; history: Sample[] };
}

export class RelayMetrics {
  readonly registry = new Registry();
  private readonly relay: PluginHost;
  private readonly o: RelayMetricsOptions;
  private readonly startedAt = Date.now();

  private readonly connectionsTotal: Counter<'direction' | 'transport'>;
  private readonly sessionsTotal: Counter;
  private readonly sessionsClosed: Counter<'reason'>;
  private readonly connectionsClosed: Counter<'direction' | 'reason'>;
  private readonly authTotal: Counter<'result' | 'status'>;
  private readonly requestsTotal: Counter<'method'>;
  private readonly responsesTotal: Counter<'method' | 'status'>;
  private readonly bytesTotal: Counter<'direction'>;
  private readonly messagesTotal: Counter<'direction'>;
  private readonly chunkSize: Histogram<'direction'>;
  private readonly forwardSeconds: Histogram<'method'>;
  private readonly throttleHits: Counter<'kind'>;

  /** Open connections this object has seen, by `direction|transport`. */
  private readonly open = new Map<string, number>();
  private readonly counted = new WeakSet<ConnectionContext>();
  private readonly totals = {
    connections: 0,
    sessions: 0,
    authSuccess: 0,
    authFailure: 0,
    requests: {} as Record<string, number>,
    bytes: { outward: 0, inward: 0 },
    messages: { outward: 0, inward: 0 },
    throttle: 0,
  };

  private readonly history: Sample[] = [];
  private lastSample = { t: Date.now(), bytes: 0, messages: 0 };
  private sampler: NodeJS.Timeout | undefined;
  private loopDelay: IntervalHistogram | undefined;
  private lastDelay = { p50: 0, p99: 0, max: 0 };
  private throttleTapped = false;
  private webSocketWatched = false;
  /** Taps on hooks that outlive a reload (the throttle plugin's) count only while this is true. */
  active = true;

  constructor(relay: PluginHost, o: RelayMetricsOptions) {
    this.relay = relay;
    this.o = o;
    const p = o.prefix;
    const registers = [this.registry];
    if (o.defaultMetrics) collectDefaultMetrics({ register: this.registry });

    this.connectionsTotal = new Counter({ name: `${p}connections_total`, help: 'Connections opened, by direction and transport', labelNames: ['direction', 'transport'], registers });
    const open = this.open;
    const self = this;
    new Gauge({
      name: `${p}open_connections`,
      help: 'Connections open now that have sent a request or carry a session, by direction and transport',
      labelNames: ['direction', 'transport'],
      registers,
      collect() {
        self.discoverOutbound();
        this.reset();
        for (const [key, n] of open) {
          const [direction, transport] = key.split('|') as [string, string];
          this.set({ direction, transport }, n);
        }
      },
    });
    new Gauge({
      name: `${p}open_connections_all`,
      help: 'Every connection open now (inbound and outbound, also those that have not sent a request yet)',
      registers,
      collect() {
        this.set(relay.connectionCount);
      },
    });
    new Gauge({
      name: `${p}active_sessions`,
      help: 'Relay sessions (issued tokens) alive now',
      registers,
      collect() {
        this.set(relay.sessions.size);
      },
    });
    this.sessionsTotal = new Counter({ name: `${p}sessions_total`, help: 'Sessions created (successful AUTHs)', registers });
    this.sessionsClosed = new Counter({ name: `${p}sessions_closed_total`, help: 'Sessions ended, by close reason', labelNames: ['reason'], registers });
    this.connectionsClosed = new Counter({ name: `${p}connections_closed_total`, help: 'Connections ended, by direction and close reason', labelNames: ['direction', 'reason'], registers });
    this.authTotal = new Counter({ name: `${p}auth_total`, help: 'AUTH results: success (200) or failure (401/403…), by status', labelNames: ['result', 'status'], registers });
    this.requestsTotal = new Counter({ name: `${p}requests_total`, help: 'Requests received, by method', labelNames: ['method'], registers });
    this.responsesTotal = new Counter({ name: `${p}responses_total`, help: 'Responses the relay wrote itself, by request method and status', labelNames: ['method', 'status'], registers });
    this.bytesTotal = new Counter({ name: `${p}forwarded_bytes_total`, help: 'Body bytes forwarded, by direction (outward: from the session owner; inward: toward it)', labelNames: ['direction'], registers });
    this.messagesTotal = new Counter({ name: `${p}forwarded_messages_total`, help: 'Complete SEND messages forwarded (last chunk written), by direction', labelNames: ['direction'], registers });
    this.chunkSize = new Histogram({ name: `${p}chunk_size_bytes`, help: 'Body bytes per forwarded chunk', labelNames: ['direction'], buckets: o.chunkSizeBuckets, registers });
    this.forwardSeconds = new Histogram({
      name: `${p}forward_duration_seconds`,
      help: 'From a request head read to its end-line written to the next hop',
      labelNames: ['method'],
      buckets: o.latencyBuckets,
      registers,
    });
    this.throttleHits = new Counter({ name: `${p}throttle_hits_total`, help: 'Times the throttle plugin delayed or refused traffic, by kind', labelNames: ['kind'], registers });
    this.throttleHits.inc({ kind: 'any' }, 0);
    this.authTotal.inc({ result: 'success', status: '200' }, 0);
    new Gauge({
      name: `${p}event_loop_delay_seconds`,
      help: 'Event-loop delay over the last sampling second (needs the HTTP server running)',
      labelNames: ['stat'],
      registers,
      collect() {
        const d = self.lastDelay;
        this.set({ stat: 'p50' }, d.p50 / 1000);
        this.set({ stat: 'p99' }, d.p99 / 1000);
        this.set({ stat: 'max' }, d.max / 1000);
      },
    });
  }

  /** Taps a hooks object (the relay's current one; a reload brings a new one). */
  attach(hooks: RelayHooks<PluginHost>, name: string): void {
    // Connections are identified by their first request rather than in acceptConnection: a
    // promise tap there would cost every connection a round through the event loop.
    hooks.connectionClosed.tap(name, (conn, reason) => {
      this.connectionsClosed.inc({ direction: conn.direction, reason: reason.code });
      this.closed(conn);
    });
    hooks.requestReceived.tap(name, (ctx) => {
      if (!this.counted.has(ctx.connection)) this.opened(ctx.connection);
      const m = method(ctx.request.method);
      this.requestsTotal.inc({ method: m });
      this.totals.requests[m] = (this.totals.requests[m] ?? 0) + 1;
    });
    hooks.responseSent.tap(name, (r) => {
      this.responsesTotal.inc({ method: method(r.method), status: String(r.status) });
    });
    hooks.authenticated.tap(name, () => {
      this.authTotal.inc({ result: 'success', status: '200' });
      this.sessionsTotal.inc();
      this.totals.authSuccess++;
      this.totals.sessions++;
    });
    hooks.authFailed.tap(name, (f) => {
      this.authTotal.inc({ result: 'failure', status: String(f.status) });
      this.totals.authFailure++;
    });
    hooks.sessionClosed.tap(name, (_s, reason) => this.sessionsClosed.inc({ reason: reason.code }));
    hooks.chunkForwarded.tap(name, (c) => {
      this.bytesTotal.inc({ direction: c.direction }, c.bytes);
      this.totals.bytes[c.direction] += c.bytes;
      this.chunkSize.observe({ direction: c.direction }, c.bytes);
      this.forwardSeconds.observe({ method: method(c.method) }, Math.max(0, c.endedAt - c.startedAt) / 1000);
      if (c.flag === '$' && c.method === 'SEND') {
        this.messagesTotal.inc({ direction: c.direction });
        this.totals.messages[c.direction]++;
      }
    });
  }

  /**
   * Counts a throttle event. The throttle plugin's `throttled` hook feeds this
   * when that plugin is present; an embedding application may call it too.
   */
  countThrottleHit(event?: unknown): void {
    if (!this.active) return;
    const e = (event ?? {}) as { kind?: unknown; type?: unknown; reason?: unknown };
    const raw = [e.kind, e.type, e.reason].find((x) => typeof x === 'string' && KIND.test(x));
    this.throttleHits.inc({ kind: typeof raw === 'string' ? raw : 'any' });
    this.totals.throttle++;
  }

  /**
   * The websocket plugin's counters (`WebSocketPlugin.stats(relay)`), read at every scrape:
   * handshakes by result and reason, open sockets, messages and octets each way, closes by code,
   * Pings, missed Pongs and back-pressure pauses. Registered once per relay.
   */
  watchWebSocket(read: () => WebSocketSnapshot | undefined): void {
    if (this.webSocketWatched) return;
    this.webSocketWatched = true;
    const p = this.o.prefix;
    const registers = [this.registry];
    /** A counter whose values are the plugin's own totals (set, not counted here). */
    const totals = (name: string, help: string, labelNames: string[], values: (s: WebSocketSnapshot) => Array<[Record<string, string>, number]>) =>
      new Counter({
        name: `${p}${name}`,
        help,
        labelNames,
        registers,
        collect() {
          const s = read();
          if (s === undefined) return;
          this.reset();
          for (const [labels, v] of values(s)) this.inc(labels, v);
        },
      });
    totals('websocket_handshakes_total', 'WebSocket upgrades: ok, or failed by reason (path, subprotocol, origin, untrusted-peer, refused, …)', ['result', 'reason'], (s) => [
      [{ result: 'ok', reason: 'upgraded' }, s.handshakes.ok],
      ...Object.entries(s.handshakes.failed).map(([reason, n]): [Record<string, string>, number] => [{ result: 'failed', reason }, n]),
    ]);
    totals('websocket_messages_total', 'WebSocket messages (one MSRP frame each), by direction', ['direction'], (s) => [
      [{ direction: 'in' }, s.messages.in],
      [{ direction: 'out' }, s.messages.out],
    ]);
    totals('websocket_bytes_total', 'Octets of WebSocket messages, by direction', ['direction'], (s) => [
      [{ direction: 'in' }, s.bytes.in],
      [{ direction: 'out' }, s.bytes.out],
    ]);
    totals('websocket_closes_total', 'WebSockets closed, by close code (the one this end sent when it closed first)', ['code'], (s) => Object.entries(s.closes).map(([code, n]): [Record<string, string>, number] => [{ code }, n]));
    totals('websocket_pings_total', 'WebSocket Pings sent (keep-alive)', [], (s) => [[{}, s.pings]]);
    totals('websocket_pong_timeouts_total', 'WebSockets cut because no Pong came', [], (s) => [[{}, s.pongTimeouts]]);
    totals('websocket_back_pressure_total', 'Times a WebSocket was full and its sender was paused', [], (s) => [[{}, s.backPressure]]);
    new Gauge({
      name: `${p}websocket_open_sockets`,
      help: 'WebSockets open now',
      registers,
      collect() {
        const s = read();
        if (s !== undefined) this.set(s.openSockets);
      },
    });
  }

  /** Taps the throttle plugin's hooks once per relay (they outlive reloads). */
  tapThrottle(hooks: { throttled?: { tap(name: string, fn: (event: unknown) => void): void } }, name: string): void {
    if (this.throttleTapped || hooks.throttled === undefined) return;
    this.throttleTapped = true;
    hooks.throttled.tap(name, (event) => this.countThrottleHit(event));
  }

  private opened(conn: ConnectionContext): void {
    if (this.counted.has(conn)) return;
    this.counted.add(conn);
    const key = `${conn.direction}|${conn.transport}`;
    this.open.set(key, (this.open.get(key) ?? 0) + 1);
    this.connectionsTotal.inc({ direction: conn.direction, transport: conn.transport });
    this.totals.connections++;
  }

  private closed(conn: ConnectionContext): void {
    if (!this.counted.has(conn)) {
      // Never identified while open (no request, an outbound leg between two scrapes, or a reload).
      this.connectionsTotal.inc({ direction: conn.direction, transport: conn.transport });
      this.totals.connections++;
      return;
    }
    this.counted.delete(conn);
    const key = `${conn.direction}|${conn.transport}`;
    const n = (this.open.get(key) ?? 1) - 1;
    if (n <= 0) this.open.delete(key);
    else this.open.set(key, n);
  }

  /** Outbound legs have no open notification: find them through the sessions that use them. */
  private discoverOutbound(): void {
    for (const s of this.relay.sessions.values()) {
      const f = s.far;
      if (f !== undefined && f.direction === 'outbound' && !f.signal.aborted && !this.counted.has(f)) this.opened(f);
    }
  }

  /** Starts the once-a-second sampling behind the sparkline and the event-loop delay. */
  startSampling(): void {
    if (this.sampler !== undefined) return;
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.loopDelay.enable();
    this.lastSample = { t: Date.now(), bytes: this.bytesSum(), messages: this.messagesSum() };
    this.sampler = setInterval(() => this.sample(), 1000);
    this.sampler.unref();
  }

  stopSampling(): void {
    if (this.sampler !== undefined) clearInterval(this.sampler);
    this.sampler = undefined;
    this.loopDelay?.disable();
    this.loopDelay = undefined;
  }

  private sample(): void {
    const now = Date.now();
    const bytes = this.bytesSum();
    const messages = this.messagesSum();
    const dt = Math.max(1, now - this.lastSample.t) / 1000;
    this.history.push({ t: now, bytesPerSecond: Math.round((bytes - this.lastSample.bytes) / dt), messagesPerSecond: Math.round(((messages - this.lastSample.messages) / dt) * 10) / 10 });
    while (this.history.length > this.o.historySeconds) this.history.shift();
    this.lastSample = { t: now, bytes, messages };
    const h = this.loopDelay;
    if (h !== undefined) {
      // The monitor reports nanoseconds.
      this.lastDelay = { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
      h.reset();
    }
  }

  private bytesSum(): number {
    return this.totals.bytes.inward + this.totals.bytes.outward;
  }

  private messagesSum(): number {
    return this.totals.messages.inward + this.totals.messages.outward;
  }

  snapshot(): StatusSnapshot {
    this.discoverOutbound();
    const byTransport: Record<string, number> = {};
    let openCount = 0;
    for (const [key, n] of this.open) {
      const transport = key.split('|')[1]!;
      byTransport[transport] = (byTransport[transport] ?? 0) + n;
      openCount += n;
    }
    const last = this.history[this.history.length - 1];
    const round = (x: number) => Math.round(x * 100) / 100;
    return {
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      connections: { open: openCount, total: this.totals.connections, byTransport },
      sessions: { active: this.relay.sessions.size, total: this.totals.sessions },
      auth: { success: this.totals.authSuccess, failure: this.totals.authFailure },
      requests: { ...this.totals.requests },
      bytes: { ...this.totals.bytes },
      messages: { ...this.totals.messages },
      throttleHits: this.totals.throttle,
      eventLoopDelayMs: { p50: round(this.lastDelay.p50), p99: round(this.lastDelay.p99), max: round(this.lastDelay.max) },
      throughput: { bytesPerSecond: last?.bytesPerSecond ?? 0, messagesPerSecond: last?.messagesPerSecond ?? 0, history: [...this.history] },
    };
  }
}

function method(m: string): string {
  return METHODS.has(m) ? m : 'other';
}

/**
 * metrics: Prometheus metrics and a live status page over HTTP.
 *
 *   GET /metrics      the relay's registry in the Prometheus text format
 *   GET /status.json  the numbers behind the status page
 *   GET /             the status page (a table and a throughput sparkline, refreshed every second)
 *
 * Each relay has its own Registry (relay-metrics.ts). The HTTP server binds when
 * the relay listens (`beforeListen`), so `--check-config` and `--print-hooks`
 * never open a port; a reload that keeps the same address keeps the server and
 * the counters.
 *
 * Throttle hits come from the throttle plugin's `throttled` hook when that
 * plugin ships in plugins/throttle; it is looked up at run time, not imported,
 * so neither plugin depends on the other being loaded.
 */

import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { PluginHost, RelayPlugin } from '../../core/index.ts';
import { RelayMetrics, type RelayMetricsOptions, type WebSocketSnapshot } from './relay-metrics.ts';
import { renderStatusPage, STATUS_PAGE_CSP } from './status-page.ts';

export interface MetricsOptions extends RelayMetricsOptions {
  /** Address the HTTP server binds (default 127.0.0.1: metrics are not for the public). */
  host: string;
  /** Port (default 9464; 0 picks a free one, see `port` / `MetricsPlugin.address(relay)`). */
  port: number;
  /** Serve the status page and status.json (default true). */
  statusPage: boolean;
  /** Heading and title of the status page. */
  title: string;
}

interface HttpState {
  key: string;
  server: Server;
  owner: MetricsPlugin;
}

/** Per relay: the metrics (kept across reloads) and the HTTP server serving them. */
interface RelayState {
  metrics: RelayMetrics;
  http: HttpState | undefined;
}

const states = new WeakMap<PluginHost, RelayState>();

const DEFAULT_CHUNK_BUCKETS = [0, 64, 256, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
const DEFAULT_LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export default class MetricsPlugin implements RelayPlugin {
  static readonly schema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      host: { type: 'string', minLength: 1, default: '127.0.0.1' },
      port: { type: 'integer', minimum: 0, maximum: 65535, default: 9464 },
      prefix: { type: 'string', pattern: '^([a-zA-Z_:][a-zA-Z0-9_:]*)?$', default: 'msrprelay_' },
      defaultMetrics: { type: 'boolean', default: true },
      statusPage: { type: 'boolean', default: true },
      title: { type: 'string', default: 'msrprelay status' },
      historySeconds: { type: 'integer', minimum: 2, maximum: 3600, default: 60 },
      chunkSizeBuckets: { type: 'array', items: { type: 'number', minimum: 0 }, minItems: 1, default: DEFAULT_CHUNK_BUCKETS },
      latencyBuckets: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 }, minItems: 1, default: DEFAULT_LATENCY_BUCKETS },
    },
  } as const;

  /** The address the metrics server of a relay is bound to (after relay.listen()). */
  static address(relay: PluginHost): { host: string; port: number } | undefined {
    const a = states.get(relay)?.http?.server.address();
    return a !== null && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  /** The metrics of a relay, for an embedding application (its registry, countThrottleHit). */
  static metrics(relay: PluginHost): RelayMetrics | undefined {
    return states.get(relay)?.metrics;
  }

  readonly name = 'metrics';
  private readonly options: MetricsOptions;
  private relay: PluginHost | undefined;
  private state: RelayState | undefined;
  private server: Server | undefined;
  private closed = false;

  constructor(options: Partial<MetricsOptions> = {}) {
    this.options = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 9464,
      prefix: options.prefix ?? 'msrprelay_',
      defaultMetrics: options.defaultMetrics ?? true,
      statusPage: options.statusPage ?? true,
      title: options.title ?? 'msrprelay status',
      historySeconds: options.historySeconds ?? 60,
      chunkSizeBuckets: options.chunkSizeBuckets ?? DEFAULT_CHUNK_BUCKETS,
      latencyBuckets: options.latencyBuckets ?? DEFAULT_LATENCY_BUCKETS,
    };
  }

  /** The bound port, once the relay listens. */
  get port(): number | undefined {
    const a = this.server?.address();
    return a !== null && typeof a === 'object' ? (a as AddressInfo).port : undefined;
  }

  async apply(relay: PluginHost): Promise<void> {
    this.relay = relay;
    let state = states.get(relay);
    if (state === undefined) {
      state = { metrics: new RelayMetrics(relay, this.options), http: undefined };
      states.set(relay, state);
    }
    state.metrics.active = true;
    this.state = state;
    state.metrics.attach(relay.hooks, this.name);
    await this.tapThrottle(relay, state.metrics);
    await this.watchWebSocket(relay, state.metrics);

    const key = `${this.options.host}|${this.options.port}`;
    if (state.http !== undefined && state.http.key === key) {
      // A reload with the same address: keep serving from the running server.
      state.http.owner = this;
      this.server = state.http.server;
      return;
    }
    // Bound with the relay's listeners; a plugin added by a reload binds at once.
    if (relay.listeners.length > 0) await this.startServer(key);
    else relay.hooks.beforeListen.tapPromise(this.name, () => this.startServer(key));
  }

  /** plugins/throttle publishes `static getHooks(relay).throttled`; tap it if it is there. */
  private async tapThrottle(relay: PluginHost, metrics: RelayMetrics): Promise<void> {
    if (!relay.config.plugins.some(isThrottleEntry)) return;
    const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
    const url = new URL(`../throttle/index.${ext}`, import.meta.url);
    if (!existsSync(fileURLToPath(url))) return;
    try {
      const mod = (await import(url.href)) as { default?: { getHooks?: (r: PluginHost) => unknown } };
      const hooks = mod.default?.getHooks?.(relay);
      if (hooks !== undefined && hooks !== null && typeof hooks === 'object') metrics.tapThrottle(hooks as Parameters<RelayMetrics['tapThrottle']>[0], this.name);
    } catch (e) {
      relay.log.warn('metrics: throttle hits are not counted: the throttle plugin could not be loaded', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /**
   * plugins/websocket publishes `static stats(relay)`; read it at every scrape when the relay
   * has ws/wss listeners (the relay loads that plugin for them). Looked up at run time, as the
   * throttle plugin is, so neither plugin depends on the other.
   */
  private async watchWebSocket(relay: PluginHost, metrics: RelayMetrics): Promise<void> {
    if (!relay.config.listen.some((l) => l.transport === 'ws' || l.transport === 'wss')) return;
    const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
    const url = new URL(`../websocket/index.${ext}`, import.meta.url);
    if (!existsSync(fileURLToPath(url))) return;
    try {
      const mod = (await import(url.href)) as { default?: { stats?: (r: PluginHost) => WebSocketSnapshot | undefined } };
      const stats = mod.default?.stats;
      if (typeof stats === 'function') metrics.watchWebSocket(() => stats(relay));
    } catch (e) {
      relay.log.warn('metrics: WebSocket counters are not read: the websocket plugin could not be loaded', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  private async startServer(key: string): Promise<void> {
    const state = this.state!;
    const server = createServer((req, res) => {
      // After a reload the server answers with the options of the instance that adopted it.
      (state.http?.owner ?? this).handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
    });
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', fail);
        ok();
      });
    });
    server.on('error', (e) => this.relay?.log.error('metrics server error', { error: e.message }));
    this.server = server;
    state.http = { key, server, owner: this };
    state.metrics.startSampling();
    const a = server.address() as AddressInfo;
    this.relay?.log.info('metrics listening', { host: a.address, port: a.port });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const metrics = this.state!.metrics;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
      res.end('method not allowed\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    let body: string;
    let type: string;
    const headers: Record<string, string> = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    if (path === '/metrics') {
      body = await metrics.registry.metrics();
      type = metrics.registry.contentType;
    } else if (this.options.statusPage && path === '/status.json') {
      body = JSON.stringify(metrics.snapshot());
      type = 'application/json';
    } else if (this.options.statusPage && (path === '/' || path === '/index.html')) {
      body = renderStatusPage(metrics.snapshot(), this.options.title);
      type = 'text/html; charset=utf-8';
      headers['content-security-policy'] = STATUS_PAGE_CSP;
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    res.writeHead(200, { ...headers, 'content-type': type, 'content-length': String(Buffer.byteLength(body)) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const state = this.state;
    const server = this.server;
    if (state === undefined) return;
    // A reload that kept the address handed the server to the new instance.
    if (state.http !== undefined && state.http.server === server && state.http.owner !== this) return;
    if (state.http?.server === server) {
      state.http = undefined;
      state.metrics.stopSampling();
    }
    state.metrics.active = state.http !== undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  }
}

/** A config entry that loads the throttle plugin: `'throttle'`, `['throttle', {…}]`, or an instance or class named so. */
function isThrottleEntry(entry: unknown): boolean {
  const target = Array.isArray(entry) ? (entry as unknown[])[0] : entry;
  if (typeof target === 'string') return target === 'throttle' || /[\\/]throttle(\/index\.[cm]?[jt]s)?$/.test(target);
  if (typeof target === 'function') return (target as { name?: string }).name === 'Throttle';
  return typeof target === 'object' && target !== null && (target as { name?: unknown }).name === 'throttle';
}

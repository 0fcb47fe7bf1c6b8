/**
 * websocket: MSRP over WebSocket (RFC 7977; RFC.md §3A W-1 … W-13, §6.1 I-11 … I-18), so
 * browsers are clients of the relay like any other.
 *
 *   listen: [{ transport: 'wss', host: '0.0.0.0', port: 443, path: '/msrp', cert, key }]
 *
 * A ws or wss listen entry is all a config needs: the relay loads this plugin for it when the
 * config does not list it; its options, when wanted, go under its plugins entry:
 *
 *   plugins: [['websocket', { origins: ['https://chat.example.com'] }]]
 *
 * Each WebSocket is a connection of the relay (message mode: one MSRP frame per WebSocket
 * message, W-3; long chunks cut for it, W-4), so AUTH, tokens, routing, caps, throttle, logs
 * and metrics treat it as they treat TCP. The plugin adds the handshake rules (W-1, W-5,
 * W-10), the keep-alive (W-11), Use-Path toward the TLS listener (W-8), and the upgrade-time
 * authenticator hook (W-9, `WebSocketPlugin.getHooks(relay).authorizeUpgrade`, used by the
 * ws-token plugin): a connection it pre-authorises has its AUTHs answered 200 without a
 * challenge (the RFC 7977 §8.1.1 example; no Authentication-Info).
 */

import tapable from 'tapable';
import type { AuthDecision, AuthRequest, PluginHost, RelayHooks, RelayPlugin } from '../../core/index.ts';
import { AddressSet } from './addresses.ts';
import { WebSocketTransport, type WebSocketOptions } from './provider.ts';
import { WebSocketStats, type WebSocketStatsSnapshot } from './stats.ts';
import type { HandshakeEvent, UpgradeDecision, UpgradeRequest, WebSocketHooks } from './types.ts';

export type { WebSocketOptions } from './provider.ts';
export type { HandshakeEvent, PreAuthorization, UpgradeDecision, UpgradeRequest, WebSocketHooks } from './types.ts';
export type { WebSocketStatsSnapshot, HandshakeFailure } from './stats.ts';
export { WsStream, closeCodeFor, type WsStreamOptions } from './stream.ts';

const { AsyncSeriesBailHook, SyncHook } = tapable;

/** Per relay: the provider (one for the relay's life, registered once) and the counters. */
interface RelayState {
  provider: WebSocketTransport;
  stats: WebSocketStats;
  /** The options of the plugin instance applied last (a reload replaces the instance). */
  options: WebSocketOptions;
  /** A pre-authorised connection was adopted once: every generation of hooks needs the AUTH tap. */
  preAuthSeen: boolean;
}

const states = new WeakMap<PluginHost, RelayState>();
/**
 * The plugin's hooks per generation of the relay's hooks: a reload makes new relay hooks and
 * applies new plugin instances, whose taps go on new websocket hooks too, so the taps of a
 * replaced instance are dropped with it.
 */
const hooksByGeneration = new WeakMap<object, WebSocketHooks>();
/** Relay hooks on which the pre-authorisation tap is made (only once a pre-authorised connection exists). */
const preAuthTapped = new WeakSet<object>();

const STAGE = -50;

export default class WebSocketPlugin implements RelayPlugin {
  static readonly schema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      maxPayload: { type: 'integer', minimum: 1024, maximum: 64 * 2 ** 20, default: 2 ** 20, description: 'largest WebSocket message accepted (octets); above it the socket closes with 1009' },
      maxMessageSize: { type: 'integer', minimum: 4096, maximum: 16 * 2 ** 20, default: 64 * 1024, description: 'largest message sent; longer chunks are cut to fit (W-4)' },
      highWaterMark: { type: 'integer', minimum: 4096, default: 2 ** 20, description: 'octets queued toward a WebSocket before its sender is paused' },
      pingInterval: { type: 'number', minimum: 0, default: 30, description: 'seconds between Pings; no Pong by the next one closes the socket (0: none)' },
      origins: { type: 'array', items: { type: 'string', minLength: 1 }, default: [], description: 'allowed Origins (https://chat.example.com, https://*.example.com, *); empty: any' },
      requireOrigin: { type: 'boolean', default: false, description: 'refuse upgrades without an Origin header' },
      trustedProxies: { type: 'array', items: { type: 'string', minLength: 1 }, default: [], description: 'proxy addresses or CIDRs whose X-Forwarded-For is believed' },
      proxyTls: { type: 'boolean', default: false, description: 'the trusted proxies terminate TLS: what they forward counts as encrypted' },
      usePath: { enum: ['auto', 'tls', 'tcp', 'self'], default: 'auto', description: 'which listener Use-Path URIs of WebSocket clients name (W-8)' },
    },
  } as const;

  /** The transports this plugin serves (the relay loads it for listen entries of these). */
  static readonly transports = Object.freeze(['ws', 'wss']);

  /** The plugin's hooks on a relay: `authorizeUpgrade` (W-9) and `handshake`. */
  static getHooks(relay: PluginHost): WebSocketHooks {
    const key = relay.hooks;
    let h = hooksByGeneration.get(key);
    if (h === undefined) {
      h = Object.freeze({
        authorizeUpgrade: new AsyncSeriesBailHook<[UpgradeRequest], UpgradeDecision | undefined>(['request'], 'authorizeUpgrade'),
        handshake: new SyncHook<[HandshakeEvent]>(['event'], 'handshake'),
      });
      hooksByGeneration.set(key, h);
    }
    return h;
  }

  /** The counters of a relay's WebSockets (handshakes, open sockets, messages, octets, closes). */
  static stats(relay: PluginHost): WebSocketStatsSnapshot | undefined {
    return states.get(relay)?.stats.snapshot();
  }

  readonly name = 'websocket';
  readonly transports = WebSocketPlugin.transports;
  private readonly options: WebSocketOptions;

  constructor(options: Partial<WebSocketOptions> = {}) {
    this.options = Object.freeze({
      maxPayload: options.maxPayload ?? 2 ** 20,
      maxMessageSize: options.maxMessageSize ?? 64 * 1024,
      highWaterMark: options.highWaterMark ?? 2 ** 20,
      pingInterval: options.pingInterval ?? 30,
      origins: [...(options.origins ?? [])],
      requireOrigin: options.requireOrigin ?? false,
      trustedProxies: [...(options.trustedProxies ?? [])],
      proxyTls: options.proxyTls ?? false,
      usePath: options.usePath ?? 'auto',
    });
    // Bad entries are a config error, named here rather than at the first upgrade.
    try {
      new AddressSet(this.options.trustedProxies);
    } catch (e) {
      throw new Error(`trustedProxies: ${(e as Error).message}`);
    }
    if (this.options.highWaterMark < this.options.maxMessageSize) throw new Error(`highWaterMark (${this.options.highWaterMark}) must be >= maxMessageSize (${this.options.maxMessageSize})`);
  }

  apply(relay: PluginHost): void {
    let state = states.get(relay);
    if (state === undefined) {
      const stats = new WebSocketStats();
      const s: RelayState = {
        stats,
        options: this.options,
        preAuthSeen: false,
        provider: new WebSocketTransport({
          relay,
          stats,
          hooks: () => WebSocketPlugin.getHooks(relay),
          options: () => s.options,
          preAuthorized: () => {
            s.preAuthSeen = true;
            tapPreAuthorization(relay.hooks);
          },
        }),
      };
      state = s;
      states.set(relay, state);
      relay.transports.register(state.provider);
    }
    state.options = this.options;
    if (state.preAuthSeen) tapPreAuthorization(relay.hooks);
    // Make the hooks of this generation now, so taps made before the first upgrade are kept.
    WebSocketPlugin.getHooks(relay);
  }
}

/**
 * W-9: an AUTH on a connection the upgrade pre-authorised is accepted without a challenge
 * (before core:digest, stage 0; after throttle's AUTH back-off, stage -100). The 200 then
 * carries no Authentication-Info: there was no Digest exchange to prove (RFC 7977 §8.1.1).
 * An AUTH for another domain than the pre-authorised one, or after it expired, goes on to
 * Digest as any other.
 */
function tapPreAuthorization(hooks: RelayHooks<PluginHost>): void {
  if (preAuthTapped.has(hooks)) return;
  preAuthTapped.add(hooks);
  hooks.authenticate.tapPromise({ name: 'websocket', stage: STAGE }, (auth: AuthRequest): Promise<AuthDecision | undefined> => {
    const t = auth.connection.transport;
    if (t !== 'ws' && t !== 'wss') return Promise.resolve(undefined);
    const pre = WebSocketTransport.note(auth.connection)?.preAuthorization;
    if (pre === undefined) return Promise.resolve(undefined);
    if (pre.expiresAt !== undefined && Date.now() >= pre.expiresAt) return Promise.resolve(undefined);
    if (pre.domain !== undefined && pre.domain.toLowerCase() !== auth.domain.toLowerCase()) return Promise.resolve(undefined);
    return Promise.resolve({
      accept: { username: pre.username, domain: auth.domain, realm: auth.realm, method: pre.method ?? 'websocket', attributes: pre.attributes ?? {} },
    });
  });
}

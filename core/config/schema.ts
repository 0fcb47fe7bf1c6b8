/**
 * The shape of msrprelay.config.js (DESIGN.md §5) as a JSON schema that ajv
 * validates, with the defaults written into the schema (STYLE.md: fastify).
 * Durations are seconds; sizes are octets.
 */

import type { TransportName } from '../types.ts';

export interface ListenConfig {
  transport: TransportName;
  host: string;
  port: number;
  /** accept AUTH on this plain TCP listener (tests, loopback, TLS terminated in front). */
  insecureAuth?: boolean;
  /** TLS: certificate chain and key files (PEM); reloaded on SIGHUP. */
  cert?: string;
  key?: string;
  /** TLS: CA bundle used to verify relay peers' client certificates (R-4, R-5). */
  ca?: string;
  /** TLS: lowest protocol version (R-2: 1.2 at least). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** ws/wss: the HTTP path of the WebSocket endpoint (used by the websocket plugin). */
  path?: string;
}

export interface SessionConfig {
  minExpires: number;
  defaultExpires: number;
  maxExpires: number;
}

export interface TimeoutsConfig {
  firstRequest: number;
  headerCompletion: number;
  transaction: number;
  nonce: number;
  idle: number;
  /** How long one async plugin tap may take. */
  hook: number;
  /** Opening a connection to the next hop. */
  connect: number;
  /** Shutdown: how long open transfers may drain before connections are cut. */
  drain: number;
  /** A peer whose queued output stays over `limits.maxBufferedPerConnection` this long is closed. */
  outputStall: number;
  /** A TLS handshake must finish this soon after the connection is accepted (the first request's timer starts after it). */
  tlsHandshake: number;
}

export interface LimitsConfig {
  maxMessageSize: number;
  maxConnectionsPerIp: number;
  maxConnections: number;
  maxSessionsPerConnection: number;
  maxOutstandingPerConnection: number;
  maxStartLine: number;
  maxHeaderLine: number;
  maxHeaderSection: number;
  maxHeaders: number;
  maxPathUris: number;
  /** AUTH failures before the connection is closed. */
  maxAuthFailures: number;
  /**
   * Octets the relay may have queued toward a peer before it stops reading that peer (a
   * peer that does not read its answers); four times this, or a stall of
   * `timeouts.outputStall`, closes the connection. At least 256 KiB: a forwarded body can
   * hold a socket's high-water mark and a read's worth of octets in the queue by itself.
   */
  maxBufferedPerConnection: number;
  /** in spirit: AUTHs without credentials in a row before the connection is closed. */
  maxChallengesPerConnection: number;
  /** Connections the relay opens to next hops (outward legs), apart from `maxConnections`. */
  maxOutboundConnections: number;
}

/**
 * Where the relay may dial (docs/guides/deployment.md, core/transport/destination-policy.ts):
 * rules are addresses, CIDRs, host names (`*.example.com`), classes (`loopback`, `link-local`,
 * `metadata`, `private`, `reserved`) or `*`, each with an optional `:port` or `:from-to`.
 */
export interface OutboundConfig {
  /** Lifts the built-in refusals (loopback, link-local, metadata, reserved) for what it matches. */
  allow: string[];
  /** Refused, whatever `allow` says. */
  deny: string[];
  /** `auto`: loopback may be dialled when every listener is on loopback; true/false: always/never (unless allowed). */
  loopback: 'auto' | boolean;
  /** Outward legs one client connection may hold (open or being dialled). */
  maxLegsPerConnection: number;
  /** Outward legs one user (username@domain) may hold on this relay. */
  maxLegsPerUser: number;
}

/** A plugin entry: a name or path with its options, or an instance when embedding. */
export type PluginEntry = string | [string, unknown] | [string] | object;

export interface RelayConfig {
  /** Host written into Use-Path URIs (R-42: an FQDN in production). */
  hostname: string;
  listen: ListenConfig[];
  session: SessionConfig;
  timeouts: TimeoutsConfig;
  limits: LimitsConfig;
  /** forward requests with methods the relay does not know (default), or answer 501. */
  forwardUnknownMethods: boolean;
  /** share one outbound connection per next hop instead of one per session. */
  shareOutboundConnections: boolean;
  /** Which next hops the relay may dial, and how many legs a client may hold. */
  outbound: OutboundConfig;
  /** TLS options for connections the relay opens. */
  outboundTls: {
    /** Verify the next hop's certificate. Turn off only for tests. */
    rejectUnauthorized: boolean;
    ca?: string;
    cert?: string;
    key?: string;
  };
  plugins: PluginEntry[];
}

/** What a user writes: every key but `listen` may be left out. */
export type RelayConfigInput = Partial<Omit<RelayConfig, 'session' | 'timeouts' | 'limits' | 'outbound' | 'outboundTls'>> & {
  session?: Partial<SessionConfig>;
  timeouts?: Partial<TimeoutsConfig>;
  limits?: Partial<LimitsConfig>;
  outbound?: Partial<OutboundConfig>;
  outboundTls?: Partial<RelayConfig['outboundTls']>;
};

/** The transports the core and the shipped plugins serve (tcp, tls: the core; ws, wss: the websocket plugin). */
export const SHIPPED_TRANSPORTS: readonly string[] = Object.freeze(['tcp', 'tls', 'ws', 'wss']);

export const DEFAULT_SESSION: SessionConfig = { minExpires: 60, defaultExpires: 600, maxExpires: 3600 };
export const DEFAULT_TIMEOUTS: TimeoutsConfig = {
  firstRequest: 30,
  headerCompletion: 10,
  transaction: 30,
  nonce: 30,
  idle: 3600,
  hook: 5,
  connect: 10,
  drain: 10,
  outputStall: 30,
  tlsHandshake: 5,
};
export const DEFAULT_LIMITS: LimitsConfig = {
  maxMessageSize: 64 * 2 ** 20,
  // Many users behind one NAT address, each session on its own connection: a tenth of the total.
  maxConnectionsPerIp: 1000,
  maxConnections: 10000,
  maxSessionsPerConnection: 100,
  maxOutstandingPerConnection: 256,
  maxStartLine: 1024,
  maxHeaderLine: 8192,
  maxHeaderSection: 16384,
  maxHeaders: 64,
  maxPathUris: 16,
  maxAuthFailures: 3,
  maxBufferedPerConnection: 1024 * 1024,
  maxChallengesPerConnection: 3,
  maxOutboundConnections: 10000,
};

export const DEFAULT_OUTBOUND: OutboundConfig = {
  allow: [],
  deny: [],
  loopback: 'auto',
  maxLegsPerConnection: 100,
  maxLegsPerUser: 256,
};

const seconds = (def: number, min = 0) => ({ type: 'number', minimum: min, default: def });
const count = (def: number, min = 1) => ({ type: 'integer', minimum: min, default: def });

export const LISTEN_SCHEMA = {
  type: 'object',
  required: ['transport', 'port'],
  additionalProperties: false,
  properties: {
    // Any transport a provider may register (core/transport/registry.ts); normalizeConfig
    // checks the names against the shipped ones unless the relay checks its registry instead.
    transport: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,15}$' },
    host: { type: 'string', minLength: 1, default: '127.0.0.1' },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    insecureAuth: { type: 'boolean', default: false },
    cert: { type: 'string', minLength: 1 },
    key: { type: 'string', minLength: 1 },
    ca: { type: 'string', minLength: 1 },
    minVersion: { type: 'string', enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2' },
    path: { type: 'string', pattern: '^/', default: '/' },
  },
  allOf: [
    {
      if: { properties: { transport: { enum: ['tls', 'wss'] } } },
      then: { required: ['cert', 'key'] },
    },
  ],
} as const;

/** The whole config file. Plugin options are validated afterwards against each plugin's own schema. */
export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['listen'],
  properties: {
    hostname: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9.:\\[\\]-]+$', default: 'localhost' },
    listen: { type: 'array', minItems: 1, items: LISTEN_SCHEMA },
    session: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        minExpires: seconds(DEFAULT_SESSION.minExpires, 1),
        defaultExpires: seconds(DEFAULT_SESSION.defaultExpires, 1),
        maxExpires: seconds(DEFAULT_SESSION.maxExpires, 1),
      },
    },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        firstRequest: seconds(DEFAULT_TIMEOUTS.firstRequest, 0.001),
        headerCompletion: seconds(DEFAULT_TIMEOUTS.headerCompletion, 0.001),
        transaction: seconds(DEFAULT_TIMEOUTS.transaction, 0.001),
        nonce: seconds(DEFAULT_TIMEOUTS.nonce, 0.001),
        idle: seconds(DEFAULT_TIMEOUTS.idle, 0.001),
        hook: seconds(DEFAULT_TIMEOUTS.hook, 0.001),
        connect: seconds(DEFAULT_TIMEOUTS.connect, 0.001),
        drain: seconds(DEFAULT_TIMEOUTS.drain, 0),
        outputStall: seconds(DEFAULT_TIMEOUTS.outputStall, 0.001),
        tlsHandshake: seconds(DEFAULT_TIMEOUTS.tlsHandshake, 0.001),
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxMessageSize: count(DEFAULT_LIMITS.maxMessageSize, 0),
        maxConnectionsPerIp: count(DEFAULT_LIMITS.maxConnectionsPerIp),
        maxConnections: count(DEFAULT_LIMITS.maxConnections),
        maxSessionsPerConnection: count(DEFAULT_LIMITS.maxSessionsPerConnection),
        maxOutstandingPerConnection: count(DEFAULT_LIMITS.maxOutstandingPerConnection),
        maxStartLine: count(DEFAULT_LIMITS.maxStartLine, 64),
        maxHeaderLine: count(DEFAULT_LIMITS.maxHeaderLine, 256),
        maxHeaderSection: count(DEFAULT_LIMITS.maxHeaderSection, 512),
        maxHeaders: count(DEFAULT_LIMITS.maxHeaders, 4),
        maxPathUris: count(DEFAULT_LIMITS.maxPathUris, 2),
        maxAuthFailures: count(DEFAULT_LIMITS.maxAuthFailures),
        maxBufferedPerConnection: count(DEFAULT_LIMITS.maxBufferedPerConnection, 262144),
        maxChallengesPerConnection: count(DEFAULT_LIMITS.maxChallengesPerConnection),
        maxOutboundConnections: count(DEFAULT_LIMITS.maxOutboundConnections),
      },
    },
    forwardUnknownMethods: { type: 'boolean', default: true },
    shareOutboundConnections: { type: 'boolean', default: false },
    outbound: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        allow: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
        deny: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
        loopback: { enum: ['auto', true, false], default: DEFAULT_OUTBOUND.loopback },
        maxLegsPerConnection: count(DEFAULT_OUTBOUND.maxLegsPerConnection),
        maxLegsPerUser: count(DEFAULT_OUTBOUND.maxLegsPerUser),
      },
    },
    outboundTls: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        rejectUnauthorized: { type: 'boolean', default: true },
        ca: { type: 'string', minLength: 1 },
        cert: { type: 'string', minLength: 1 },
        key: { type: 'string', minLength: 1 },
      },
    },
    plugins: { type: 'array', default: [] },
  },
} as const;

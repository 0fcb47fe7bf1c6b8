/**
 * throttle: connection, AUTH, bandwidth, session and message-size limits (RFC.md R-43,
 * ), on top of the core's fixed caps (`limits.*`).
 *
 * | limit | hook | answer |
 * |---|---|---|
 * | new connections per address / in total per time window, open connections cluster-wide | acceptConnection | connection closed |
 * | AUTH failures per address and per user | authenticate (stage -100), authFailed, authenticated | 403 + Retry-After |
 * | sessions per user | authorize (stage 100), authenticated, sessionClosed | 403 |
 * | message size per user | forwardChunk | 413 (R-72) |
 * | bytes per second per session, user, address, in total | bodyForwarded | the sender is read more slowly |
 *
 * Each hook is tapped only when its limit is configured, so what is not used costs nothing.
 * Other plugins hear of every refusal through `Throttle.getHooks(relay).throttled`.
 */

import { randomBytes } from 'node:crypto';
import tapable from 'tapable';
import type { SyncHook as SyncHookT } from 'tapable';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { MsrpError, type PluginHost, type RelayPlugin, type ConnectionContext, type Identity, type SessionInfo } from '../../core/index.ts';
import type { MsrpRequestHead } from '../../core/protocol/index.ts';
import { AuthBackoff, type AuthBackoffOptions } from './auth-backoff.ts';
import { Pacer, type BandwidthOptions, type RateOptions } from './pacer.ts';
import { memoryStore, redisStore, type RedisStoreOptions, type ThrottleStore, type WindowOptions } from './store.ts';

const { SyncHook } = tapable;

/** What a throttle limit did; `throttled` taps get one per refusal or pause. */
export interface ThrottleEvent {
  readonly kind: 'connection' | 'auth' | 'bandwidth' | 'sessions' | 'size';
  /**
   * What was limited: `ip:<address>`, `user:<user>@<domain>`, `session:<first 6 characters>…`
   * (session ids are secrets, R-87) or `total`.
   */
  readonly key: string;
  /**
   * The limit hit, in its own unit: connections (per window or open), failed AUTHs, bytes per
   * second, sessions, or bytes of a message.
   */
  readonly limit: number;
  /** How long the peer is held back: the AUTH block left (Retry-After), or a bandwidth pause. */
  readonly delayMs?: number;
  /** The connection concerned. */
  readonly connection?: ConnectionContext;
}

export interface ThrottleHooks {
  /** A limit refused something or paused a sender. A notification: taps must not throw or block. */
  readonly throttled: SyncHookT<[ThrottleEvent]>;
}

interface WindowLimit {
  connections: number;
  seconds: number;
}

interface UserLimits {
  maxSessions?: number;
  maxMessageSize?: number;
  bytesPerSecond?: number;
  burst?: number;
}

export interface ThrottleOptions {
  store: 'memory' | 'redis';
  redis: RedisStoreOptions;
  exemptAddresses: string[];
  connections: {
    ratePerIp?: WindowLimit;
    rateTotal?: WindowLimit;
    maxPerIp?: number;
    maxTotal?: number;
  };
  auth: AuthBackoffOptions;
  bandwidth: BandwidthOptions;
  users: { maxSessions?: number; maxMessageSize?: number };
  userOverrides: Record<string, UserLimits>;
}

const positive = { type: 'integer', minimum: 1 } as const;
const rate = {
  type: 'object',
  additionalProperties: false,
  required: ['bytesPerSecond'],
  properties: {
    bytesPerSecond: { ...positive, description: 'sustained bytes per second' },
    burst: { ...positive, description: 'bytes that may pass at once after a quiet period (default: bytesPerSecond)' },
  },
} as const;
const windowLimit = {
  type: 'object',
  additionalProperties: false,
  required: ['connections', 'seconds'],
  properties: {
    connections: { ...positive, description: 'new connections allowed per window' },
    seconds: { ...positive, description: 'window length' },
  },
} as const;

/** Per relay: the hooks other plugins tap (never added to relay.hooks, DESIGN.md §3). */
const hooksByRelay = new WeakMap<object, ThrottleHooks>();

/** Per connection, in `connection.notes` under the plugin name. */
interface ConnNotes {
  /** Cluster-wide connection leases held for this connection. */
  leases: Array<[string, string]>;
  /** Session reservations taken in authorize, by AUTH request, until the session exists or the AUTH fails. */
  reservations: Map<MsrpRequestHead, [string, string]>;
}

export default class Throttle implements RelayPlugin {
  static readonly schema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      store: { enum: ['memory', 'redis'], default: 'memory', description: 'where counters live; redis shares them between relay nodes' },
      redis: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          url: { type: 'string', pattern: '^rediss?://', default: 'redis://127.0.0.1:6379' },
          keyPrefix: { type: 'string', default: 'msrprelay:throttle:' },
          commandTimeoutMs: { type: 'integer', minimum: 10, default: 1000, description: 'keep below timeouts.hook' },
          connectTimeoutMs: { type: 'integer', minimum: 10, default: 3000 },
          leaseSeconds: { type: 'integer', minimum: 3, default: 60, description: 'how long a dead node still counts' },
        },
      },
      exemptAddresses: { type: 'array', items: { type: 'string', minLength: 1 }, default: [], uniqueItems: true },
      connections: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          ratePerIp: windowLimit,
          rateTotal: windowLimit,
          maxPerIp: { ...positive, description: 'open connections per address, across nodes with redis' },
          maxTotal: { ...positive, description: 'open connections, across nodes with redis' },
        },
      },
      auth: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          enabled: { type: 'boolean', default: true },
          perIp: { type: 'boolean', default: true },
          perUser: { type: 'boolean', default: true },
          freeFailures: { ...positive, default: 5 },
          window: { ...positive, default: 300 },
          backoff: { ...positive, default: 30 },
          maxBackoff: { ...positive, default: 3600 },
          decay: { ...positive, default: 86400 },
        },
      },
      bandwidth: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: { perSession: rate, perUser: rate, perIp: rate, total: rate },
      },
      users: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          maxSessions: { ...positive, description: 'sessions a user may hold at once' },
          maxMessageSize: { ...positive, description: 'bytes of one message (Byte-Range total), else 413' },
        },
      },
      userOverrides: {
        type: 'object',
        default: {},
        propertyNames: { pattern: '^[^@\\s]+@[^@\\s]+$' },
        additionalProperties: {
          type: 'object',
          additionalProperties: false,
          properties: {
            maxSessions: positive,
            maxMessageSize: positive,
            bytesPerSecond: positive,
            burst: positive,
          },
        },
      },
    },
  } as const;

  /** The throttle's own hooks for this relay, made on first use (before or after the plugin is applied). */
  static getHooks(relay: PluginHost): ThrottleHooks {
    let h = hooksByRelay.get(relay);
    if (h === undefined) {
      h = Object.freeze({ throttled: new SyncHook<[ThrottleEvent]>(['event'], 'throttled') });
      hooksByRelay.set(relay, h);
    }
    return h;
  }

  readonly name = 'throttle';
  private readonly o: ThrottleOptions;
  private readonly overrides: Map<string, UserLimits>;
  private readonly exempt: Set<string>;
  private relay: PluginHost | undefined;
  private store: ThrottleStore | undefined;
  private pacer: Pacer | undefined;
  /** Session leases, for release when the session closes. */
  private readonly sessionLeases = new WeakMap<SessionInfo, [string, string]>();
  /** Message-IDs refused with 413, per session (R-72: every later chunk gets 413 too). */
  private readonly refused = new WeakMap<SessionInfo, Set<string>>();

  constructor(options: ThrottleOptions) {
    this.o = options;
    const a = options.auth;
    if (a.maxBackoff < a.backoff) throw new Error(`auth.maxBackoff (${a.maxBackoff}) must be >= auth.backoff (${a.backoff})`);
    for (const [k, r] of Object.entries(options.bandwidth)) {
      if (r !== undefined && r.burst !== undefined && r.burst < 1024) throw new Error(`bandwidth.${k}.burst must be at least 1024 bytes`);
    }
    for (const [k, u] of Object.entries(options.userOverrides)) {
      if (u.burst !== undefined && u.burst < 1024) throw new Error(`userOverrides["${k}"].burst must be at least 1024 bytes`);
    }
    this.overrides = new Map(Object.entries(options.userOverrides).map(([k, v]) => [userKey(k), v]));
    this.exempt = new Set(options.exemptAddresses);
  }

  async apply(relay: PluginHost): Promise<void> {
    this.relay = relay;
    const report = (e: unknown): void => this.report(e);
    this.store = this.o.store === 'redis' ? await redisStore(this.o.redis, report) : memoryStore();
    this.applyConnections(relay, this.store);
    this.applyAuth(relay, this.store);
    this.applySessions(relay, this.store);
    this.applySize(relay);
    this.applyBandwidth(relay);
  }

  async close(): Promise<void> {
    this.pacer?.close();
    await this.store?.close();
  }

  // ------------------------------------------------------------ connections

  private applyConnections(relay: PluginHost, store: ThrottleStore): void {
    const c = this.o.connections;
    const perIp = c.ratePerIp !== undefined ? store.limiter('conn-ip', window(c.ratePerIp)) : undefined;
    const total = c.rateTotal !== undefined ? store.limiter('conn-total', window(c.rateTotal)) : undefined;
    const { maxPerIp, maxTotal } = c;
    if (perIp === undefined && total === undefined && maxPerIp === undefined && maxTotal === undefined) return;
    relay.hooks.acceptConnection.tapPromise(this.name, async (conn) => {
      const ip = conn.remoteAddress;
      if (this.exempt.has(ip)) return undefined;
      // Rates first: they cost one counter each and need no release.
      if (perIp !== undefined && !(await spend(perIp, ip))) return this.refuseConnection(conn, `ip:${ip}`, c.ratePerIp!.connections, 'too many new connections from this address');
      if (total !== undefined && !(await spend(total, 'total'))) return this.refuseConnection(conn, 'total', c.rateTotal!.connections, 'too many new connections');
      const notes = this.notes(conn);
      const member = `${store.nodeId}:${conn.id}`;
      const caps: Array<[string, number]> = [];
      if (maxPerIp !== undefined) caps.push([`conn:ip:${ip}`, maxPerIp]);
      if (maxTotal !== undefined) caps.push([`conn:total`, maxTotal]);
      for (const [key, max] of caps) {
        if (await this.acquire(key, member, max)) {
          notes.leases.push([key, member]);
          continue;
        }
        this.releaseConnection(conn);
        return this.refuseConnection(conn, key === 'conn:total' ? 'total' : `ip:${ip}`, max, 'too many open connections');
      }
      return undefined;
    });
    if (maxPerIp !== undefined || maxTotal !== undefined) {
      relay.hooks.connectionClosed.tap(this.name, (conn) => this.releaseConnection(conn));
    }
  }

  private refuseConnection(conn: ConnectionContext, key: string, limit: number, why: string) {
    this.emit({ kind: 'connection', key, limit, connection: conn });
    return { reject: new MsrpError('MSRP_ERR_FORBIDDEN', why) };
  }

  private releaseConnection(conn: ConnectionContext): void {
    const notes = conn.notes.get(this.name) as ConnNotes | undefined;
    if (notes === undefined) return;
    for (const [key, member] of notes.leases.splice(0)) this.store!.leases.release(key, member).catch((e: unknown) => this.report(e));
  }

  // ------------------------------------------------------------ AUTH back-off

  private applyAuth(relay: PluginHost, store: ThrottleStore): void {
    const a = this.o.auth;
    if (!a.enabled || (!a.perIp && !a.perUser)) return;
    const backoff = new AuthBackoff(store, a);
    const address = (conn: ConnectionContext): string | undefined => (this.exempt.has(conn.remoteAddress) ? undefined : conn.remoteAddress);
    // Before core:digest (stage 0): a blocked address or user is not even challenged.
    relay.hooks.authenticate.tapPromise({ name: this.name, stage: -100 }, async (auth) => {
      const user = digestUser(auth.authorization, auth.domain);
      const block = await backoff.blocked(backoff.keys(address(auth.connection), user));
      if (block === undefined) return undefined;
      const seconds = Math.max(1, Math.ceil(block.retryAfterMs / 1000));
      this.emit({ kind: 'auth', key: block.key, limit: a.freeFailures, delayMs: block.retryAfterMs, connection: auth.connection });
      // 403, not 401: this is policy, not a credential verdict, and it counts toward R-43 so a
      // client that keeps trying on one connection is disconnected. Retry-After (an extension
      // header, as in SIP) tells an honest client when to try again.
      return { reject: new MsrpError('MSRP_ERR_FORBIDDEN', 'too many failed AUTH attempts', { headers: [['Retry-After', String(seconds)]] }) };
    });
    relay.hooks.authFailed.tap(this.name, (f) => {
      // a 401 here is a failed guess (first and stale challenges do not fire authFailed).
      if (f.status !== 401) return;
      const user = f.username !== undefined && f.domain !== undefined ? userKey(`${f.username}@${f.domain}`) : undefined;
      backoff.failed(backoff.keys(address(f.connection), user)).then(
        (blocks) => {
          for (const b of blocks) this.emit({ kind: 'auth', key: b.key, limit: a.freeFailures, delayMs: b.retryAfterMs, connection: f.connection });
        },
        (e: unknown) => this.report(e),
      );
    });
    if (a.perUser) {
      relay.hooks.authenticated.tap(this.name, (identity) => {
        backoff.succeeded(identityKey(identity)).catch((e: unknown) => this.report(e));
      });
    }
  }

  // ------------------------------------------------------------ sessions per user

  private applySessions(relay: PluginHost, store: ThrottleStore): void {
    if (this.o.users.maxSessions === undefined && !this.overridden('maxSessions')) return;
    const leases = store.leases;
    // After other authorize taps (stage 100): only an AUTH that would otherwise succeed takes a place.
    relay.hooks.authorize.tapPromise({ name: this.name, stage: 100 }, async (identity, auth) => {
      const user = identityKey(identity);
      const max = this.overrides.get(user)?.maxSessions ?? this.o.users.maxSessions;
      if (max === undefined) return undefined;
      const member = `${store.nodeId}:${randomBytes(8).toString('hex')}`;
      const key = `sessions:${user}`;
      if (!(await this.acquire(key, member, max))) {
        this.emit({ kind: 'sessions', key: `user:${user}`, limit: max, connection: auth.connection });
        return { reject: new MsrpError('MSRP_ERR_TOO_MANY_SESSIONS', `${user} holds ${max} sessions already`) };
      }
      this.notes(auth.connection).reservations.set(auth.request, [key, member]);
      return undefined;
    });
    relay.hooks.authenticated.tap(this.name, (_identity, auth, session) => {
      const r = this.takeReservation(auth.connection, auth.request);
      if (r !== undefined) this.sessionLeases.set(session, r);
    });
    // The AUTH failed after authorize (a later check refused it): give the place back.
    relay.hooks.authFailed.tap(this.name, (f) => this.dropReservation(this.takeReservation(f.connection, f.request)));
    relay.hooks.sessionClosed.tap(this.name, (session) => {
      const r = this.sessionLeases.get(session);
      this.sessionLeases.delete(session);
      this.dropReservation(r);
    });
    relay.hooks.connectionClosed.tap(this.name, (conn) => {
      // The connection closed in the middle of an AUTH.
      const notes = conn.notes.get(this.name) as ConnNotes | undefined;
      if (notes === undefined) return;
      for (const r of notes.reservations.values()) this.dropReservation(r);
      notes.reservations.clear();
    });
    // Sessions made before this plugin was applied (a reload) still count.
    for (const s of relay.sessions.values()) {
      const r: [string, string] = [`sessions:${identityKey(s.identity)}`, `${store.nodeId}:${randomBytes(8).toString('hex')}`];
      this.sessionLeases.set(s, r);
      leases.acquire(r[0], r[1], Infinity).catch((e: unknown) => this.report(e));
    }
  }

  /** A place under a cap. If the store fails, the cap is not enforced (fail open) and the error is reported. */
  private async acquire(key: string, member: string, max: number): Promise<boolean> {
    try {
      return await this.store!.leases.acquire(key, member, max);
    } catch (e) {
      this.report(e);
      return true;
    }
  }

  private takeReservation(conn: ConnectionContext, req: MsrpRequestHead): [string, string] | undefined {
    const notes = conn.notes.get(this.name) as ConnNotes | undefined;
    const r = notes?.reservations.get(req);
    if (r !== undefined) notes!.reservations.delete(req);
    return r;
  }

  private dropReservation(r: [string, string] | undefined): void {
    if (r !== undefined) this.store!.leases.release(r[0], r[1]).catch((e: unknown) => this.report(e));
  }

  // ------------------------------------------------------------ message size

  private applySize(relay: PluginHost): void {
    if (this.o.users.maxMessageSize === undefined && !this.overridden('maxMessageSize')) return;
    relay.hooks.forwardChunk.tapPromise(this.name, async (chunk) => {
      const req = chunk.request;
      if (req.method !== 'SEND' || req.messageId === undefined) return undefined;
      // The smallest cap of the users whose sessions the message crosses (both, for a hand-over).
      let max: number | undefined;
      let user = '';
      for (const s of chunk.from === undefined ? [chunk.session] : [chunk.session, chunk.from]) {
        const u = identityKey(s.identity);
        const cap = this.overrides.get(u)?.maxMessageSize ?? this.o.users.maxMessageSize;
        if (cap !== undefined && (max === undefined || cap < max)) [max, user] = [cap, u];
      }
      if (max === undefined) return undefined;
      // Made only when refusing: most chunks pass, and an Error costs a stack trace.
      const tooLarge = () => ({ reject: new MsrpError('MSRP_ERR_MESSAGE_TOO_LARGE', `message larger than ${max} bytes allowed for ${user} (R-72)`) });
      if (this.refused.get(chunk.session)?.has(req.messageId) === true) return tooLarge();
      const br = req.byteRange;
      // the announced total, or where this chunk starts or ends, past the cap.
      const over = br !== undefined && (br.total > max || br.start - 1 > max || br.end > max);
      if (!over) return undefined;
      this.remember(chunk.session, req.messageId);
      this.emit({ kind: 'size', key: `user:${user}`, limit: max, connection: chunk.connection });
      return tooLarge();
    });
  }

  private remember(session: SessionInfo, messageId: string): void {
    let set = this.refused.get(session);
    if (set === undefined) this.refused.set(session, (set = new Set()));
    // Bounded: a session that keeps sending huge messages does not grow this without end.
    if (set.size >= 1024) set.delete(set.values().next().value!);
    set.add(messageId);
  }

  // ------------------------------------------------------------ bandwidth

  private applyBandwidth(relay: PluginHost): void {
    const b = this.o.bandwidth;
    if (b.perSession === undefined && b.perUser === undefined && b.perIp === undefined && b.total === undefined && !this.overridden('bytesPerSecond')) return;
    const pacer = new Pacer({
      bandwidth: b,
      reason: this.name,
      userRate: (user): RateOptions | undefined => {
        const u = this.overrides.get(user);
        if (u?.bytesPerSecond !== undefined) return { bytesPerSecond: u.bytesPerSecond, ...(u.burst !== undefined ? { burst: u.burst } : {}) };
        return b.perUser;
      },
      exempt: (address) => this.exempt.has(address),
      onPause: (e) => this.emit({ kind: 'bandwidth', key: e.key, limit: e.limit, delayMs: e.delayMs, connection: e.connection }),
    });
    this.pacer = pacer;
    relay.hooks.bodyForwarded.tap(this.name, (chunk, bytes) => pacer.charge(chunk, bytes));
  }

  // ------------------------------------------------------------ shared

  /** True when some user override sets `limit`. */
  private overridden(limit: keyof UserLimits): boolean {
    for (const u of this.overrides.values()) if (u[limit] !== undefined) return true;
    return false;
  }

  private notes(conn: ConnectionContext): ConnNotes {
    let n = conn.notes.get(this.name) as ConnNotes | undefined;
    if (n === undefined) conn.notes.set(this.name, (n = { leases: [], reservations: new Map() }));
    return n;
  }

  private emit(e: ThrottleEvent): void {
    const relay = this.relay!;
    const hook = hooksByRelay.get(relay)?.throttled;
    if (hook === undefined || hook.taps.length === 0) return;
    try {
      hook.call(e);
    } catch (err) {
      // A notification tap that throws must not break the limit that fired it.
      this.report(err, 'throttled');
    }
  }

  private report(e: unknown, hook = 'throttle'): void {
    const err = e instanceof Error ? e : new Error(String(e));
    const relay = this.relay;
    if (relay === undefined) return;
    relay.log.warn('throttle: store or tap failed', { error: err.message });
    try {
      relay.hooks.error.call(err, { plugin: this.name, hook });
    } catch {
      // nothing left to tell
    }
  }
}

/** rate-limiter-flexible: true when the event fits in the window, false when it does not. */
async function spend(limiter: RateLimiterAbstract, key: string): Promise<boolean> {
  try {
    await limiter.consume(key);
    return true;
  } catch (e) {
    if (e instanceof RateLimiterRes) return false;
    throw e;
  }
}

function window(w: WindowLimit): WindowOptions {
  return { points: w.connections, duration: w.seconds };
}

/** Usernames are case-sensitive (SIP user part); domains are not. */
function userKey(userAtDomain: string): string {
  const at = userAtDomain.lastIndexOf('@');
  return `${userAtDomain.slice(0, at)}@${userAtDomain.slice(at + 1).toLowerCase()}`;
}

function identityKey(identity: Identity): string {
  return `${identity.username}@${identity.domain.toLowerCase()}`;
}

/** The username of a Digest Authorization value, as user@domain. */
function digestUser(authorization: string | undefined, domain: string): string | undefined {
  if (authorization === undefined) return undefined;
  const m = /username\s*=\s*"([^"]{1,256})"/i.exec(authorization);
  return m === null ? undefined : `${m[1]}@${domain.toLowerCase()}`;
}


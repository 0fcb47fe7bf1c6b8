/**
 * Every hook of the relay, declared once (STYLE.md: webpack's Compiler.hooks).
 *
 * Decisions are Bail or Waterfall hooks: a tap returns `undefined` to pass, or a
 * typed decision ({ reject }, { accept }, ...). Notifications are SyncHooks the
 * relay never waits on; a throwing notification tap is reported to `error` and
 * otherwise ignored. Async hooks take promise taps only (tapPromise), and each
 * tap runs under the hook timeout: a tap that does not settle in time fails with
 * a HookTimeoutError that names the plugin (DESIGN.md §3). Every context a tap
 * receives carries `signal`, aborted when the connection it concerns closes, so
 * a plugin can abandon its I/O. A tap may answer by throwing an MsrpError; any
 * other exception is wrapped in a PluginError and the relay fails closed.
 *
 * The object is frozen: a plugin that offers hooks of its own publishes them with
 * `static getHooks(relay)`, it never adds keys here.
 */

import tapable from 'tapable';
import { DeadlineQueue } from './deadlines.ts';
import { isMsrpError } from './errors.ts';
import type {
  AsyncParallelHook as AsyncParallelHookT,
  AsyncSeriesBailHook as AsyncSeriesBailHookT,
  AsyncSeriesHook as AsyncSeriesHookT,
  SyncHook as SyncHookT,
  SyncWaterfallHook as SyncWaterfallHookT,
} from 'tapable';
import type {
  AuthDecision,
  AuthFailure,
  AuthRequest,
  BindRequest,
  ChunkContext,
  ChunkStats,
  ClaimDecision,
  CloseReason,
  ConnectionContext,
  CredentialQuery,
  Credentials,
  DomainDecision,
  DomainQuery,
  ErrorContext,
  ForwardContext,
  Identity,
  NextHopDecision,
  NextHopQuery,
  LocalRequest,
  PathPair,
  Rejection,
  RequestContext,
  RequestDecision,
  SentResponse,
  SessionInfo,
} from './types.ts';

const { AsyncParallelHook, AsyncSeriesBailHook, AsyncSeriesHook, SyncHook, SyncWaterfallHook } = tapable;

export interface RelayHooks<R = unknown> {
  /** Once, before sockets bind. Throwing aborts start (open pools here). */
  readonly beforeListen: AsyncSeriesHookT<[R]>;
  /** Shutdown begins (before listeners close and sessions drain). A throwing tap is reported and shutdown goes on. */
  readonly beforeClose: AsyncSeriesHookT<[R]>;
  /** Everything is closed: release pools and files. */
  readonly closed: AsyncParallelHookT<[R]>;
  /** A new inbound peer, before any byte is read. A Rejection closes it. */
  readonly acceptConnection: AsyncSeriesBailHookT<[ConnectionContext], Rejection | undefined>;
  /** The socket is gone. */
  readonly connectionClosed: SyncHookT<[ConnectionContext, CloseReason]>;
  /** Each valid request header block, before receiveRequest (observers: counters, access logs). */
  readonly requestReceived: SyncHookT<[RequestContext]>;
  /**
   * Each valid request header block, before routing. A Rejection is answered hop by hop;
   * `{ respond }` answers the request with that response instead of routing it (NICKNAME, C-13).
   */
  readonly receiveRequest: AsyncSeriesBailHookT<[RequestContext], RequestDecision | undefined>;
  /**
   * A request whose next To-Path URI names this relay but no session of it, or a session URI
   * of this relay alone (DESIGN.md §3a). A LocalReceiver claims it: the tap's plugin is then
   * its endpoint and gets its body and end-line. A Rejection is answered with its status;
   * when every tap passes, the relay answers as it would without plugins (481, 403, 501).
   */
  readonly claimRequest: AsyncSeriesBailHookT<[LocalRequest], ClaimDecision | undefined>;
  /** AUTH, before the challenge: the SIP domain and realm (core:default-domain answers last). */
  readonly resolveDomain: AsyncSeriesBailHookT<[DomainQuery], DomainDecision | undefined>;
  /** Every AUTH addressed to this relay: challenge, accept or reject (core:digest at stage 0). */
  readonly authenticate: AsyncSeriesBailHookT<[AuthRequest], AuthDecision | undefined>;
  /** core:digest needs (user, realm): { ha1 } or { password }; when every tap passes, the user is unknown. */
  readonly lookupCredentials: AsyncSeriesBailHookT<[CredentialQuery], Credentials | undefined>;
  /** A valid identity, before the 200. A Rejection is answered with its status (403 for R-38). */
  readonly authorize: AsyncSeriesBailHookT<[Identity, AuthRequest], Rejection | undefined>;
  /** An AUTH succeeded: the session exists and the 200 is about to be written. */
  readonly authenticated: SyncHookT<[Identity, AuthRequest, SessionInfo]>;
  /** A 401 (counted failure) or 403 was sent to an AUTH. */
  readonly authFailed: SyncHookT<[AuthFailure]>;
  /** The far end uses a token for the first time. A Rejection is answered with its status. */
  readonly bindSession: AsyncSeriesBailHookT<[BindRequest], Rejection | undefined>;
  /** A session ended (expired, owner gone, shutdown): accounting. */
  readonly sessionClosed: SyncHookT<[SessionInfo, CloseReason]>;
  /** The relay must open the next leg: host, port, transport (core:next-hop answers last). */
  readonly resolveNextHop: AsyncSeriesBailHookT<[NextHopQuery], NextHopDecision | undefined>;
  /** Each forwarded request, after the RFC rewrite: return the paths to send. */
  readonly rewritePath: SyncWaterfallHookT<[PathPair, ForwardContext]>;
  /** Each chunk's headers, before its bytes flow. A Rejection is answered with its status (413, 415, 403…); awaiting throttles. */
  readonly forwardChunk: AsyncSeriesBailHookT<[ChunkContext], Rejection | undefined>;
  /**
   * Body bytes of a forwarded chunk were handed to the next hop: one call per slice read from
   * the sender (so at most one socket read ago). Called only when tapped; a throttle paces the
   * sender with `chunk.connection.pauseReading()` (back-pressure, never buffering).
   */
  readonly bodyForwarded: SyncHookT<[ChunkContext, number]>;
  /** A chunk was fully written to the next hop. */
  readonly chunkForwarded: SyncHookT<[ChunkStats]>;
  /** The relay wrote a response of its own (hop-by-hop 200, error, AUTH answer) to a request it received. */
  readonly responseSent: SyncHookT<[SentResponse]>;
  /** An unexpected error the core caught (a plugin threw, a socket failed oddly). */
  readonly error: SyncHookT<[Error, ErrorContext]>;
}

/** Every hook name, in the order a request meets them (for --print-hooks and docs). */
export const HOOK_ORDER = [
  'beforeListen',
  'acceptConnection',
  'requestReceived',
  'receiveRequest',
  'claimRequest',
  'resolveDomain',
  'authenticate',
  'lookupCredentials',
  'authorize',
  'authenticated',
  'authFailed',
  'bindSession',
  'resolveNextHop',
  'rewritePath',
  'forwardChunk',
  'bodyForwarded',
  'chunkForwarded',
  'responseSent',
  'sessionClosed',
  'connectionClosed',
  'error',
  'beforeClose',
  'closed',
] as const satisfies ReadonlyArray<keyof RelayHooks>;

export type HookName = (typeof HOOK_ORDER)[number];

/** A tap did not settle within the hook timeout. */
export class HookTimeoutError extends Error {
  readonly plugin: string;
  readonly hook: string;
  readonly timeoutMs: number;
  constructor(plugin: string, hook: string, timeoutMs: number) {
    super(`plugin "${plugin}" did not answer ${hook} within ${timeoutMs} ms`);
    this.name = 'HookTimeoutError';
    this.plugin = plugin;
    this.hook = hook;
    this.timeoutMs = timeoutMs;
  }
}

/** An exception thrown by a tap, with the plugin and hook it came from. */
export class PluginError extends Error {
  readonly plugin: string;
  readonly hook: string;
  constructor(plugin: string, hook: string, cause: unknown) {
    super(`plugin "${plugin}" failed in ${hook}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'PluginError';
    this.plugin = plugin;
    this.hook = hook;
  }
}

export interface HookOptions {
  /** Milliseconds each async tap may take; read at call time so a reload can change it. */
  tapTimeoutMs: () => number;
}

type AnyHook = {
  intercept(i: { register?: (tap: FullTapLike) => FullTapLike }): void;
};
interface FullTapLike {
  name: string;
  type: 'sync' | 'async' | 'promise';
  fn: (...args: unknown[]) => unknown;
}

const ASYNC_HOOKS = new Set<HookName>([
  'beforeListen',
  'beforeClose',
  'closed',
  'acceptConnection',
  'receiveRequest',
  'claimRequest',
  'resolveDomain',
  'authenticate',
  'lookupCredentials',
  'authorize',
  'bindSession',
  'resolveNextHop',
  'forwardChunk',
]);
const NOTIFICATIONS = new Set<HookName>([
  'connectionClosed',
  'requestReceived',
  'authenticated',
  'authFailed',
  'sessionClosed',
  'chunkForwarded',
  'bodyForwarded',
  'responseSent',
  'error',
]);

/** Creates the frozen hooks object with timeouts and error isolation installed. */
export function createHooks<R>(options: HookOptions): RelayHooks<R> {
  const hooks: RelayHooks<R> = {
    beforeListen: new AsyncSeriesHook<[R]>(['relay'], 'beforeListen'),
    beforeClose: new AsyncSeriesHook<[R]>(['relay'], 'beforeClose'),
    closed: new AsyncParallelHook<[R]>(['relay'], 'closed'),
    acceptConnection: new AsyncSeriesBailHook<[ConnectionContext], Rejection | undefined>(['connection'], 'acceptConnection'),
    connectionClosed: new SyncHook<[ConnectionContext, CloseReason]>(['connection', 'reason'], 'connectionClosed'),
    requestReceived: new SyncHook<[RequestContext]>(['ctx'], 'requestReceived'),
    receiveRequest: new AsyncSeriesBailHook<[RequestContext], RequestDecision | undefined>(['ctx'], 'receiveRequest'),
    claimRequest: new AsyncSeriesBailHook<[LocalRequest], ClaimDecision | undefined>(['request'], 'claimRequest'),
    resolveDomain: new AsyncSeriesBailHook<[DomainQuery], DomainDecision | undefined>(['query'], 'resolveDomain'),
    authenticate: new AsyncSeriesBailHook<[AuthRequest], AuthDecision | undefined>(['auth'], 'authenticate'),
    lookupCredentials: new AsyncSeriesBailHook<[CredentialQuery], Credentials | undefined>(['query'], 'lookupCredentials'),
    authorize: new AsyncSeriesBailHook<[Identity, AuthRequest], Rejection | undefined>(['identity', 'auth'], 'authorize'),
    authenticated: new SyncHook<[Identity, AuthRequest, SessionInfo]>(['identity', 'auth', 'session'], 'authenticated'),
    authFailed: new SyncHook<[AuthFailure]>(['failure'], 'authFailed'),
    bindSession: new AsyncSeriesBailHook<[BindRequest], Rejection | undefined>(['bind'], 'bindSession'),
    sessionClosed: new SyncHook<[SessionInfo, CloseReason]>(['session', 'reason'], 'sessionClosed'),
    resolveNextHop: new AsyncSeriesBailHook<[NextHopQuery], NextHopDecision | undefined>(['query'], 'resolveNextHop'),
    rewritePath: new SyncWaterfallHook<[PathPair, ForwardContext]>(['paths', 'ctx'], 'rewritePath'),
    forwardChunk: new AsyncSeriesBailHook<[ChunkContext], Rejection | undefined>(['chunk'], 'forwardChunk'),
    bodyForwarded: new SyncHook<[ChunkContext, number]>(['chunk', 'bytes'], 'bodyForwarded'),
    chunkForwarded: new SyncHook<[ChunkStats]>(['stats'], 'chunkForwarded'),
    responseSent: new SyncHook<[SentResponse]>(['response'], 'responseSent'),
    error: new SyncHook<[Error, ErrorContext]>(['error', 'ctx'], 'error'),
  };

  const reportError = (err: Error, ctx: ErrorContext): void => {
    try {
      hooks.error.call(err, ctx);
    } catch {
      // An error tap that throws has nowhere left to report to.
    }
  };

  for (const name of HOOK_ORDER) {
    const hook = hooks[name] as unknown as AnyHook;
    hook.intercept({
      register(tap) {
        if (ASYNC_HOOKS.has(name) && tap.type !== 'promise') {
          throw new Error(`plugin "${tap.name}": ${name} takes promise taps only (use tapPromise)`);
        }
        const fn = tap.fn;
        if (ASYNC_HOOKS.has(name)) {
          tap.fn = (...args: unknown[]) => runWithTimeout(fn, args, tap.name, name, options.tapTimeoutMs());
        } else if (NOTIFICATIONS.has(name)) {
          // Notifications never block or break the relay.
          tap.fn = (...args: unknown[]) => {
            try {
              fn(...args);
            } catch (e) {
              if (name !== 'error') reportError(new PluginError(tap.name, name, e), { plugin: tap.name, hook: name });
            }
          };
        } else {
          tap.fn = (...args: unknown[]) => {
            try {
              return fn(...args);
            } catch (e) {
              throw new PluginError(tap.name, name, e);
            }
          };
        }
        return tap;
      },
    });
  }
  return Object.freeze(hooks);
}

function runWithTimeout(
  fn: (...args: unknown[]) => unknown,
  args: unknown[],
  plugin: string,
  hook: string,
  timeoutMs: number,
): Promise<unknown> {
  let result: unknown;
  try {
    result = fn(...args);
  } catch (e) {
    // A thrown MsrpError is a deliberate answer; anything else is the plugin failing.
    return Promise.reject(isMsrpError(e) ? e : new PluginError(plugin, hook, e));
  }
  if (!(result instanceof Promise) && (typeof result !== 'object' || result === null || typeof (result as { then?: unknown }).then !== 'function')) {
    // STYLE.md: a bail hook passes on undefined, never null.
    return Promise.resolve(result === null ? undefined : result);
  }
  return new Promise((resolve, reject) => {
    const wait = deadlines.add(Date.now() + timeoutMs, () => reject(new HookTimeoutError(plugin, hook, timeoutMs)));
    (result as Promise<unknown>).then(
      (v) => {
        deadlines.settle(wait);
        resolve(v === null ? undefined : v);
      },
      (e: unknown) => {
        deadlines.settle(wait);
        reject(e instanceof HookTimeoutError || e instanceof PluginError || isMsrpError(e) ? e : new PluginError(plugin, hook, e));
      },
    );
  });
}

/** Every tap call's deadline, on one timer. */
const deadlines = new DeadlineQueue();

/**
 * True when a plugin tapped the hook. tapable's own isUsed() also counts
 * interceptors, and every hook here has one (timeouts, error isolation), so the
 * hot path asks this instead: an untapped hook costs nothing (DESIGN.md §3).
 */
export function isTapped(hook: { taps: readonly unknown[] }): boolean {
  return hook.taps.length > 0;
}

/** The taps of each hook in run order: `msrprelay --print-hooks`. */
export function describeTaps(hooks: RelayHooks<unknown>): Array<{ hook: HookName; taps: Array<{ name: string; stage: number }> }> {
  return HOOK_ORDER.map((hook) => ({
    hook,
    taps: ((hooks[hook] as unknown as { taps: Array<{ name: string; stage?: number }> }).taps ?? []).map((t) => ({
      name: t.name,
      stage: t.stage ?? 0,
    })),
  }));
}

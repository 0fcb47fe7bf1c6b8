/**
 * Every hook of the relay, declared once (STYLE.md: webpack's Compiler.hooks), and the
 * one place that decides what a tap's answer, exception or silence means (DESIGN.md §3).
 *
 * Decisions are Bail or Waterfall hooks: a tap returns `undefined` to pass, or a typed
 * decision ({ reject }, { accept }, ...). Notifications are SyncHooks the relay never
 * waits on. Async hooks take promise taps only (tapPromise), and each tap call runs
 * under the hook timeout with a signal of its own: aborted when the connection it
 * concerns closes or when its deadline passes (reason: the HookTimeoutError).
 *
 * One rule for failures, whatever the hook:
 * - an MsrpError, thrown, rejected or returned as `{ reject }`, is a deliberate answer:
 *   the relay answers with its status;
 * - anything else (an exception, a rejection, no answer in time) is the plugin failing:
 *   a PluginError or HookTimeoutError naming the plugin and the hook goes to the `error`
 *   hook once, here, with { plugin, hook, connection }, and the caller fails closed
 *   (a notification is just skipped; beforeClose and closed go on with their next tap).
 *
 * The object is frozen: a plugin that offers hooks of its own publishes them with
 * `static getHooks(relay)`, it never adds keys here.
 */

import tapable from 'tapable';
import { DeadlineQueue, type Deadline } from './deadlines.ts';
import { isMsrpError, type MsrpError } from './errors.ts';
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
  AccountQuery,
  CredentialQuery,
  Credentials,
  DomainDecision,
  DomainQuery,
  ErrorContext,
  ForwardContext,
  ForwardDirection,
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
import type { MsrpRequestHead } from './protocol/message.ts';
import type { MsrpUri } from './protocol/uri.ts';

const { AsyncParallelHook, AsyncSeriesBailHook, AsyncSeriesHook, SyncHook, SyncWaterfallHook } = tapable;

export interface RelayHooks<R = unknown> {
  /** Once, before sockets bind. Throwing aborts start (open pools here). */
  readonly beforeListen: AsyncSeriesHookT<[R]>;
  /** Shutdown begins (before listeners close and sessions drain). A failing tap is reported and the next one runs. */
  readonly beforeClose: AsyncSeriesHookT<[R]>;
  /** Everything is closed: release pools and files. A failing tap is reported; the others run all the same. */
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
  /**
   * An authenticated user, asked by every front that authenticates one (MSRP AUTH before
   * authorize; a SIP front): a Rejection bars the account (403, R-38). A tap keeps nothing per
   * call (no place reserved, nothing to give back): authorize is for that.
   */
  readonly checkAccount: AsyncSeriesBailHookT<[Identity, AccountQuery], Rejection | undefined>;
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
  /** An unexpected error the core caught: a tap failed (ctx names plugin and hook), a socket failed oddly. */
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
  'checkAccount',
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

type AnyFn = (...args: never[]) => unknown;
type TapFn = (...args: unknown[]) => unknown;
type Args = readonly unknown[];
type AnyHook = {
  intercept(i: { register?: (tap: FullTapLike) => FullTapLike }): void;
};
interface FullTapLike {
  name: string;
  type: 'sync' | 'async' | 'promise';
  fn: TapFn;
}

/** Every timed tap call's deadline, on one timer. */
const deadlines = new DeadlineQueue();

/** Tap failures already given to the `error` hook (by report() below). */
const reported = new WeakSet<object>();

/**
 * True for a tap failure (PluginError, HookTimeoutError) that was already given to the
 * `error` hook, with its plugin and hook, when it happened. A caller that reports what it
 * catches skips these, so each failure is reported once.
 */
export function alreadyReported(e: unknown): boolean {
  return typeof e === 'object' && e !== null && reported.has(e);
}

const UNTIMED = new WeakSet<object>();

/**
 * @internal For the relay's own taps that wait only on other hooks: core:digest waits on
 * lookupCredentials, whose taps have deadlines and signals of their own. With a deadline of
 * its own (set a moment earlier), a credential store that does not answer would time out
 * under core:digest's name instead of its own. The failure rule still applies.
 */
export function withoutTimeout<F extends AnyFn>(fn: F): F {
  UNTIMED.add(fn);
  return fn;
}

// ---------------------------------------------------------------- a tap call's signal

interface HasSignal {
  readonly signal: AbortSignal;
}

/**
 * One timed tap call: its deadline, and the signal the tap sees, made only when the tap
 * reads it (an AbortController and a listener cost microseconds, and most taps never read
 * `signal`). While the tap runs, that signal follows the context's own (the connection
 * closing) and is aborted with the HookTimeoutError at the deadline. Once the tap has
 * answered it is left as it is: no listener stays on a connection's signal for every
 * request that connection carried.
 */
class TapCall {
  deadline: Deadline | undefined = undefined;
  /** Answered, or timed out: nothing of this call is awaited any more. */
  done = false;
  private timedOut: HookTimeoutError | undefined = undefined;
  private controller: AbortController | undefined = undefined;
  /** The context's signal, listened to from the first read of the tap's signal until the call is done. */
  private following: AbortSignal | undefined = undefined;

  constructor(
    readonly plugin: string,
    readonly hook: HookName,
    readonly timeoutMs: number,
    /** The context the tap's view stands for (none for hooks whose argument has no signal). */
    private readonly source: HasSignal | undefined,
  ) {}

  signal(): AbortSignal {
    let c = this.controller;
    if (c !== undefined) return c.signal;
    c = this.controller = new AbortController();
    if (this.timedOut !== undefined) {
      c.abort(this.timedOut);
    } else if (this.source !== undefined) {
      const outer = this.source.signal;
      if (outer.aborted) c.abort(outer.reason);
      else if (!this.done) {
        this.following = outer;
        outer.addEventListener('abort', this);
      }
    }
    return c.signal;
  }

  /** The context's signal aborted while the tap ran (a listener object: no closure per call). */
  handleEvent(): void {
    const outer = this.following;
    this.following = undefined;
    if (outer !== undefined) this.controller!.abort(outer.reason);
  }

  /** The tap answered in time. */
  settle(): void {
    this.done = true;
    if (this.deadline !== undefined) deadlines.settle(this.deadline);
    this.unfollow();
  }

  /** The deadline passed (the queue has marked it done). */
  expire(): HookTimeoutError {
    this.done = true;
    const e = new HookTimeoutError(this.plugin, this.hook, this.timeoutMs);
    this.timedOut = e;
    this.unfollow();
    this.controller?.abort(e);
    return e;
  }

  private unfollow(): void {
    const outer = this.following;
    if (outer === undefined) return;
    this.following = undefined;
    outer.removeEventListener('abort', this);
  }
}

/**
 * What a timed tap receives in place of the relay's context: the same fields, holding the
 * relay's own objects (so `ctx.connection.notes`, `ctx.request` and `ctx.session` are the ones
 * every other hook sees), and a `signal` of its own call. One small object per tap call,
 * with the fields copied, not looked up through a prototype: making each context a
 * prototype costs V8 some microseconds per context, copying a few fields costs nothing.
 * The view itself is not the context object: key per-request state by `ctx.request` or
 * `ctx.connection`, never by the context.
 */
abstract class TapView {
  readonly #call: TapCall;
  constructor(call: TapCall) {
    this.#call = call;
  }
  get signal(): AbortSignal {
    return this.#call.signal();
  }
}

class RequestView extends TapView implements RequestContext {
  readonly connection: ConnectionContext;
  readonly request: MsrpRequestHead;
  constructor(c: RequestContext, call: TapCall) {
    super(call);
    this.connection = c.connection;
    this.request = c.request;
  }
}

class DomainView extends TapView implements DomainQuery {
  readonly connection: ConnectionContext;
  readonly request: MsrpRequestHead;
  readonly host: string;
  constructor(c: DomainQuery, call: TapCall) {
    super(call);
    this.connection = c.connection;
    this.request = c.request;
    this.host = c.host;
  }
}

class AuthView extends TapView implements AuthRequest {
  readonly connection: ConnectionContext;
  readonly request: MsrpRequestHead;
  readonly domain: string;
  readonly realm: string;
  readonly digestUri: string;
  readonly authorization: string | undefined;
  constructor(c: AuthRequest, call: TapCall) {
    super(call);
    this.connection = c.connection;
    this.request = c.request;
    this.domain = c.domain;
    this.realm = c.realm;
    this.digestUri = c.digestUri;
    this.authorization = c.authorization;
  }
}

class AccountView extends TapView implements AccountQuery {
  readonly front: string;
  readonly connection: ConnectionContext;
  constructor(c: AccountQuery, call: TapCall) {
    super(call);
    this.front = c.front;
    this.connection = c.connection;
  }
}

class CredentialView extends TapView implements CredentialQuery {
  readonly username: string;
  readonly realm: string;
  readonly domain: string;
  readonly connection: ConnectionContext;
  constructor(c: CredentialQuery, call: TapCall) {
    super(call);
    this.username = c.username;
    this.realm = c.realm;
    this.domain = c.domain;
    this.connection = c.connection;
  }
}

class BindView extends TapView implements BindRequest {
  readonly session: SessionInfo;
  readonly connection: ConnectionContext | undefined;
  readonly request: MsrpRequestHead;
  constructor(c: BindRequest, call: TapCall) {
    super(call);
    this.session = c.session;
    this.connection = c.connection;
    this.request = c.request;
  }
}

class NextHopView extends TapView implements NextHopQuery {
  readonly uri: MsrpUri;
  readonly session: SessionInfo;
  readonly request: MsrpRequestHead;
  constructor(c: NextHopQuery, call: TapCall) {
    super(call);
    this.uri = c.uri;
    this.session = c.session;
    this.request = c.request;
  }
}

class ChunkView extends TapView implements ChunkContext {
  readonly connection: ConnectionContext;
  readonly session: SessionInfo;
  readonly request: MsrpRequestHead;
  readonly direction: ForwardDirection;
  /** Present only when the context has it, as in the relay's own. */
  declare readonly from?: SessionInfo;
  constructor(c: ChunkContext, call: TapCall) {
    super(call);
    this.connection = c.connection;
    this.session = c.session;
    this.request = c.request;
    this.direction = c.direction;
    if (c.from !== undefined) (this as { from?: SessionInfo }).from = c.from;
  }
}

class LocalRequestView extends TapView implements LocalRequest {
  readonly connection: ConnectionContext;
  readonly request: MsrpRequestHead;
  readonly uri: MsrpUri;
  readonly session: SessionInfo | undefined;
  readonly toPath: readonly string[];
  readonly fromPath: readonly string[];
  readonly reply: PathPair;
  constructor(c: LocalRequest, call: TapCall) {
    super(call);
    this.connection = c.connection;
    this.request = c.request;
    this.uri = c.uri;
    this.session = c.session;
    this.toPath = c.toPath;
    this.fromPath = c.fromPath;
    this.reply = c.reply;
  }
}

/** A field added to a context in types.ts fails to compile here until its view copies it. */
type Copies<V, C> = Exclude<keyof C, 'signal'> extends keyof V ? true : false;
type Assert<T extends true> = T;
type ViewsCopyEveryField = [
  Assert<Copies<RequestView, RequestContext>>,
  Assert<Copies<DomainView, DomainQuery>>,
  Assert<Copies<AuthView, AuthRequest>>,
  Assert<Copies<CredentialView, CredentialQuery>>,
  Assert<Copies<AccountView, AccountQuery>>,
  Assert<Copies<BindView, BindRequest>>,
  Assert<Copies<NextHopView, NextHopQuery>>,
  Assert<Copies<ChunkView, ChunkContext>>,
  Assert<Copies<LocalRequestView, LocalRequest>>,
];

// ---------------------------------------------------------------- what each hook is

interface HookSpec {
  /**
   * lifecycle and decision hooks are async (promise taps, timed); waterfall (rewritePath) and
   * notifications are sync.
   */
  readonly kind: 'lifecycle' | 'decision' | 'waterfall' | 'notification';
  /** Decisions: the argument that carries `signal`, replaced per tap call by its view. */
  readonly signalAt?: number;
  readonly view?: new (ctx: never, call: TapCall) => TapView;
  /** Decisions whose result may be a Rejection: a thrown or rejected MsrpError is the tap's `{ reject }`. */
  readonly rejects?: boolean;
  /** beforeClose, closed: a failing tap is reported and the hook goes on to its next tap. */
  readonly goesOn?: boolean;
  /** The connection a failure concerns (ErrorContext.connection); only called when one happens. */
  readonly connection?: (args: Args) => ConnectionContext | undefined;
}

const connectionOf = (x: unknown): ConnectionContext | undefined => (x as { connection?: ConnectionContext } | undefined)?.connection;
const first = (a: Args): ConnectionContext | undefined => connectionOf(a[0]);
const second = (a: Args): ConnectionContext | undefined => connectionOf(a[1]);

/**
 * Per hook: its kind, which argument carries `signal`, what a thrown MsrpError means.
 * acceptConnection's argument is the connection itself (plugins key state by it, and call
 * its methods), so its taps see `connection.signal`: a timeout rejects the connection,
 * which aborts that signal. Lifecycle taps get the relay, which has no signal.
 */
const SPECS: { readonly [K in HookName]: HookSpec } = {
  beforeListen: { kind: 'lifecycle' },
  beforeClose: { kind: 'lifecycle', goesOn: true },
  closed: { kind: 'lifecycle', goesOn: true },
  acceptConnection: { kind: 'decision', rejects: true, connection: (a) => a[0] as ConnectionContext },
  connectionClosed: { kind: 'notification', connection: (a) => a[0] as ConnectionContext },
  requestReceived: { kind: 'notification', connection: first },
  receiveRequest: { kind: 'decision', signalAt: 0, view: RequestView, rejects: true, connection: first },
  claimRequest: { kind: 'decision', signalAt: 0, view: LocalRequestView, rejects: true, connection: first },
  resolveDomain: { kind: 'decision', signalAt: 0, view: DomainView, rejects: true, connection: first },
  authenticate: { kind: 'decision', signalAt: 0, view: AuthView, rejects: true, connection: first },
  // Credentials have no rejection: a thrown MsrpError goes to the caller (core:digest), whose answer it becomes.
  lookupCredentials: { kind: 'decision', signalAt: 0, view: CredentialView, connection: first },
  checkAccount: { kind: 'decision', signalAt: 1, view: AccountView, rejects: true, connection: second },
  authorize: { kind: 'decision', signalAt: 1, view: AuthView, rejects: true, connection: second },
  authenticated: { kind: 'notification', connection: second },
  authFailed: { kind: 'notification', connection: first },
  bindSession: { kind: 'decision', signalAt: 0, view: BindView, rejects: true, connection: first },
  sessionClosed: { kind: 'notification', connection: (a) => (a[0] as SessionInfo | undefined)?.owner },
  resolveNextHop: { kind: 'decision', signalAt: 0, view: NextHopView, rejects: true, connection: (a) => (a[0] as NextHopQuery | undefined)?.session?.owner },
  rewritePath: { kind: 'waterfall', connection: second },
  forwardChunk: { kind: 'decision', signalAt: 0, view: ChunkView, rejects: true, connection: first },
  bodyForwarded: { kind: 'notification', connection: first },
  chunkForwarded: { kind: 'notification' },
  responseSent: { kind: 'notification', connection: first },
  error: { kind: 'notification' },
};

/** One registered tap, as its wrapper needs it. */
interface TapInfo {
  readonly plugin: string;
  readonly hook: HookName;
  readonly spec: HookSpec;
  readonly timed: boolean;
  readonly timeoutMs: () => number;
  readonly report: (err: Error, ctx: ErrorContext) => void;
}

/** Creates the frozen hooks object with timeouts, signals and the failure rule installed. */
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
    checkAccount: new AsyncSeriesBailHook<[Identity, AccountQuery], Rejection | undefined>(['identity', 'query'], 'checkAccount'),
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

  const report = (err: Error, ctx: ErrorContext): void => {
    reported.add(err);
    try {
      hooks.error.call(err, ctx);
    } catch {
      // An error tap that throws has nowhere left to report to.
    }
  };

  for (const name of HOOK_ORDER) {
    const spec = SPECS[name];
    const hook = hooks[name] as unknown as AnyHook;
    hook.intercept({
      register(tap) {
        const fn = tap.fn;
        const t: TapInfo = { plugin: tap.name, hook: name, spec, timed: !UNTIMED.has(fn), timeoutMs: options.tapTimeoutMs, report };
        switch (spec.kind) {
          case 'lifecycle':
          case 'decision':
            if (tap.type !== 'promise') throw new Error(`plugin "${tap.name}": ${name} takes promise taps only (use tapPromise)`);
            tap.fn = (...args: unknown[]) => runTap(fn, args, t);
            break;
          case 'waterfall':
            tap.fn = (...args: unknown[]) => runWaterfallTap(fn, args, t);
            break;
          case 'notification':
            tap.fn = (...args: unknown[]) => runNotificationTap(fn, args, t);
            break;
        }
        return tap;
      },
    });
  }
  return Object.freeze(hooks);
}

/** An async tap call: its view and deadline, then the failure rule on whatever it does. */
function runTap(fn: TapFn, args: unknown[], t: TapInfo): Promise<unknown> {
  const spec = t.spec;
  let call: TapCall | undefined;
  if (t.timed) {
    const at = spec.signalAt;
    if (at !== undefined) {
      const ctx = args[at] as HasSignal;
      call = new TapCall(t.plugin, t.hook, t.timeoutMs(), ctx);
      // `args` is this call's own rest array.
      args[at] = new spec.view!(ctx as never, call);
    } else {
      call = new TapCall(t.plugin, t.hook, t.timeoutMs(), undefined);
    }
  }
  let result: unknown;
  try {
    result = fn(...args);
  } catch (e) {
    call?.settle();
    return settled(() => failure(e, args, t));
  }
  if (!isThenable(result)) {
    call?.settle();
    return settled(() => answer(result, args, t));
  }
  const pending = result;
  if (call === undefined) {
    return Promise.resolve(pending).then(
      (v) => answer(v, args, t),
      (e: unknown) => failure(e, args, t),
    );
  }
  const c = call;
  return new Promise((resolve, reject) => {
    c.deadline = deadlines.add(Date.now() + c.timeoutMs, () => {
      // The tap's signal first (its I/O stops), then the report, then the caller's answer.
      const err = c.expire();
      t.report(err, errorContext(t, args));
      if (spec.goesOn === true) resolve(undefined);
      else reject(err);
    });
    pending.then(
      (v) => {
        // A late answer is ignored: the caller has had the timeout.
        if (c.done) return;
        c.settle();
        try {
          resolve(answer(v, args, t));
        } catch (e) {
          reject(e);
        }
      },
      (e: unknown) => {
        if (c.done) return;
        c.settle();
        try {
          resolve(failure(e, args, t));
        } catch (f) {
          reject(f);
        }
      },
    );
  });
}

function settled(outcome: () => unknown): Promise<unknown> {
  try {
    return Promise.resolve(outcome());
  } catch (e) {
    return Promise.reject(e);
  }
}

/** What an answered tap gives its hook: null passes as undefined (STYLE.md), and a `{ reject }` must hold an MsrpError. */
function answer(v: unknown, args: unknown[], t: TapInfo): unknown {
  if (v === undefined || v === null) return undefined;
  if (t.spec.rejects === true && typeof v === 'object' && 'reject' in v && !isMsrpError((v as { reject: unknown }).reject)) {
    return failure(new TypeError('it returned { reject } without an MsrpError'), args, t);
  }
  return v;
}

/**
 * The one rule, for a tap that threw or rejected: what its hook goes on with (returned),
 * or fails with (thrown). An MsrpError is an answer; anything else is reported as a
 * PluginError of this plugin and fails the hook (beforeClose and closed go on).
 */
function failure(e: unknown, args: unknown[], t: TapInfo): unknown {
  const spec = t.spec;
  if (isMsrpError(e)) {
    if (spec.rejects === true) return { reject: e } satisfies { reject: MsrpError };
    // lookupCredentials: to the caller, whose answer it becomes (core:digest → authenticate).
    if (spec.kind === 'decision') throw e;
    // A lifecycle hook has no status to answer with: a failure like any other.
  } else if (alreadyReported(e)) {
    // The failure of a hook this tap called, reported under its own plugin: passed on as it is.
    if (spec.goesOn === true) return undefined;
    throw e;
  }
  const err = new PluginError(t.plugin, t.hook, e);
  t.report(err, errorContext(t, args));
  if (spec.goesOn === true) return undefined;
  throw err;
}

/** rewritePath: synchronous, so no deadline and no signal; the same rule for what it throws. */
function runWaterfallTap(fn: TapFn, args: unknown[], t: TapInfo): unknown {
  let r: unknown;
  try {
    r = fn(...args);
  } catch (e) {
    if (isMsrpError(e) || alreadyReported(e)) throw e;
    const err = new PluginError(t.plugin, t.hook, e);
    t.report(err, errorContext(t, args));
    throw err;
  }
  if (r === null || r === undefined) return undefined;
  if (isThenable(r)) {
    r.then(undefined, () => {});
    const err = new PluginError(t.plugin, t.hook, new TypeError(`it returned a promise: ${t.hook} is synchronous`));
    t.report(err, errorContext(t, args));
    throw err;
  }
  return r;
}

/** Notifications never block or break the relay: a throw, or a returned promise that rejects, is reported. */
function runNotificationTap(fn: TapFn, args: unknown[], t: TapInfo): void {
  try {
    const r = fn(...args);
    if (r !== undefined && isThenable(r)) r.then(undefined, (e: unknown) => notificationFailed(e, args, t));
  } catch (e) {
    notificationFailed(e, args, t);
  }
}

function notificationFailed(e: unknown, args: unknown[], t: TapInfo): void {
  // An error tap that fails has nowhere left to report to.
  if (t.hook === 'error' || alreadyReported(e)) return;
  t.report(new PluginError(t.plugin, t.hook, e), errorContext(t, args));
}

function errorContext(t: TapInfo, args: Args): ErrorContext {
  const connection = t.spec.connection?.(args);
  return connection !== undefined ? { plugin: t.plugin, hook: t.hook, connection } : { plugin: t.plugin, hook: t.hook };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v instanceof Promise || (typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function');
}

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

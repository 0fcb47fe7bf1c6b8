/**
 * The router: what happens to each frame a connection reads.
 *
 *   request head ─▶ validate (R-17…R-29) ─▶ receiveRequest ─▶ AUTH? ─▶ token check
 *     ─▶ direction and binding (R-57a) ─▶ next hop (local hand-over, bound leg, or dial)
 *     ─▶ rewritePath ─▶ forwardChunk ─▶ stream the body to the next hop's Writer
 *   end-line ─▶ hop-by-hop 200 ─▶ transaction timer on the next hop
 *   response ─▶ transaction ─▶ absorbed 200 (R-84) / REPORT (R-63) / end-to-end mapping
 *
 * Decisions that need no plugin and no dialling are taken synchronously, so an
 * empty relay forwards a chunk without a single promise (DESIGN.md §3: untapped hooks are skipped).
 */

import { DeadlineQueue } from '../deadlines.ts';
import { MsrpError, isMsrpError, type MsrpErrorCode } from '../errors.ts';
import { alreadyReported, isTapped, type RelayHooks } from '../hooks.ts';
import type { EndFlag, FrameHead, FramerError, RawHeader } from '../protocol/framer.ts';
import {
  formatByteRange,
  formatRequest,
  formatResponse,
  formatStatusHeader,
  getHeader,
  lowerName,
  MessageError,
  nameIs,
  newTransactionId,
  parseRequestHead,
  parseResponseHead,
  type MsrpRequestHead,
  type MsrpResponseHead,
} from '../protocol/message.ts';
import { tryParseUri, uriEquals, type MsrpUri } from '../protocol/uri.ts';
import { statusComment } from '../protocol/status.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../plugin.ts';
import type { ChunkContext, CloseReason, ErrorContext, ForwardDirection, ListenerInfo, NextHop, PathPair } from '../types.ts';
import type { Connection, ConnectionHandler, Transaction } from './connection.ts';
import { Authenticator } from './authenticator.ts';
import { maskId, type Session, type SessionTable } from './session-table.ts';
import { OutStream, type OutStreamEvents } from './writer.ts';

/** SEND chunks with more body octets than this are interruptible (range-end `*`). */
const INTERRUPTIBLE_OVER = 2048;
/** bodies of requests other than SEND. */
const MAX_NON_SEND_BODY = 10240;
/** failed requests tolerated before the first success. */
const MAX_PROBATION_FAILURES = 5;
/** The default MSRP relay port (RFC 4976 §8; I-3). */
export const DEFAULT_RELAY_PORT = 2855;
const KNOWN_METHODS = new Set(['SEND', 'REPORT', 'AUTH', 'NICKNAME']);

export interface RouterDeps {
  config(): RelayConfig;
  hooks(): RelayHooks<unknown>;
  sessions: SessionTable<Connection>;
  hostname(): string;
  listeners(): readonly ListenerInfo[];
  log(): Logger;
  /** Opens the next leg (the relay wraps the socket into an outbound Connection). */
  dial(hop: NextHop, session: Session<Connection>): Promise<Connection>;
  /** A connection is gone (the relay drops it from its registry). */
  connectionGone(conn: Connection, reason: CloseReason): void;
  /** Cluster mode (DESIGN.md §7): session-ids that name this worker. */
  newSessionId?(): string;
  /** Cluster mode: the worker that owns a session-id of this relay, when it is another one. */
  otherWorker?(sessionId: string): number | undefined;
  /** Cluster mode: an outbound leg to another worker of this relay. */
  dialWorker?(index: number, session: Session<Connection>): Promise<Connection>;
}

/** What the router decided for one request. */
type Decision =
  | { kind: 'respond'; status: number; comment?: string; headers?: RawHeader[]; close?: boolean; reason: string }
  | { kind: 'silent'; reason: string }
  | { kind: 'close'; reason: string }
  | {
      kind: 'forward';
      target: Connection;
      session: Session<Connection>;
      direction: ForwardDirection;
      paths: PathPair;
      /** The relay URI the request consumed at its first hop here (REPORT From-Path, R-78). */
      reportFrom: string;
      /** For a hand-over between two sessions of this relay: the sending session. */
      from?: Session<Connection>;
    };

/** Router state for the request being read on a connection. */
interface Inbound {
  readonly req: MsrpRequestHead | undefined;
  mode: 'pending' | 'forward' | 'discard' | 'response';
  bodyBytes: number;
  stream?: OutStream;
  target?: Connection;
  session?: Session<Connection>;
  from?: Session<Connection>;
  direction?: ForwardDirection;
  /** The context bodyForwarded taps get, made at the first slice and only when tapped. */
  chunk?: ChunkContext;
  /** Sent when the end-line is read (the 200 of R-56, or an error known earlier). */
  respondAtEnd?: Buffer;
  /** The target dropped the stream: answer this status at the end. */
  failedStatus?: number;
  startedAt: number;
}

/** The next hop could not be reached (not a plugin's fault). */
class DialError extends Error {}

/** A dial whose failure is a DialError. */
function dialing(p: Promise<Connection>): Promise<Connection> {
  return p.catch((e: unknown) => {
    throw new DialError(e instanceof Error ? e.message : String(e));
  });
}

const FORWARD = 'forward';
const DECIDE = 'decide';
const OUTSTANDING = 'outstanding';

export class Router implements ConnectionHandler {
  private readonly d: RouterDeps;
  /** every transaction's 30 s, on one timer (see core/deadlines.ts). */
  private readonly deadlines = new DeadlineQueue({ unref: true });
  readonly authenticator: Authenticator;

  constructor(deps: RouterDeps) {
    this.d = deps;
    this.authenticator = new Authenticator({
      config: deps.config,
      hooks: deps.hooks,
      sessions: deps.sessions,
      hostname: deps.hostname,
      listeners: deps.listeners,
      defaultPort: DEFAULT_RELAY_PORT,
      now: () => Date.now(),
      ...(deps.newSessionId !== undefined ? { newSessionId: deps.newSessionId } : {}),
    });
  }

  // ================================================================== frames in

  onHead(conn: Connection, head: FrameHead): void {
    if (head.kind === 'response') {
      conn.inbound = { req: undefined, mode: 'response', bodyBytes: 0, startedAt: 0 } satisfies Inbound;
      this.onResponse(conn, head);
      return;
    }
    const cfg = this.d.config();
    let req: MsrpRequestHead;
    try {
      req = parseRequestHead(head, { maxPathUris: cfg.limits.maxPathUris });
    } catch (e) {
      if (!(e instanceof MessageError)) throw e;
      this.refuseMalformed(conn, head, e);
      return;
    }
    const inbound: Inbound = { req, mode: 'pending', bodyBytes: 0, startedAt: Date.now() };
    conn.inbound = inbound;
    const observers = this.d.hooks();
    if (isTapped(observers.requestReceived)) {
      observers.requestReceived.call({
        connection: conn,
        request: req,
        get signal() {
          return conn.signal;
        },
      });
    }
    let decision: Decision | Promise<Decision>;
    try {
      decision = this.decide(conn, req);
    } catch (e) {
      decision = this.internalError(conn, e, 'routing');
    }
    if (decision instanceof Promise) {
      conn.pauseReading(DECIDE);
      decision
        .catch((e: unknown) => this.internalError(conn, e, 'routing'))
        .then((d) => {
          if (conn.isClosed) return;
          this.apply(conn, inbound, d);
          conn.resumeReading(DECIDE);
        })
        .catch((e: unknown) => this.report(e, { connection: conn }));
    } else {
      this.apply(conn, inbound, decision);
    }
  }

  onBody(conn: Connection, data: Buffer): void {
    const inb = conn.inbound as Inbound | undefined;
    if (inb === undefined || inb.req === undefined) return;
    inb.bodyBytes += data.length;
    const req = inb.req;
    if (req.method !== 'SEND') {
      // bodies of other requests are small; past 10240 octets: 400 and close.
      if (inb.bodyBytes > MAX_NON_SEND_BODY) {
        if (inb.stream !== undefined && inb.target !== undefined) inb.target.writer.abort(inb.stream);
        inb.stream = undefined;
        inb.mode = 'discard';
        this.sendResponse(conn, req, 400);
        conn.close({ code: 'protocol-error', message: 'non-SEND body over 10240 octets (R-29)' });
        return;
      }
    }
    if (inb.mode !== FORWARD) return;
    const cfg = this.d.config();
    // the message grows past the size limit: stop it here.
    if (req.method === 'SEND' && (req.byteRange?.start ?? 1) - 1 + inb.bodyBytes > cfg.limits.maxMessageSize) {
      inb.target!.writer.abort(inb.stream!);
      inb.stream = undefined;
      inb.mode = 'discard';
      if (req.messageId !== undefined) inb.session?.refuseMessage(req.messageId);
      this.sendResponse(conn, req, 413);
      return;
    }
    if (!inb.target!.writer.body(inb.stream!, data)) conn.pauseReading(FORWARD);
    const hooks = this.d.hooks();
    if (isTapped(hooks.bodyForwarded)) {
      inb.chunk ??= { connection: conn, session: inb.session!, request: req, direction: inb.direction!, signal: conn.signal, ...(inb.from !== undefined ? { from: inb.from } : {}) };
      hooks.bodyForwarded.call(inb.chunk, data.length);
    }
  }

  onEnd(conn: Connection, flag: EndFlag): void {
    const inb = conn.inbound as Inbound | undefined;
    conn.inbound = undefined;
    if (inb === undefined || inb.req === undefined) return;
    const req = inb.req;
    if (inb.mode === FORWARD) {
      inb.target!.writer.end(inb.stream!, flag);
      const s = inb.session!;
      if (inb.direction === 'outward') {
        s.stats.bytesOut += inb.bodyBytes;
        if (flag === '$') s.stats.messagesOut++;
      } else {
        s.stats.bytesIn += inb.bodyBytes;
        if (flag === '$') s.stats.messagesIn++;
        if (inb.from !== undefined) {
          inb.from.stats.bytesOut += inb.bodyBytes;
          if (flag === '$') inb.from.stats.messagesOut++;
        }
      }
      // the hop-by-hop 200 once the chunk is in (Failure-Report yes only, R-64/R-65).
      if (req.method === 'SEND' && req.failureReport === 'yes') this.sendResponse(conn, req, 200);
      return;
    }
    if (inb.failedStatus !== undefined) {
      if (req.method !== 'REPORT' && req.failureReport !== 'no') this.sendResponse(conn, req, inb.failedStatus);
      return;
    }
    if (inb.respondAtEnd !== undefined) conn.sendFrame(inb.respondAtEnd);
  }

  onFramingError(conn: Connection, err: FramerError): void {
    // a limit crossed: 400 when the paths were read, then close in any case.
    if (err.tid !== undefined && err.messageKind === 'request') {
      const to = err.headers[0];
      const from = err.headers[1];
      if (to !== undefined && from !== undefined && nameIs(to[0], 'to-path') && nameIs(from[0], 'from-path')) {
        const toUri = to[1].split(/[ \t]+/)[0];
        const fromUri = from[1].split(/[ \t]+/)[0];
        if (toUri && fromUri && tryParseUri(toUri) !== undefined && tryParseUri(fromUri) !== undefined && /^[A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}$/.test(err.tid)) {
          conn.sendFrame(formatResponse({ tid: err.tid, status: 400, comment: err.message, toPath: [fromUri], fromPath: [toUri] }));
        }
      }
    }
    conn.close({ code: 'protocol-error', message: err.message });
  }

  onClose(conn: Connection, reason: CloseReason): void {
    const inb = conn.inbound as Inbound | undefined;
    conn.inbound = undefined;
    // The sender vanished mid-chunk: end what went out with `#`.
    if (inb?.stream !== undefined && inb.target !== undefined) inb.target.writer.abort(inb.stream);
    // Streams being written here from other connections: their senders learn at their end-line.
    for (const s of conn.writer.close()) s.events.onDropped?.();
    const { pending, sessions, farSessions } = conn.closeState;
    // requests forwarded here that were never answered: REPORT 408 to their senders.
    if (pending !== undefined) {
      for (const t of pending.values()) this.failTransaction(t, 408, 'next hop closed', true);
      pending.clear();
    }
    // every URI issued over this connection is invalidated.
    if (sessions !== undefined) for (const s of [...sessions]) this.d.sessions.remove(s, { code: 'owner-closed', message: reason.message ?? reason.code });
    if (farSessions !== undefined) for (const s of [...farSessions]) this.unbindFar(s, conn);
    this.d.connectionGone(conn, reason);
  }

  /** Session end (from the table): release its legs. */
  sessionClosed(s: Session<Connection>): void {
    s.owner.sessions.delete(s);
    const far = s.farLeg;
    s.farLeg = undefined;
    if (far?.kind === 'connection') far.connection.farSessions.delete(s);
    else if (far?.kind === 'local' && far.session.farLeg?.kind === 'local' && far.session.farLeg.session === s) {
      far.session.farLeg = undefined;
      this.d.sessions.armExpiry(far.session);
    }
    const out = s.outbound;
    s.outbound = undefined;
    if (out !== undefined) {
      out.farSessions.delete(s);
      // The outbound leg was opened for this session alone (unless shared): close it.
      if (!this.d.config().shareOutboundConnections && out.farSessions.size === 0) out.close({ code: 'owner-closed' });
    }
  }

  private unbindFar(s: Session<Connection>, conn: Connection): void {
    if (s.farLeg?.kind === 'connection' && s.farLeg.connection === conn) s.farLeg = undefined;
    if (s.outbound === conn) s.outbound = undefined;
    conn.farSessions.delete(s);
  }

  // ================================================================== decisions

  private decide(conn: Connection, req: MsrpRequestHead): Decision | Promise<Decision> {
    const hooks = this.d.hooks();
    if (isTapped(hooks.receiveRequest)) {
      return hooks.receiveRequest.promise({ connection: conn, request: req, signal: conn.signal }).then((r) => {
        if (r !== undefined) return this.rejection(r.reject);
        return this.route(conn, req);
      });
    }
    return this.route(conn, req);
  }

  private route(conn: Connection, req: MsrpRequestHead): Decision | Promise<Decision> {
    const first = req.toUris[0]!;
    // AUTH to this relay: To-Path holds only the relay.
    if (req.method === 'AUTH' && req.toUris.length === 1) {
      if (!this.authenticator.portMatches(first.port, conn)) return { kind: 'close', reason: 'AUTH To-Path port is not this relay (R-53)' };
      return this.authenticator.authenticate(conn, req).then((o) => ({
        kind: 'respond',
        status: o.status,
        headers: o.headers,
        close: o.close,
        reason: o.reason,
      }));
    }
    const session = this.ownSession(first);
    if (session === undefined) {
      if (!this.isOwnHost(first)) {
        // the first URI is not this relay at all: drop the connection.
        return { kind: 'close', reason: 'To-Path does not name this relay (R-53)' };
      }
      if (req.toUris.length === 1 && first.sessionId === undefined && !KNOWN_METHODS.has(req.method)) {
        return this.fail('MSRP_ERR_METHOD_NOT_UNDERSTOOD', 'unknown method addressed to the relay (R-75)');
      }
      // unknown, expired or invalidated token.
      return this.fail('MSRP_ERR_SESSION_NOT_FOUND', `no session ${first.sessionId === undefined ? '(none given)' : maskId(first.sessionId)}`);
    }
    if (req.toUris.length === 1) {
      // The relay itself is the target of a session URI: it is not an endpoint.
      if (!KNOWN_METHODS.has(req.method)) return this.fail('MSRP_ERR_METHOD_NOT_UNDERSTOOD', 'unknown method addressed to the relay (R-75)');
      return this.fail('MSRP_ERR_FORBIDDEN', 'the relay is not a message endpoint');
    }
    const cfg = this.d.config();
    if (!cfg.forwardUnknownMethods && !KNOWN_METHODS.has(req.method)) {
      // blocking unknown methods is configured.
      return this.fail('MSRP_ERR_METHOD_NOT_UNDERSTOOD', `method ${req.method} is blocked (R-74)`);
    }
    // a message known to be too large, or already refused.
    if (req.method === 'SEND' && req.messageId !== undefined) {
      if (session.refusedMessages.has(req.messageId)) return this.fail('MSRP_ERR_MESSAGE_TOO_LARGE', 'message was refused earlier (R-72)');
      const total = req.byteRange?.total ?? -1;
      if (total > cfg.limits.maxMessageSize) {
        session.refuseMessage(req.messageId);
        return this.fail('MSRP_ERR_MESSAGE_TOO_LARGE', 'message larger than the relay allows (R-72)');
      }
    }
    if (conn === session.owner) return this.routeOutward(conn, req, session);
    return this.routeInward(conn, req, session, { kind: 'connection', connection: conn, hopUri: req.fromUris[0] });
  }

  /** R-51 a: from the owning client to whatever the next URI names. */
  private routeOutward(conn: Connection, req: MsrpRequestHead, session: Session<Connection>): Decision | Promise<Decision> {
    const next = req.toUris[1]!;
    const reportFrom = req.toPath[0]!;
    const peer = this.ownSession(next);
    if (peer !== undefined) {
      // Both clients use this relay: hand the request over inside the process, as if it had
      // looped (RFC 7977 §8.3.2); both URIs end up in From-Path.
      if (req.toUris.length < 3) return this.fail('MSRP_ERR_FORBIDDEN', 'the relay is not a message endpoint');
      const inner = {
        ...req,
        toPath: req.toPath.slice(1),
        toUris: req.toUris.slice(1),
        fromPath: [req.toPath[0]!, ...req.fromPath],
      } satisfies MsrpRequestHead;
      const d = this.routeInward(conn, inner, peer, { kind: 'local', session }, reportFrom, session);
      // The sender's session is bound too once a hand-over succeeds (I-4: it no longer expires).
      const bindSender = (x: Decision): Decision => {
        if (x.kind === 'forward' && session.farLeg === undefined && !session.closed) {
          session.farLeg = { kind: 'local', session: peer };
          this.d.sessions.armExpiry(session);
        }
        return x;
      };
      return d instanceof Promise ? d.then(bindSender) : bindSender(d);
    }
    let worker: number | undefined;
    if (this.isOwnHost(next) && next.sessionId !== undefined) {
      // Cluster mode: a token of another worker is a hop to that worker (DESIGN.md §7).
      worker = this.d.otherWorker?.(next.sessionId);
      if (worker === undefined) return this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'the next hop is an unknown session of this relay');
    }
    // W-7, R-16: a `;ws` or `.invalid` URI is reached only over its bound connection.
    const unreachable = next.transport === 'ws' || next.host.toLowerCase().endsWith('.invalid');
    const paths: PathPair = { toPath: req.toPath.slice(1), fromPath: [req.toPath[0]!, ...req.fromPath] };
    const target = this.outwardConnection(session, next);
    if (target !== undefined) return this.finishForward(conn, req, session, 'outward', target, paths, reportFrom);
    if (unreachable) return this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'the next hop cannot be dialled and is not connected (W-7)');
    return this.openOutward(session, req, next, worker).then((t) =>
      'kind' in t ? t : this.finishForward(conn, req, session, 'outward', t, paths, reportFrom),
    );
  }

  /** R-51 b: toward the owning client, only over its own connection. */
  private routeInward(
    conn: Connection,
    req: MsrpRequestHead,
    session: Session<Connection>,
    leg: NonNullable<Session<Connection>['farLeg']>,
    reportFrom: string = req.toPath[0]!,
    from?: Session<Connection>,
  ): Decision | Promise<Decision> {
    const next = req.toUris[1]!;
    if (!this.hopMatches(next, session.ownerHopUri)) {
      return this.fail('MSRP_ERR_WRONG_DIRECTION', 'the session does not route that way (R-51)');
    }
    const paths: PathPair = { toPath: req.toPath.slice(1), fromPath: [req.toPath[0]!, ...req.fromPath] };
    const bound = session.farLeg;
    if (bound === undefined) {
      const hooks = this.d.hooks();
      const bind = () => {
        if (session.closed) return this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'session closed');
        if (session.farLeg !== undefined && !this.sameLeg(session.farLeg, leg)) return this.fail('MSRP_ERR_SESSION_ALREADY_BOUND', 'session bound to another connection (R-57a)');
        session.farLeg = leg;
        if (leg.kind === 'connection') leg.connection.farSessions.add(session);
        this.d.sessions.armExpiry(session);
        return this.finishForward(conn, req, session, 'inward', session.owner, paths, reportFrom, from);
      };
      if (isTapped(hooks.bindSession)) {
        return hooks.bindSession
          .promise({ session, connection: leg.kind === 'connection' ? leg.connection : undefined, request: req, signal: conn.signal })
          .then((r) => (r !== undefined ? this.rejection(r.reject) : bind()));
      }
      return bind();
    }
    if (!this.sameLeg(bound, leg) && !(leg.kind === 'connection' && session.outbound === leg.connection)) {
      // R-57a: a second far-end connection.
      return this.fail('MSRP_ERR_SESSION_ALREADY_BOUND', 'session bound to another connection (R-57a)');
    }
    return this.finishForward(conn, req, session, 'inward', session.owner, paths, reportFrom, from);
  }

  private finishForward(
    conn: Connection,
    req: MsrpRequestHead,
    session: Session<Connection>,
    direction: ForwardDirection,
    target: Connection,
    paths: PathPair,
    reportFrom: string,
    from?: Session<Connection>,
  ): Decision | Promise<Decision> {
    if (target.isClosed) return this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'the next hop connection is closed');
    const hooks = this.d.hooks();
    if (isTapped(hooks.rewritePath)) paths = hooks.rewritePath.call(paths, { connection: conn, session, request: req, direction });
    const decision: Decision = { kind: 'forward', target, session, direction, paths, reportFrom, ...(from !== undefined ? { from } : {}) };
    if (isTapped(hooks.forwardChunk)) {
      return hooks.forwardChunk
        .promise({ connection: conn, session, request: req, direction, signal: conn.signal, ...(from !== undefined ? { from } : {}) })
        .then((r) => (r !== undefined ? this.rejection(r.reject) : decision));
    }
    return decision;
  }

  /** The connection an outward request takes, if one is open already. */
  private outwardConnection(session: Session<Connection>, next: MsrpUri): Connection | undefined {
    const out = session.outbound;
    if (out !== undefined && !out.isClosed) return out;
    const far = session.farLeg;
    // I-10, R-16: the far end connected in first: route back over that connection.
    if (far?.kind === 'connection' && !far.connection.isClosed && (far.hopUri === undefined || this.hopMatches(next, far.hopUri))) {
      return far.connection;
    }
    return undefined;
  }

  /**
   * The session's own outbound leg, opened once however many requests wait for it: to the
   * worker that owns the next token in cluster mode (DESIGN.md §7), else where resolveNextHop says.
   */
  private async openOutward(session: Session<Connection>, req: MsrpRequestHead, next: MsrpUri, worker: number | undefined): Promise<Connection | Decision> {
    if (session.dialing === undefined) {
      const hooks = this.d.hooks();
      const pending = (async () => {
        let c: Connection;
        if (worker !== undefined) {
          c = await dialing(this.d.dialWorker!(worker, session));
        } else {
          const hop = await hooks.resolveNextHop.promise({ uri: next, session, request: req, signal: session.owner.signal });
          if (hop === undefined) throw new MsrpError('MSRP_ERR_SESSION_NOT_FOUND', 'no next hop');
          if ('reject' in hop) throw hop.reject;
          c = await dialing(this.d.dial(hop, session));
        }
        if (session.closed) {
          c.close({ code: 'owner-closed' });
          throw new MsrpError('MSRP_ERR_SESSION_NOT_FOUND', 'session closed while dialling');
        }
        session.outbound = c;
        c.farSessions.add(session);
        this.d.sessions.armExpiry(session);
        return c;
      })();
      session.dialing = pending;
      pending.then(
        () => (session.dialing = undefined),
        () => (session.dialing = undefined),
      );
    }
    try {
      return await session.dialing;
    } catch (e) {
      if (isMsrpError(e)) return this.rejection(e);
      // The next hop cannot be reached (or a resolveNextHop tap failed): the request fails
      // like a timed-out transaction.
      if (!(e instanceof DialError) && !alreadyReported(e)) this.report(e, { connection: session.owner, hook: 'resolveNextHop' });
      this.d.log().warn('next hop unreachable', { ...(worker !== undefined ? { worker } : {}), error: e instanceof Error ? e.message : String(e) });
      return this.fail('MSRP_ERR_TIMEOUT', 'next hop unreachable');
    }
  }

  // ================================================================== applying

  private apply(conn: Connection, inb: Inbound, d: Decision): void {
    const req = inb.req!;
    switch (d.kind) {
      case 'forward': {
        inb.mode = 'forward';
        inb.target = d.target;
        inb.session = d.session;
        if (d.from !== undefined) inb.from = d.from;
        inb.direction = d.direction;
        inb.stream = this.startStream(conn, inb, d);
        conn.markSucceeded();
        return;
      }
      case 'respond': {
        inb.mode = 'discard';
        this.countProbationFailure(conn, d.status);
        const frame = this.responseFrame(req, d.status, d.comment, d.headers);
        if (frame !== undefined) {
          // AUTH and errors known before the body answer at once; the body (if any) is discarded.
          this.writeResponse(conn, frame, req.method, req.tid, d.status);
        }
        if (d.close === true) conn.close({ code: d.status === 401 || d.status === 403 ? 'auth-failures' : 'rejected', message: d.reason });
        return;
      }
      case 'silent':
        inb.mode = 'discard';
        return;
      case 'close':
        inb.mode = 'discard';
        conn.close({ code: 'protocol-error', message: d.reason });
        return;
    }
  }

  /** Opens the stream on the next hop's writer and wires its events to transactions. */
  private startStream(conn: Connection, inb: Inbound, d: Extract<Decision, { kind: 'forward' }>): OutStream {
    const req = inb.req!;
    const isSend = req.method === 'SEND';
    const range = req.byteRange;
    // a SEND chunk with more than 2048 body octets may be interrupted, so it goes out
    // with range-end `*` (and so does every continuation piece).
    const starEnd = isSend && req.hasBody && range !== undefined && range.end !== -1 && range.end - range.start + 1 > INTERRUPTIBLE_OVER;
    const fwd = new Forward(this, conn, inb, req, d, starEnd, this.d.config().timeouts.transaction * 1000);
    const stream = new OutStream({
      tid: newTransactionId(),
      // A chunk announced as 2048 octets or less is never cut (its range-end stays exact).
      interruptible: isSend && req.hasBody && (range === undefined || range.end === -1 || starEnd),
      hasBody: req.hasBody,
      render: fwd,
      events: fwd,
    });
    d.target.writer.open(stream);
    return stream;
  }

  /** @internal a piece of a forwarded request went out (Forward) */
  pieceStarted(conn: Connection, target: Connection, piece: Transaction): void {
    target.pending.set(piece.tid, piece);
    conn.outstanding++;
    if (conn.outstanding >= this.d.config().limits.maxOutstandingPerConnection) conn.pauseReading(OUTSTANDING);
  }

  /** @internal a piece's end-line went out: R-62, its response is due within `transaction` (Forward) */
  pieceEnded(target: Connection, tid: string, bytes: number, txMs: number): void {
    const t = target.pending.get(tid);
    if (t === undefined) return;
    t.rangeBytes = bytes;
    // 30 s from the last byte. Failure-Report yes then gets REPORT 408; partial
    // (which never gets a 200, R-65) and end-to-end requests are purged alike.
    t.timer = this.deadlines.add(Date.now() + txMs, () => this.transactionTimeout(target, t));
  }

  /** @internal chunkForwarded taps (Forward) */
  get forwardedHook(): RelayHooks<unknown>['chunkForwarded'] | undefined {
    const h = this.d.hooks().chunkForwarded;
    return isTapped(h) ? h : undefined;
  }

  // ================================================================== responses

  private onResponse(conn: Connection, head: FrameHead): void {
    let res: MsrpResponseHead;
    try {
      res = parseResponseHead(head, { maxPathUris: this.d.config().limits.maxPathUris });
    } catch {
      return; // unparseable responses are dropped.
    }
    const t = conn.pending.get(res.tid);
    if (t === undefined) return; // unknown tid.
    conn.pending.delete(res.tid);
    this.settle(t);
    const source = t.source;
    if (t.kind === 'send') {
      // a 200 is hop-by-hop and ends here; R-63: an error becomes a REPORT upstream.
      if (res.status !== 200 && t.failureReport !== 'no') this.sendReport(t, res.status, res.comment);
      return;
    }
    // end-to-end response: move our URIs from To-Path to From-Path, restore the tid.
    if (source === null || source.isClosed) return;
    const to = [...res.toPath];
    const from = [...res.fromPath];
    while (to.length > 1) {
      const u = tryParseUri(to[0]!);
      if (u === undefined || this.ownSession(u) === undefined) break;
      from.unshift(to.shift()!);
    }
    source.sendFrame(formatResponse({ tid: t.sourceTid, status: res.status, comment: res.comment, toPath: to, fromPath: from, headers: res.headers }));
  }

  private settle(t: Transaction): void {
    if (t.timer !== undefined) this.deadlines.settle(t.timer);
    t.timer = undefined;
    if (t.counted && t.source !== null) {
      t.counted = false;
      const s = t.source;
      s.outstanding--;
      if (s.outstanding < this.d.config().limits.maxOutstandingPerConnection && s.isPausedFor(OUTSTANDING)) s.resumeReading(OUTSTANDING);
    }
  }

  private transactionTimeout(target: Connection, t: Transaction): void {
    t.timer = undefined;
    if (target.pending.get(t.tid) !== t) return;
    target.pending.delete(t.tid);
    this.failTransaction(t, 408, 'no response from the next hop');
  }

  /**
   * A forwarded request will get no answer: REPORT 408 for a SEND with Failure-Report yes
   * or also partial when the next hop closed; 408 for a forwarded AUTH.
   */
  private failTransaction(t: Transaction, status: number, comment: string, hopClosed = false): void {
    this.settle(t);
    if (t.kind === 'send') {
      if (t.failureReport === 'yes' || (t.failureReport === 'partial' && hopClosed)) this.sendReport(t, status, comment);
      return;
    }
    if (t.method === 'AUTH' && t.source !== null && !t.source.isClosed) {
      const frame = formatResponse({ tid: t.sourceTid, status, comment: statusComment(status), toPath: t.reportTo, fromPath: [t.reportFrom] });
      this.writeResponse(t.source, frame, t.method, t.sourceTid, status);
    }
  }

  /** a relay-generated REPORT to the original sender. */
  private sendReport(t: Transaction, status: number, comment: string): void {
    const source = t.source;
    if (source === null || source.isClosed || t.messageId === undefined) return;
    const end = t.rangeStart + t.rangeBytes - 1;
    const headers: RawHeader[] = [
      ['Message-ID', t.messageId],
      ['Byte-Range', formatByteRange({ start: t.rangeStart, end: Math.max(end, t.rangeStart - 1), total: t.rangeTotal })],
      ['Status', formatStatusHeader(status, comment === '' ? statusComment(status) : comment)],
    ];
    source.sendFrame(formatRequest({ tid: newTransactionId(), method: 'REPORT', toPath: t.reportTo, fromPath: [t.reportFrom], headers }));
  }

  // ================================================================== helpers

  /** A token of this relay (R-50: session-id case-sensitive, scheme/host/port/transport exact). */
  ownSession(u: MsrpUri): Session<Connection> | undefined {
    if (u.sessionId === undefined) return undefined;
    const s = this.d.sessions.get(u.sessionId);
    if (s === undefined || !uriEquals(u, s.parsedUri)) return undefined;
    return s;
  }

  /** True when a URI's host and port name this relay. */
  private isOwnHost(u: MsrpUri): boolean {
    if (u.host.toLowerCase() !== this.d.hostname().toLowerCase()) return false;
    return u.port === undefined || this.d.listeners().some((l) => l.port === u.port);
  }

  /**
   * R-51 b: does `next` name the owner's previous hop? Compared by URI (§1.8), or by
   * session-id when both have one (a client behind NAT may write another port, I-10).
   */
  private hopMatches(next: MsrpUri, hop: MsrpUri): boolean {
    if (uriEquals(next, hop)) return true;
    return next.sessionId !== undefined && next.sessionId === hop.sessionId && next.scheme === hop.scheme;
  }

  private sameLeg(a: NonNullable<Session<Connection>['farLeg']>, b: NonNullable<Session<Connection>['farLeg']>): boolean {
    if (a.kind === 'connection') return b.kind === 'connection' && a.connection === b.connection;
    return b.kind === 'local' && a.session === b.session;
  }

  private fail(code: MsrpErrorCode, reason: string): Decision {
    return this.rejection(new MsrpError(code, reason));
  }

  private rejection(e: MsrpError): Decision {
    return { kind: 'respond', status: e.status, headers: e.headers, reason: e.message };
  }

  private internalError(conn: Connection, e: unknown, what: string): Decision {
    if (isMsrpError(e)) return this.rejection(e);
    // A failed tap was reported by core/hooks.ts, with its plugin and hook.
    if (!alreadyReported(e)) this.report(e, { connection: conn });
    this.d.log().error(`${what} failed`, { error: e instanceof Error ? e.message : String(e) });
    // DESIGN.md §6: an unexpected exception fails closed.
    return { kind: 'respond', status: 403, reason: `${what} failed` };
  }

  private report(e: unknown, ctx: ErrorContext): void {
    const err = e instanceof Error ? e : new Error(String(e));
    try {
      this.d.hooks().error.call(err, ctx);
    } catch {
      // nothing left to tell
    }
  }

  private countProbationFailure(conn: Connection, status: number): void {
    if (!conn.inProbation || status < 400 || status === 401) return;
    // several failures and no success during probation: close.
    if (++conn.probationFailures >= MAX_PROBATION_FAILURES) conn.close({ code: 'protocol-error', message: 'too many failed requests (R-10)' });
  }

  /**
   * A response the relay writes itself, or undefined when none may be sent: never to a
   * REPORT, nothing with Failure-Report no, no 200 with partial.
   * SEND responses go to the previous hop only; others follow the whole From-Path.
   */
  private responseFrame(req: MsrpRequestHead, status: number, comment?: string, headers?: RawHeader[]): Buffer | undefined {
    if (req.method === 'REPORT') return undefined;
    if (req.failureReport === 'no') return undefined;
    if (req.failureReport === 'partial' && status === 200) return undefined;
    const toPath = req.method === 'SEND' ? [req.fromPath[0]!] : req.fromPath;
    return formatResponse({ tid: req.tid, status, comment: comment ?? statusComment(status), toPath, fromPath: [req.toPath[0]!], headers: headers ?? [] });
  }

  private sendResponse(conn: Connection, req: MsrpRequestHead, status: number): void {
    const f = this.responseFrame(req, status);
    if (f !== undefined) this.writeResponse(conn, f, req.method, req.tid, status);
  }

  /** Writes a response the relay composed, and tells responseSent taps (skipped when untapped). */
  private writeResponse(conn: Connection, frame: Buffer, method: string, tid: string, status: number): void {
    conn.sendFrame(frame);
    const hooks = this.d.hooks();
    if (isTapped(hooks.responseSent)) hooks.responseSent.call({ connection: conn, method, tid, status });
  }

  private refuseMalformed(conn: Connection, head: FrameHead, e: MessageError): void {
    conn.inbound = { req: undefined, mode: 'discard', bodyBytes: 0, startedAt: 0 } satisfies Inbound;
    if (!e.respond) {
      // the paths cannot be read, so no response can be addressed.
      conn.close({ code: 'protocol-error', message: e.message });
      return;
    }
    const fr = getHeader(head.headers, 'Failure-Report')?.toLowerCase();
    if (head.method !== 'REPORT' && fr !== 'no') {
      const to = head.headers[0]![1].split(/[ \t]+/)[0]!;
      const from = head.headers[1]![1].split(/[ \t]+/).filter((x) => x !== '');
      const toPath = head.method === 'SEND' ? [from[0]!] : from;
      this.writeResponse(conn, formatResponse({ tid: head.tid, status: e.status, comment: statusComment(e.status), toPath, fromPath: [to] }), head.method, head.tid, e.status);
    }
    this.countProbationFailure(conn, e.status);
  }
}

/**
 * One forwarded request on its way to the next hop: renders each piece's head and turns the
 * writer's events into transactions. A class rather than closures: a forwarded chunk then
 * costs one object here, not a context and six functions (messages/s, GC pauses in p99).
 */
class Forward implements OutStreamEvents {
  /** To-Path and From-Path as they leave. */
  private readonly prefix: string;
  /** The headers after From-Path, as received. */
  private readonly rest: string;
  private readonly kind: Transaction['kind'] | undefined;
  private started = false;

  constructor(
    private readonly router: Router,
    private readonly conn: Connection,
    private readonly inb: Inbound,
    private readonly req: MsrpRequestHead,
    private readonly d: Extract<Decision, { kind: 'forward' }>,
    private readonly starEnd: boolean,
    private readonly txMs: number,
  ) {
    this.prefix = `To-Path: ${d.paths.toPath.join(' ')}\r\nFrom-Path: ${d.paths.fromPath.join(' ')}\r\n`;
    // Only a first piece that keeps its Byte-Range uses the headers as received; an
    // interruptible chunk's every piece is rendered with its own (head()).
    let rest = '';
    if (!starEnd) for (const [n, v] of req.headers) rest += `${n}: ${v}\r\n`;
    this.rest = rest;
    // Which answers the next hop owes us: none for REPORT or Failure-Report no.
    this.kind = req.method === 'REPORT' ? undefined : req.method === 'SEND' ? (req.failureReport === 'no' ? undefined : 'send') : 'e2e';
  }

  head(tid: string, off: number): string {
    const req = this.req;
    const blank = req.hasBody ? '\r\n' : '';
    if (off === 0 && !this.starEnd) return `MSRP ${tid} ${req.method}\r\n${this.prefix}${this.rest}${blank}`;
    // A continuation piece (or an interruptible chunk): same headers, Byte-Range starting where the last piece stopped.
    const range = req.byteRange;
    const start = (range?.start ?? 1) + off;
    const br = formatByteRange({ start, end: range !== undefined && range.end !== -1 && !this.starEnd ? range.end : -1, total: range?.total ?? -1 });
    let text = '';
    let placed = false;
    for (const [n, v] of req.headers) {
      const lower = lowerName(n);
      if (lower === 'byte-range') {
        text += `Byte-Range: ${br}\r\n`;
        placed = true;
      } else {
        if (!placed && lower.startsWith('content-')) {
          text += `Byte-Range: ${br}\r\n`;
          placed = true;
        }
        text += `${n}: ${v}\r\n`;
      }
    }
    if (!placed) text += `Byte-Range: ${br}\r\n`;
    return `MSRP ${tid} ${req.method}\r\n${this.prefix}${text}${blank}`;
  }

  onPieceStart(tid: string, off: number): void {
    this.started = true;
    const kind = this.kind;
    if (kind === undefined) return;
    const req = this.req;
    const range = req.byteRange;
    this.router.pieceStarted(this.conn, this.d.target, {
      tid,
      kind,
      source: this.conn,
      sourceTid: req.tid,
      method: req.method,
      reportTo: req.fromPath,
      reportFrom: this.d.reportFrom,
      messageId: req.messageId,
      failureReport: req.failureReport,
      rangeStart: (range?.start ?? 1) + off,
      rangeBytes: 0,
      rangeTotal: range?.total ?? -1,
      timer: undefined,
      counted: true,
    });
  }

  onPieceEnd(tid: string, _flag: EndFlag, _off: number, bytes: number): void {
    this.router.pieceEnded(this.d.target, tid, bytes, this.txMs);
  }

  onWritable(): void {
    this.conn.resumeReading(FORWARD);
  }

  onFinished(flag: EndFlag, total: number): void {
    const hook = this.router.forwardedHook;
    if (hook === undefined) return;
    hook.call({
      session: this.d.session,
      method: this.req.method,
      messageId: this.req.messageId,
      direction: this.d.direction,
      bytes: total,
      flag,
      startedAt: this.inb.startedAt,
      endedAt: Date.now(),
    });
  }

  onDropped(): void {
    // The next hop closed under this stream. If part of it went out, its
    // transaction turns into a REPORT 408; if none did, the sender gets 408 at its end-line.
    const inb = this.inb;
    if (this.conn.inbound === inb && inb.mode === FORWARD) {
      inb.mode = 'discard';
      inb.stream = undefined;
      if (!this.started) inb.failedStatus = 408;
      this.conn.resumeReading(FORWARD);
    }
  }
}
